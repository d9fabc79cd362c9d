"""One incident from several files: align their clocks and drop operations seen twice.

An ETW trace and a Procmon log recorded at the same time both see a service's registry and file
operations.  Their clocks differ a little (ETW converts QPC to UTC once per session; Procmon
stamps each event itself, at the start of the operation, where ETW stamps some at completion),
so the same operation carries slightly different times.  Two steps:

1. :func:`estimate_offset`: operations both sources saw (same pid, tid, kind, path, status)
   give time differences; the offset is the median difference of the densest cluster.  Rare
   operations (seen at most twice per source) are tried first, since they pair unambiguously;
   the estimate is then refined on every operation pairing within a tolerance of it.
2. :func:`dedupe`: after the Procmon events are shifted by the offset, a Procmon operation with
   the same pid, tid, kind, path and status as an ETW registry/file event within ``window`` is
   the same operation.  The ETW event is kept (its clock is the trace's, and ALPC/RPC events were
   matched to it), enriched with what only Procmon knew (desired access, user, Procmon's stack
   and frames, RPC dispatch, ...); the Procmon event is dropped, so nothing is counted twice.
   Pairing is one-to-one and in time order, so an operation a thread repeats is not merged with
   its neighbour.
"""

from __future__ import annotations

import bisect
import heapq
import re
from typing import Iterable, Sequence

from rpctrace.knowledge.registry import user_path
from rpctrace.model import Event, target_of
from rpctrace.knowledge.providers import PROCMON
from rpctrace.trace.model import ImageInfo, ProcessInfo, Trace

#: largest clock difference searched for (100 ns ticks): 10 minutes
MAX_OFFSET = 600 * 10_000_000
#: two differences belong to one cluster when this close (5 ms)
CLUSTER = 50_000
#: operations two sources must share before an offset is believed
MIN_MATCHES = 3
#: how far apart (after the offset) two records of one operation may be (10 ms)
DEDUPE_WINDOW = 100_000

_FILE_PREFIX = re.compile(r"^(\\\\\?\\|\\\?\?\\|\\\\\.\\)?([a-z]:|\\device\\[^\\]+)", re.IGNORECASE)


def _registry_path(f) -> str | None:
    nt = f.get("nt_path")
    path = user_path(nt) if nt else f.get("path")
    if not path:
        return None
    p = path.upper().rstrip("\\")
    if p.startswith("HKCR\\") or p == "HKCR":
        p = "HKLM\\SOFTWARE\\CLASSES" + p[4:]
    value = f.get("value_name")
    if value is not None:
        p = f"{p}\\\\{value.upper()}"  # a double backslash: value names may hold a backslash
    return p


def _file_path(ev: Event) -> str | None:
    path = target_of(ev)  # the file a create opened
    if not path:
        return None
    return _FILE_PREFIX.sub("", path.replace("/", "\\")).lower()


def operation_key(ev: Event) -> tuple | None:
    """What identifies an operation across sources, or None for events that are not one."""
    kind = ev.kind
    if ev.pid is None or ev.tid is None:
        return None
    if kind.startswith("registry.") and not kind.startswith("registry.kcb_"):
        path = _registry_path(ev.fields)
    elif kind == "file.create":
        path = _file_path(ev)
    else:
        return None
    if path is None:
        return None
    status = ev.fields.get("status")
    return (ev.pid, ev.tid, kind, path, status)


def _index(events: Iterable[Event]) -> dict[tuple, list[int]]:
    out: dict[tuple, list[int]] = {}
    for ev in events:
        key = operation_key(ev)
        if key is not None:
            out.setdefault(key, []).append(ev.ts)
    for times in out.values():
        times.sort()
    return out


def _densest(diffs: list[int], width: int) -> list[int]:
    """The largest run of sorted differences spanning at most ``width`` (ties: smallest |median|)."""
    diffs.sort()
    best: tuple[int, int] = (0, 0)
    best_key = None
    j = 0
    for i in range(len(diffs)):
        while diffs[i] - diffs[j] > width:
            j += 1
        n = i - j + 1
        mid = diffs[(i + j) // 2]
        key = (n, -abs(mid))
        if best_key is None or key > best_key:
            best_key, best = key, (j, i + 1)
    return diffs[best[0] : best[1]]


def _median(values: Sequence[int]) -> int:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) // 2


def estimate(events_a: Iterable[Event], events_b: Iterable[Event], max_offset: int = MAX_OFFSET) -> tuple[int, int]:
    """(offset, matched operations): add ``offset`` to ``events_b``'s times to align them with ``events_a``."""
    ia, ib = _index(events_a), _index(events_b)
    common = [k for k in ib if k in ia]
    if not common:
        return 0, 0
    diffs: list[int] = []
    for k in common:  # rare operations pair unambiguously
        ta, tb = ia[k], ib[k]
        if len(ta) <= 2 and len(tb) <= 2:
            diffs.extend(a - b for a in ta for b in tb if abs(a - b) <= max_offset)
    if len(diffs) < MIN_MATCHES:
        for k in common:
            ta, tb = ia[k], ib[k]
            for b in tb:
                lo = bisect.bisect_left(ta, b - max_offset)
                hi = bisect.bisect_right(ta, b + max_offset)
                if hi - lo > 16:  # nearest ones only: frequent operations would swamp the count
                    mid = bisect.bisect_left(ta, b)
                    lo, hi = max(lo, mid - 8), min(hi, mid + 8)
                diffs.extend(ta[i] - b for i in range(lo, hi))
    if not diffs:
        return 0, 0
    cluster = _densest(diffs, CLUSTER)
    if len(cluster) < MIN_MATCHES:
        return 0, len(cluster)
    coarse = _median(cluster)
    # refine: every operation of b paired with the nearest of a after the coarse shift
    refined: list[int] = []
    for k in common:
        ta = ia[k]
        for b in ib[k]:
            t = b + coarse
            i = bisect.bisect_left(ta, t)
            best = None
            for j in (i - 1, i):
                if 0 <= j < len(ta) and abs(ta[j] - t) <= CLUSTER and (best is None or abs(ta[j] - t) < abs(best - t)):
                    best = ta[j]
            if best is not None:
                refined.append(best - b)
    if len(refined) < MIN_MATCHES:
        return coarse, len(cluster)
    return _median(refined), len(refined)


def estimate_offset(events_a: Iterable[Event], events_b: Iterable[Event]) -> int:
    """Ticks to add to ``events_b``'s times so that operations both saw line up with ``events_a``.

    0 when fewer than :data:`MIN_MATCHES` operations agree (nothing to go on).
    """
    return estimate(events_a, events_b)[0]


def shift(events: Iterable[Event], offset: int) -> list[Event]:
    """The events with ``offset`` added to their times (stack records' ``event_ts`` too)."""
    if not offset:
        return list(events)
    out = []
    for ev in events:
        if ev.kind == "stack" and "event_ts" in ev.fields:
            fields = dict(ev.fields)
            fields["event_ts"] += offset
            ev = ev._replace(fields=fields)
        out.append(ev._replace(ts=ev.ts + offset))
    return out


def _merge_fields(keep: Event, other: Event) -> Event:
    fields = dict(keep.fields)
    for k, v in other.fields.items():
        if fields.get(k) is None and v is not None:
            fields[k] = v
    fields["merged_from"] = other.provider
    fields["merged_ts"] = other.ts
    stack = keep.stack if keep.stack else other.stack
    return keep._replace(fields=fields, stack=stack)


def dedupe(events: Sequence[Event], window: int = DEDUPE_WINDOW, stats: dict | None = None) -> list[Event]:
    """Drop Procmon operations an ETW event already records (times already aligned).

    ``events`` is one time-ordered list from several sources.  Returns a new list; when ``stats``
    is given, ``stats["duplicates"]`` counts the Procmon events dropped.
    """
    ref: dict[tuple, list[int]] = {}
    pml: dict[tuple, list[int]] = {}
    for i, ev in enumerate(events):
        key = operation_key(ev)
        if key is None:
            continue
        (pml if ev.provider == PROCMON else ref).setdefault(key, []).append(i)
    replace: dict[int, int] = {}  # ref index -> pml index merged into it
    drop: set[int] = set()
    for key, bs in pml.items():
        as_ = ref.get(key)
        if not as_:
            continue
        j = 0
        for b in bs:
            tb = events[b].ts
            while j < len(as_) and events[as_[j]].ts < tb - window:
                j += 1
            if j >= len(as_):
                break
            ta = events[as_[j]].ts
            if abs(ta - tb) <= window:
                # the next ETW record may fit better and the next Procmon one may want this one
                replace[as_[j]] = b
                drop.add(b)
                j += 1
    if stats is not None:
        stats["duplicates"] = stats.get("duplicates", 0) + len(drop)
    if not drop:
        return list(events)
    out = []
    for i, ev in enumerate(events):
        if i in drop:
            continue
        other = replace.get(i)
        out.append(_merge_fields(ev, events[other]) if other is not None else ev)
    return out


def merge_sources(lists: list[list[Event]], infos: list[dict] | None = None) -> list[Event]:
    """Several sources' events -> one time-ordered list, clocks aligned, duplicates dropped.

    The reference clock is the first source that is not a Procmon log (else the first source);
    every other source is shifted by its estimated offset.  ``infos[i]`` (the trace's source
    records) receive ``clock_offset`` (ticks), ``matched_operations`` and, for Procmon sources,
    ``duplicates_dropped``.
    """
    if not lists:
        return []
    ref = next((i for i, evs in enumerate(lists) if evs and any(e.provider != PROCMON for e in evs[:1000])), 0)
    aligned: list[list[Event]] = []
    for i, evs in enumerate(lists):
        offset = matches = 0
        if i != ref:
            offset, matches = estimate(lists[ref], evs)
        shifted = shift(evs, offset)
        if any(shifted[k].ts > shifted[k + 1].ts for k in range(len(shifted) - 1)):
            shifted.sort(key=lambda e: e.ts)
        aligned.append(shifted)
        if infos is not None and i < len(infos):
            infos[i]["clock_offset"] = offset
            infos[i]["matched_operations"] = matches
    merged = list(heapq.merge(*aligned, key=lambda e: e.ts))
    stats: dict = {}
    out = dedupe(merged, stats=stats)
    if infos is not None:
        for i, evs in enumerate(lists):
            if i < len(infos) and evs and evs[0].provider == PROCMON:
                infos[i]["duplicates_dropped"] = stats.get("duplicates", 0)
    return out


def add_process_table(trace: Trace, table: list[dict]) -> None:
    """Processes and modules a source lists outside its events (a Procmon log's process table).

    Events win: a table only fills what the trace's own events did not say.  Kernel modules (the
    System process's list) are also filed under pid 0, where ``Trace.image_for`` looks for them.
    """
    for proc in table:
        pid = proc["pid"]
        info = trace.processes.get(pid)
        if info is None:
            info = trace.processes[pid] = ProcessInfo(pid)
        info.image = info.image or proc.get("image")
        info.command_line = info.command_line or proc.get("command_line")
        if info.parent_pid is None:
            info.parent_pid = proc.get("parent_pid")
        if info.session_id is None:
            info.session_id = proc.get("session_id")
        info.user_sid = info.user_sid or proc.get("user_sid")
        if info.start is None:
            info.start = proc.get("start")
        if info.end is None:
            info.end = proc.get("end")
        owners = (pid, 0) if proc.get("kernel") else (pid,)
        for owner in owners:
            if trace.images.get(owner):
                continue
            images = [ImageInfo(base, size, path) for base, size, path in proc.get("modules") or () if size]
            if images:
                trace.images[owner] = sorted(images, key=lambda i: i.base)
