"""Symbols: stack frames and server functions named the way a debugger names them.

* :mod:`~rpctrace.symbols.path` - symbol paths (``srv*CACHE*URL;cache*DIR;DIR``), debugger syntax
* :mod:`~rpctrace.symbols.store` - symbol store layout (``name.pdb/GUIDAGE/name.pdb``)
* :mod:`~rpctrace.symbols.download` - HTTP(S) downloads (only from servers a path names)
* :mod:`~rpctrace.symbols.pe` - PE headers and CodeView records (``pefile``)
* :mod:`~rpctrace.symbols.pdb` - PDB lookups (``symbolic``), built in a limited child process
* :mod:`~rpctrace.symbols.names` - names as debuggers print them (undecorated, no arguments)
* :mod:`~rpctrace.symbols.symbolizer` - :class:`Symbolizer`: image + offset -> :class:`Symbol`
* :mod:`~rpctrace.symbols.identity` - :class:`TraceImages`: a trace's images and PDB identities

Typical use::

    from rpctrace.symbols import ImageRef, Symbolizer, parse_symbol_path
    sym = Symbolizer(parse_symbol_path("srv*C:\\\\symbols*https://msdl.microsoft.com/download/symbols"))
    s = sym.resolve(ImageRef("audiosrv.dll", base, size, pdb_guid=..., pdb_age=..., pdb_name=...), 0x12ef9)
    s.text() if s else "audiosrv+0x12ef9"   # 'audiosrv!PolicyConfigSetDefaultEndpoint+0x1e9'
"""

from __future__ import annotations

from rpctrace.symbols.path import SymbolPath, SymbolPathError
from rpctrace.symbols.path import parse as parse_symbol_path
from rpctrace.symbols.path import resolve as symbol_path_from
from rpctrace.symbols.symbolizer import Frame, ImageRef, Located, Symbol, Symbolizer, module_name

__all__ = ["Frame", "ImageRef", "Located", "Symbol", "SymbolPath", "SymbolPathError", "Symbolizer", "module_name",
           "parse_symbol_path", "symbol_path_from", "TraceImages"]


def __getattr__(name: str):
    if name == "TraceImages":
        from rpctrace.symbols.identity import TraceImages

        return TraceImages
    raise AttributeError(name)
