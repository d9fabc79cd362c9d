"""Symbols for a run: the symbolizer a symbol path (or ``_NT_SYMBOL_PATH``) and image
directories give, attached to a trace so that every output names its frames ``module!function``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from rpctrace.trace.model import Trace

if TYPE_CHECKING:
    from rpctrace.symbols import Symbolizer


def symbolizer(symbols: str | None = None, image_path: Sequence[str] = (), timeout: float = 20.0) -> Symbolizer:
    """The run's :class:`~rpctrace.symbols.Symbolizer` from a symbol path (debugger syntax; None:
    ``_NT_SYMBOL_PATH``) and directories of binaries copied from the traced machine."""
    from rpctrace.symbols import Symbolizer, symbol_path_from
    from rpctrace.symbols.download import Downloader

    return Symbolizer(symbol_path_from(symbols), list(image_path), downloader=Downloader(timeout=timeout))


def has_symbol_source(symbols: str | None, image_path: Sequence[str]) -> bool:
    """Whether a symbol path (given or from the environment) or image directories were given."""
    from rpctrace.symbols import symbol_path_from

    return symbol_path_from(symbols) is not None or bool(image_path)




def attach_symbols(trace: Trace, symbols: str | None = None, image_path: Sequence[str] = (),
                   timeout: float = 20.0) -> Symbolizer | None:
    """Resolve the trace's frames with PDBs from then on (:meth:`Trace.symbolize` asks them), when
    a symbol source is given (``symbols``, ``image_path``) or set (``_NT_SYMBOL_PATH``); None
    when there is none (frames stay ``module+0xoffset``).  The symbolizer's ``problems`` are the
    one-line messages to show (a server unreachable, a PDB unreadable)."""
    if not has_symbol_source(symbols, image_path):
        return None
    from rpctrace.symbols.frames import TraceSymbols

    sym = symbolizer(symbols, image_path, timeout)
    trace.symbols = TraceSymbols(trace, sym, images=trace.image_identities)
    return sym
