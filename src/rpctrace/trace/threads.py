"""Give events that know their thread but not their process (PERFINFO headers) a process id.

As TraceEvent does (KernelTraceEventParser ThreadIDToProcessID): a thread belongs to the process
named by its latest Thread Start/DCStart before the event; for a thread whose start the trace
never saw (a circular logger, or rundown only at the end), the process named by its End/DCEnd
after the event.  Events whose thread is unknown keep ``pid=None``.

:class:`ThreadTable` is the table both assemblies fill, one thread event at a time: the
whole-trace one (:func:`attribute_processes`, which sees the ends before it assigns) and the
streamed one (:class:`rpctrace.trace.stream.TraceStream`, which assigns from the starts as
events pass and from the ends once the stream is over).
"""

from __future__ import annotations

import bisect

from rpctrace.model import Event

DC_START, DC_END = 3, 4  # rundown opcodes: at the start and at the end of the trace


class ThreadTable:
    """Which process each thread belongs to, from the thread events seen so far."""

    __slots__ = ("live", "ends")

    def __init__(self) -> None:
        self.live: dict[int, int | None] = {}  # tid -> pid of its latest Start/DCStart so far
        self.ends: dict[int, tuple[list[int], list[int | None]]] = {}  # tid -> End/DCEnd times, pids

    @staticmethod
    def is_start(ev: Event) -> bool:
        return ev.kind == "thread.start" or (ev.kind == "thread.rundown" and ev.opcode == DC_START)

    @staticmethod
    def is_end(ev: Event) -> bool:
        return ev.kind == "thread.end" or (ev.kind == "thread.rundown" and ev.opcode == DC_END)

    def add(self, ev: Event, starts: bool = True, ends: bool = True) -> None:
        """Note a thread event (one that names no thread tells nothing of one)."""
        if ev.tid is None:
            return
        if starts and self.is_start(ev):
            self.live[ev.tid] = ev.pid
        elif ends and self.is_end(ev):
            times, pids = self.ends.setdefault(ev.tid, ([], []))
            times.append(ev.ts)
            pids.append(ev.pid)

    def ended_as(self, tid: int, ts: int) -> int | None:
        """The process the first End/DCEnd of ``tid`` at or after ``ts`` names, if any."""
        entry = self.ends.get(tid)
        if entry is not None:
            j = bisect.bisect_left(entry[0], ts)
            if j < len(entry[0]):
                return entry[1][j]
        return None


def attribute_processes(events: list[Event]) -> list[Event]:
    """In place: the process of each event that names its thread but not its process (see the
    module docstring).  (The loops compare kinds before calling the table: they run per event.)"""
    table = ThreadTable()
    for ev in events:
        kind = ev.kind
        if kind == "thread.end" or kind == "thread.rundown":
            table.add(ev, starts=False)
    live = table.live
    out = events
    for i, ev in enumerate(events):
        kind = ev.kind
        if (kind == "thread.start" or kind == "thread.rundown") and table.is_start(ev):
            table.add(ev, ends=False)
            continue
        if ev.pid is not None or ev.tid is None:
            continue
        pid = live.get(ev.tid)
        if pid is None:
            pid = table.ended_as(ev.tid, ev.ts)
        if pid is not None:
            out[i] = ev._replace(pid=pid)
    return out
