"""What the ``rpctrace symbols`` commands do, as library calls that return plain data.

* :func:`resolve_in_pdb` - offsets looked up in one PDB (``symbols resolve --pdb``);
* :func:`resolve_in_image` - offsets of one PE image, its PDB found through the symbol path and
  beside the image (``symbols resolve --image``);
* :func:`fetch_for_trace` - find (and download into the cache) the PDB of every image a
  trace's stacks run through, and say what is missing (``symbols fetch``).
"""

from __future__ import annotations

import os
import re

from rpctrace.errors import InputError, RpctraceError, printable
from rpctrace.symbols.pdb import PdbSymbols
from rpctrace.symbols.pe import read_pe
from rpctrace.symbols.symbolizer import ImageRef, Symbol, Symbolizer, module_name, symbol_from_locations

_OFFSET = re.compile(r"^(?:(?P<module>[^+!\s]+)\+)?(?:0x)?(?P<hex>[0-9a-fA-F]{1,16})$")


def parse_offset(text: str) -> int:
    """A module-relative offset: hexadecimal with or without ``0x`` (as debuggers read
    numbers), optionally written ``module+0x...``."""
    m = _OFFSET.match(text.strip())
    if not m:
        raise RpctraceError(f"{printable(text, 80)!r} is not an offset (hexadecimal, e.g. 0x12ef9 or "
                            f"audiosrv+0x12ef9)")
    value = int(m.group("hex"), 16)
    if value > 0xFFFFFFFF:
        raise RpctraceError(f"offset 0x{value:x} is beyond any image (more than 32 bits)")
    return value


def _entry(module: str, offset: int, sym: Symbol | None, reason: str | None = None) -> dict:
    if sym is None:
        return {"module": module, "offset": offset, "symbol": None, "frames": [],
                "reason": reason or "no function holds this offset"}
    return {"module": module, "offset": offset, "symbol": sym.text(), "frames": [f.as_dict() for f in sym.frames],
            "from_publics": sym.from_publics}


def _identity(pdb: PdbSymbols) -> dict:
    return {"guid": pdb.identity.guid, "age": pdb.identity.age, "arch": pdb.identity.arch}


def resolve_in_pdb(path: str, offsets: list[int], symbolizer: Symbolizer | None = None,
                   module: str | None = None) -> dict:
    """Look ``offsets`` (RVAs) up in the PDB at ``path``.  Raises :class:`InputError`."""
    symbolizer = symbolizer or Symbolizer()
    pdb = symbolizer.open_pdb(path)
    mod = module or module_name(os.path.basename(path).rsplit(".", 1)[0])
    return {"pdb": path, "identity": _identity(pdb),
            "results": [_entry(mod, off, symbol_from_locations(pdb, mod, off)) for off in offsets]}


def resolve_in_image(path: str, offsets: list[int], symbolizer: Symbolizer) -> dict:
    """Look ``offsets`` up for the PE image at ``path``: its debug directory names the PDB,
    found through the symbolizer's symbol path or beside the image."""
    pe = read_pe(path)
    cv = pe.pdb
    ref = ImageRef(os.path.basename(path), pe.image_base, pe.size_of_image, pe.timestamp, pe.checksum,
                   cv.guid if cv else None, cv.age if cv else None, cv.pdb_name if cv else None)
    local = Symbolizer(symbolizer.symbol_path, [os.path.dirname(os.path.abspath(path))] + symbolizer.image_paths,
                       downloader=symbolizer._downloader, isolate=symbolizer.isolate, timeout=symbolizer.timeout)
    located = local.locate(ref)
    symbolizer.problems.extend(p for p in local.problems if p not in symbolizer.problems)
    result: dict = {"image": path, "pdb": located.pdb, "problem": None if located.pdb else (located.problem or
                                                                                          "PDB not found"),
                    "identity": {"guid": located.guid, "age": located.age, "pdb_name": located.pdb_name}
                    if located.guid else None, "tried": located.tried}
    pdb = local.symbols_for(ref) if located.pdb else None
    if located.pdb and pdb is None:
        result["problem"] = "the PDB could not be read"
    results = []
    for off in offsets:
        if pdb is None:
            results.append(_entry(ref.module, off, None, "no symbols"))
        elif off >= pe.size_of_image:
            results.append(_entry(ref.module, off, None, f"beyond the image (SizeOfImage 0x{pe.size_of_image:x})"))
        else:
            results.append(_entry(ref.module, off, symbol_from_locations(pdb, ref.module, off)))
    result["results"] = results
    return result


def fetch_for_trace(trace, symbolizer: Symbolizer, include_all: bool = False) -> dict:
    """Find the PDB of each image the trace needs (see :class:`~rpctrace.symbols.frames.TraceSymbols`)."""
    from rpctrace.symbols.frames import TraceSymbols

    ts = TraceSymbols(trace, symbolizer)
    images = []
    for ref in ts.needed(include_all):
        loc = symbolizer.locate(ref)
        if loc.pdb is not None and symbolizer.symbols_for(ref) is None:
            loc.problem = loc.problem or "the PDB could not be read"
        images.append(loc.as_dict())
    downloaded = symbolizer._downloader.downloaded if symbolizer._downloader is not None else []
    return {"images": images, "downloaded": [{"url": u, "path": p, "bytes": n} for u, p, n in downloaded],
            "problems": list(symbolizer.problems),
            "symbol_path": str(symbolizer.symbol_path) if symbolizer.symbol_path is not None else None}


__all__ = ["parse_offset", "resolve_in_pdb", "resolve_in_image", "fetch_for_trace", "InputError"]
