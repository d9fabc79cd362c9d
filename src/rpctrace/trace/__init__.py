"""The trace: events from every source merged in time order, with tables and stacks attached."""

from __future__ import annotations

import heapq
import os
from typing import Iterable

from rpctrace.errors import InputError
from rpctrace.sources import open_source
from rpctrace.trace.gcpause import gc_paused
from rpctrace.trace.model import ImageInfo, ProcessInfo, Trace, build_tables
from rpctrace.trace.registry_paths import resolve_registry_paths
from rpctrace.trace.stacks import attach_stacks
from rpctrace.trace.threads import attribute_processes

__all__ = ["Trace", "ProcessInfo", "ImageInfo", "load", "assemble"]


def assemble(events: Iterable, sources: list[dict] | None = None) -> Trace:
    """Turn time-ordered events into a :class:`Trace` (paths resolved, stacks attached, tables)."""
    events = attribute_processes(list(events))
    resolve_registry_paths(events)
    events = attach_stacks(events)
    trace = Trace(events, sources=sources or [])
    build_tables(trace)
    return trace


def load(paths: Iterable[str | os.PathLike], keep_going: bool = False) -> Trace:
    """Read every file and assemble one trace.

    Without ``keep_going`` the first damage ends the reading, but what was read before it is
    kept: the trace is assembled from it and the error is in ``trace.error`` for the caller to
    report after using what was read.  With ``keep_going`` damage is skipped and counted in
    ``trace.sources[i]["damage"]``.  A file that cannot be opened at all raises InputError.
    """
    with gc_paused():
        return _load(paths, keep_going)


def _load(paths, keep_going: bool) -> Trace:
    readers = [open_source(p, keep_going=keep_going) for p in paths]
    events: list = []
    error: InputError | None = None
    try:
        streams = [r.events() for r in readers]
        merged = heapq.merge(*streams, key=lambda e: e.ts) if len(streams) > 1 else streams[0]
        try:
            for ev in merged:
                events.append(ev)
        except InputError as exc:
            error = exc
        infos = [{"path": r.path, **r.stats.summary()} for r in readers]
    finally:
        for r in readers:
            r.close()
    trace = assemble(events, infos)
    trace.error = error
    return trace
