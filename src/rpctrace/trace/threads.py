"""Give events that know their thread but not their process (PERFINFO headers) a process id.

As TraceEvent does (KernelTraceEventParser ThreadIDToProcessID): a thread belongs to the process
named by its latest Thread Start/DCStart before the event; for a thread whose start the trace
never saw (a circular logger, or rundown only at the end), the process named by its End/DCEnd
after the event.  Events whose thread is unknown keep ``pid=None``.
"""

from __future__ import annotations

import bisect

from rpctrace.model import Event

DC_START, DC_END = 3, 4  # rundown opcodes: at the start and at the end of the trace


def attribute_processes(events: list[Event]) -> list[Event]:
    # (thread events that name no thread tell nothing of one: they are passed over)
    ends: dict[int, tuple[list[int], list[int | None]]] = {}  # tid -> End/DCEnd times, pids
    for ev in events:
        if ev.tid is not None and (ev.kind == "thread.end" or (ev.kind == "thread.rundown" and ev.opcode == DC_END)):
            times, pids = ends.setdefault(ev.tid, ([], []))
            times.append(ev.ts)
            pids.append(ev.pid)
    live: dict[int, int | None] = {}  # tid -> pid of its latest Start/DCStart so far
    out = events
    for i, ev in enumerate(events):
        kind = ev.kind
        if kind == "thread.start" or (kind == "thread.rundown" and ev.opcode == DC_START):
            if ev.tid is not None:
                live[ev.tid] = ev.pid
            continue
        if ev.pid is not None or ev.tid is None:
            continue
        pid = live.get(ev.tid)
        if pid is None:
            entry = ends.get(ev.tid)
            if entry is not None:
                j = bisect.bisect_left(entry[0], ev.ts)
                if j < len(entry[0]):
                    pid = entry[1][j]
        if pid is not None:
            out[i] = ev._replace(pid=pid)
    return out
