"""The images of a trace with what identifies their build, for the symbolizer.

Kernel image events (``image.load``/``image.rundown``) give each loaded image's base, size,
checksum, TimeDateStamp and path.  Traces merged by WPR or xperf also hold KernelTraceControl's
``image.id`` (TimeDateStamp, size, original file name) and ``image.dbgid`` (PDB GUID, age and
name) events, written by the merge from the binaries on the recording machine (docs/events.md).
:class:`TraceImages` joins them per (process, image base), so each image becomes one
:class:`~rpctrace.symbols.symbolizer.ImageRef` with its PDB identity when the trace has it.

An ``image.dbgid`` event whose process has no matching image event is matched by base alone
when exactly one image was loaded there (system DLLs share their base across processes).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

from rpctrace.symbols.symbolizer import ImageRef

#: most images remembered (a hostile trace can load millions)
MAX_IMAGES = 200_000


@dataclass
class _Partial:
    name: str = ""
    size: int = 0
    timestamp: int | None = None
    checksum: int | None = None
    guid: str | None = None
    age: int | None = None
    pdb_name: str | None = None


class TraceImages:
    """Collects image identities from normalized events (feed every event to :meth:`add`)."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[int | None, int], _Partial] = {}
        self._ids: dict[tuple[int | None, int], dict] = {}
        self._dbg: dict[tuple[int | None, int], dict] = {}

    def add(self, ev) -> None:
        kind = ev.kind
        if kind in ("image.load", "image.rundown", "image.unload"):
            f = ev.fields
            base = f.get("image_base")
            if base is None:
                return
            key = (ev.pid, base)
            part = self._by_key.get(key)
            if part is None:
                if len(self._by_key) >= MAX_IMAGES:
                    return
                part = self._by_key[key] = _Partial()
            part.name = f.get("file_name") or part.name
            part.size = f.get("image_size") or part.size
            tds = f.get("time_date_stamp")
            if tds:
                part.timestamp = tds
            if f.get("checksum"):
                part.checksum = f["checksum"]
        elif kind == "image.id" and len(self._ids) < MAX_IMAGES:
            self._ids[(ev.pid, ev.fields.get("image_base", 0))] = dict(ev.fields)
        elif kind == "image.dbgid" and len(self._dbg) < MAX_IMAGES:
            pid = ev.pid if ev.pid is not None else ev.fields.get("process_id")
            self._dbg[(pid, ev.fields.get("image_base", 0))] = dict(ev.fields)

    def add_all(self, events: Iterable) -> "TraceImages":
        for ev in events:
            self.add(ev)
        return self

    def images(self) -> dict[tuple[int | None, int], ImageRef]:
        """(pid, base) -> :class:`ImageRef`, with the identity events joined in."""
        by_base: dict[int, list[tuple[int | None, int]]] = {}
        for key in self._by_key:
            by_base.setdefault(key[1], []).append(key)
        ids = _by_base(self._ids)
        dbgs = _by_base(self._dbg)
        out: dict[tuple[int | None, int], ImageRef] = {}
        for key, part in self._by_key.items():
            pid, base = key
            ref = ImageRef(part.name, base, part.size, part.timestamp, part.checksum)
            idf = self._ids.get(key) or _only(ids.get(base))
            if idf is not None and _same_file(idf.get("original_file_name"), part.name):
                ref = replace(ref, timestamp=ref.timestamp or idf.get("time_date_stamp"),
                              size=ref.size or idf.get("image_size") or 0)
            dbg = self._dbg.get(key) or _only(dbgs.get(base))
            if dbg is not None and dbg.get("pdb_guid") and dbg.get("pdb_name"):
                ref = replace(ref, pdb_guid=dbg["pdb_guid"], pdb_age=dbg.get("pdb_age"), pdb_name=dbg["pdb_name"])
            out[key] = ref
        return out

    def unique(self) -> list[ImageRef]:
        """Each build once (the same DLL is loaded by many processes)."""
        seen: dict[tuple, ImageRef] = {}
        for ref in self.images().values():
            seen.setdefault(ref.cache_key(), ref)
        return list(seen.values())


def _by_base(table: dict[tuple[int | None, int], dict]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for (_pid, base), fields in table.items():
        out.setdefault(base, []).append(fields)
    return out


def _only(items: list[dict] | None) -> dict | None:
    if not items:
        return None
    first = items[0]
    same = all(i.get("pdb_guid") == first.get("pdb_guid") and i.get("original_file_name") ==
               first.get("original_file_name") for i in items)
    return first if same else None


def _same_file(original: str | None, path: str) -> bool:
    if not original:
        return True
    return path.replace("/", "\\").rsplit("\\", 1)[-1].lower() == original.lower()
