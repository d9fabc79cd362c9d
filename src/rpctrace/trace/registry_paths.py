"""Give every registry event its full key path.

Kernel Registry events name their key relative to a key control block (KCB): Create/Open carry
the name relative to the handle they start from, value operations carry only the value name.
KCBCreate and KCBRundown events pair each KCB address with its full name.  KCB addresses are
reused once a KCB is deleted, so definitions are kept per address in time order and an event
takes the last definition made before it, or failing that (rundown is logged at the end of a
trace) the first one after it.
"""

from __future__ import annotations

import bisect
from typing import Iterable

from rpctrace.knowledge.registry import is_absolute, join, user_path
from rpctrace.model import Event


class KcbNames:
    def __init__(self) -> None:
        self._defs: dict[int, tuple[list[int], list[str]]] = {}

    def add(self, kcb: int, ts: int, name: str) -> None:
        times, names = self._defs.setdefault(kcb, ([], []))
        i = bisect.bisect_right(times, ts)
        times.insert(i, ts)
        names.insert(i, name)

    def lookup(self, kcb: int, ts: int) -> str | None:
        entry = self._defs.get(kcb)
        if not entry:
            return None
        times, names = entry
        i = bisect.bisect_right(times, ts)
        return names[i - 1] if i else names[0]


def resolve_registry_paths(events: Iterable[Event], kcbs: KcbNames | None = None) -> None:
    """Fill ``fields["path"]`` (HKLM\\... form) and ``fields["nt_path"]`` where they can be known.

    Works in place on the events' field dicts: it runs while a trace is being assembled, before
    any consumer sees the events.  KCB names come from the events themselves, or from ``kcbs``
    (a stream's table, when the events are the few an analysis kept).
    """
    events = list(events)
    if kcbs is None:
        kcbs = KcbNames()
        for ev in events:
            if ev.kind.startswith("registry.kcb_") and ev.fields.get("kcb"):
                kcbs.add(ev.fields["kcb"], ev.ts, ev.fields.get("key_name", ""))
    for ev in events:
        kind = ev.kind
        if not kind.startswith("registry."):
            continue
        f = ev.fields
        nt: str | None = None
        if kind.startswith("registry.kcb_"):
            nt = f.get("key_name") or None
        elif "relative_name" in f:  # Microsoft-Windows-Kernel-Registry create/open
            rel = f.get("relative_name", "")
            nt = rel if is_absolute(rel) else join(f.get("base_name", ""), rel) if f.get("base_name") else None
        elif "kcb" in f:
            name = "" if "value_name" in f else f.get("key_name", "")
            if name and is_absolute(name):
                nt = name
            else:
                base = kcbs.lookup(f["kcb"], ev.ts) if f["kcb"] else None
                if base is not None:
                    nt = join(base, name)
        elif "key_name" in f:  # Kernel-Registry value events carry the key's full name
            nt = f["key_name"] or None
        if nt:
            f["nt_path"], f["path"] = _shared_paths(nt)
        else:
            f.setdefault("path", None)


#: nt path -> (nt path, user path): the operations of a busy trace name the same few keys, and a
#: listing that keeps a hundred thousand of them would otherwise hold two strings each (bounded)
_PATHS: dict[str, tuple[str, str]] = {}


def _shared_paths(nt: str) -> tuple[str, str]:
    hit = _PATHS.get(nt)
    if hit is None:
        hit = (nt, user_path(nt))
        if len(_PATHS) >= 65536:
            _PATHS.clear()
        _PATHS[nt] = hit
    return hit
