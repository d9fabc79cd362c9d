"""Symbol paths with the syntax and meaning debuggers give them (``_NT_SYMBOL_PATH``, ``-y``).

A symbol path is a list of entries separated by ``;``, searched in order:

``DIR``
    a plain directory: ``DIR/name.pdb`` (also ``DIR/dll/name.pdb``, ``DIR/exe/name.pdb``,
    ``DIR/symbols/dll/name.pdb``), never written to.
``srv*A*B*...*Z``
    a chain of symbol stores: each element is a directory laid out as a symbol store
    (``name.pdb/GUIDAGE/name.pdb``) or an ``http://``/``https://`` server.  They are tried left
    to right; a file found in a later element is copied into every directory store before it
    (the downstream stores, i.e. the caches).  ``srv*URL`` alone caches into the default
    downstream store; an empty element (``srv**URL``) also stands for it.
``symsrv*symsrv.dll*A*...``
    the long form of ``srv*`` (only ``symsrv.dll`` is understood).
``cache*DIR``
    files found by any entry to its right are copied into ``DIR`` (a store), which is searched
    first for them; ``cache*`` alone names the default downstream store.

A symbol path never makes rpctrace touch the network unless one of its elements is an
``http://`` or ``https://`` URL: :attr:`SymbolPath.servers` lists those, and nothing else ever
opens a connection.  The default downstream store is ``$RPCTRACE_SYMBOL_CACHE``, else
``$XDG_CACHE_HOME/rpctrace/symbols``, else ``~/.cache/rpctrace/symbols`` (debuggers use a
``sym`` folder of their own).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rpctrace.errors import RpctraceError, printable

#: longest symbol path accepted (the environment can hold anything)
MAX_PATH_TEXT = 32768
#: most entries, and most elements in one srv* chain
MAX_ENTRIES = 64
MAX_CHAIN = 16


class SymbolPathError(RpctraceError):
    """A symbol path that cannot be understood (one line, naming the entry)."""


@dataclass(frozen=True)
class Location:
    """One place to look: ``kind`` is ``"flat"`` (plain directory), ``"store"`` (a directory
    laid out as a symbol store) or ``"server"`` (an HTTP(S) symbol server); ``where`` is the
    path or URL."""

    kind: str
    where: str

    @property
    def is_server(self) -> bool:
        return self.kind == "server"

    def __str__(self) -> str:
        return self.where


@dataclass(frozen=True)
class Entry:
    """One entry of the path: its locations in search order (a plain directory is one flat
    location; a ``srv*`` chain is its stores; a ``cache*DIR`` in force puts ``DIR`` first).
    Files found in a later location are copied into the *store* locations before it."""

    text: str
    locations: tuple[Location, ...]


@dataclass(frozen=True)
class SymbolPath:
    """A parsed symbol path (see the module docstring).  ``str()`` gives it back as text."""

    text: str
    entries: tuple[Entry, ...]

    @property
    def servers(self) -> list[str]:
        """The URLs of every server the path names, in search order (the only network use)."""
        seen: list[str] = []
        for e in self.entries:
            for loc in e.locations:
                if loc.is_server and loc.where not in seen:
                    seen.append(loc.where)
        return seen

    @property
    def uses_network(self) -> bool:
        return bool(self.servers)

    def __str__(self) -> str:
        return self.text


def default_cache() -> str:
    """The default downstream store (see the module docstring)."""
    explicit = os.environ.get("RPCTRACE_SYMBOL_CACHE")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return os.path.join(base, "rpctrace", "symbols")


def is_url(text: str) -> bool:
    low = text.lower()
    return low.startswith("http://") or low.startswith("https://")


def parse(text: str, *, cache: str | None = None) -> SymbolPath:
    """Parse a symbol path.  ``cache`` replaces the default downstream store (tests, ``--cache``).

    Raises :class:`SymbolPathError` for what a debugger would not accept either (an empty
    ``srv*``, an unknown ``symsrv`` DLL, a URL outside ``srv*``, a store that is a URL in a
    ``cache*``) and for oversized input.
    """
    if len(text) > MAX_PATH_TEXT:
        raise SymbolPathError(f"symbol path too long ({len(text)} characters, at most {MAX_PATH_TEXT})")
    default = cache or default_cache()
    entries: list[Entry] = []
    cache_dir: str | None = None
    for raw in text.split(";"):
        item = raw.strip()
        if not item:
            continue
        if len(entries) >= MAX_ENTRIES:
            raise SymbolPathError(f"symbol path has more than {MAX_ENTRIES} entries")
        low = item.lower()
        if low.startswith("cache*") or low == "cache":
            where = item[6:].strip() if low.startswith("cache*") else ""
            if is_url(where):
                raise SymbolPathError(f"symbol path entry {printable(item, 120)!r}: a cache must be a directory")
            cache_dir = where or default
            continue
        if low.startswith("srv*") or low == "srv":
            elements = item[4:].split("*") if low.startswith("srv*") else []
            locations = _chain(item, elements, default)
        elif low.startswith("symsrv*"):
            parts = item[7:].split("*")
            if not parts or parts[0].strip().lower() != "symsrv.dll":
                raise SymbolPathError(f"symbol path entry {printable(item, 120)!r}: only symsrv*symsrv.dll*... "
                                      f"is understood")
            locations = _chain(item, parts[1:], default)
        elif is_url(item):
            raise SymbolPathError(f"symbol path entry {printable(item, 120)!r}: a server is named as srv*URL "
                                  f"(or srv*CACHE*URL)")
        else:
            locations = (Location("flat", item),)
        if cache_dir is not None and not any(loc.kind == "store" and loc.where == cache_dir for loc in locations):
            locations = (Location("store", cache_dir),) + locations
        entries.append(Entry(item, locations))
    return SymbolPath(text, tuple(entries))


def _chain(item: str, elements: list[str], default: str) -> tuple[Location, ...]:
    elements = [e.strip() for e in elements]
    if not elements or all(not e for e in elements):
        raise SymbolPathError(f"symbol path entry {printable(item, 120)!r} names no store or server")
    if len(elements) > MAX_CHAIN:
        raise SymbolPathError(f"symbol path entry {printable(item, 120)!r} has more than {MAX_CHAIN} stores")
    if is_url(elements[0]):
        elements = [""] + elements  # srv*URL: the default downstream store caches what it sends
    out: list[Location] = []
    for e in elements:
        if is_url(e):
            out.append(Location("server", e.rstrip("/")))
        else:
            out.append(Location("store", e or default))
    return tuple(out)


def from_environment(environ: dict[str, str] | None = None, *, cache: str | None = None) -> SymbolPath | None:
    """The path debuggers would use: ``_NT_ALT_SYMBOL_PATH`` (searched first) then
    ``_NT_SYMBOL_PATH``; ``None`` when neither is set."""
    env = os.environ if environ is None else environ
    parts = [env.get("_NT_ALT_SYMBOL_PATH", ""), env.get("_NT_SYMBOL_PATH", "")]
    text = ";".join(p for p in parts if p.strip())
    return parse(text, cache=cache) if text else None


def resolve(option: str | None, environ: dict[str, str] | None = None, *, cache: str | None = None) -> SymbolPath | None:
    """``--symbols`` when given (it replaces the environment, as a debugger's ``-y`` does), else
    the environment's path, else ``None`` (no symbol path: nothing is searched but the images
    given with ``--image-path``)."""
    if option is not None:
        return parse(option, cache=cache)
    return from_environment(environ, cache=cache)
