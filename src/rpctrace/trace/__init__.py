"""The trace: events from every source merged in time order, with tables and stacks attached."""

from __future__ import annotations

import os
from typing import Iterable

from rpctrace.errors import InputError
from rpctrace.sources import Reader, open_source
from rpctrace.trace.fileio import join_file_status
from rpctrace.trace.gcpause import gc_paused
from rpctrace.trace.model import ImageInfo, ProcessInfo, Trace, build_tables
from rpctrace.trace.registry_paths import resolve_registry_paths
from rpctrace.trace.stacks import attach_stacks
from rpctrace.trace.threads import attribute_processes

__all__ = ["Trace", "ProcessInfo", "ImageInfo", "load", "assemble"]


def assemble(events: Iterable, sources: list[dict] | None = None, stacks: bool = True) -> Trace:
    """Turn time-ordered events into a :class:`Trace` (paths resolved, stacks attached, tables).
    ``stacks=False``: the events' stacks are already attached (per source: stack keys and
    timestamps of different files must not meet)."""
    events = attribute_processes(list(events))
    resolve_registry_paths(events)
    join_file_status(events)
    if stacks:
        events = attach_stacks(events)
    trace = Trace(events, sources=sources or [])
    build_tables(trace)
    return trace


def _read_all(reader: Reader, sink: list, on_progress=None) -> None:
    """Append every event of ``reader`` to ``sink``, telling ``on_progress`` how far it is."""
    for batch in reader.batches():
        sink.extend(batch)
        if on_progress is not None:
            pos = reader.progress()
            if pos is not None:
                on_progress(*pos)


def load(paths: Iterable[str | os.PathLike], keep_going: bool = False, on_progress=None) -> Trace:
    """Read every file and assemble one trace.

    Without ``keep_going`` the first damage ends the reading, but what was read before it is
    kept: the trace is assembled from it and the error is in ``trace.error`` for the caller to
    report after using what was read.  With ``keep_going`` damage is skipped and counted in
    ``trace.sources[i]["damage"]``.  A file that cannot be opened at all raises InputError.
    """
    with gc_paused():
        return _load(paths, keep_going, on_progress)


def _load(paths, keep_going: bool, on_progress=None) -> Trace:
    readers: list[Reader] = []
    try:
        for p in paths:
            readers.append(open_source(p, keep_going=keep_going))
    except InputError:
        for r in readers:
            r.close()
        raise
    events: list = []
    error: InputError | None = None
    tables: list = []
    try:
        if len(readers) == 1:
            try:
                _read_all(readers[0], events, on_progress)
            except InputError as exc:
                error = exc
            infos = [r.source_info() for r in readers]
        else:
            # Several files of one incident: each is read whole (damage in one does not end the
            # others), its registry paths and process ids resolved so operations compare, then
            # clocks are aligned on operations two sources both saw and duplicates dropped.
            from rpctrace.trace.merge import merge_sources

            lists = []
            for r in readers:
                got: list = []
                try:
                    _read_all(r, got, on_progress)
                except InputError as exc:
                    if error is None:
                        error = exc
                got = attribute_processes(got)
                resolve_registry_paths(got)
                join_file_status(got)
                lists.append(attach_stacks(got))
            infos = [r.source_info() for r in readers]
            events = merge_sources(lists, infos)
            del lists
        tables = [t for t in (r.process_table() for r in readers) if t is not None]
    finally:
        for r in readers:
            r.close()
    trace = assemble(events, infos, stacks=len(readers) == 1)
    trace.error = error
    if tables:
        from rpctrace.trace.merge import add_process_table

        for table in tables:
            add_process_table(trace, table)
    return trace

