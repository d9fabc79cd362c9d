"""Attach StackWalk stacks to the events they belong to.

A StackWalk event names its event by the event's own timestamp (``event_ts``) and thread.  It is
logged right after that event, on the same processor, so the match is (timestamp, thread), and
for events logged without a thread id (PERFINFO headers) (timestamp, processor), as TraceEvent's
TraceLog does.  Compressed stacks arrive as references (StackKeyKernel/StackKeyUser) to keys whose
frames are defined by KeyRundown/KeyDelete events, often later in the trace, so keys are
resolved after the whole trace has been read.  Kernel frames come first (innermost), then user
frames, as a debugger prints them.
"""

from __future__ import annotations

from rpctrace.model import Event


def attach_stacks(events: list[Event]) -> list[Event]:
    """Return ``events`` with ``stack`` set on every event a stack belongs to."""
    keys: dict[int, list[int]] = {}
    for ev in events:
        if ev.kind == "stack_key":
            keys.setdefault(ev.fields["key"], ev.fields["frames"])

    # (event_ts, tid) -> [kernel frames, user frames]; cpu kept to match id-less events
    wanted: dict[tuple[int, int], list] = {}
    by_cpu: dict[tuple[int, int | None], tuple[tuple[int, int], int]] = {}
    for ev in events:
        if ev.kind != "stack":
            continue
        f = ev.fields
        key = (f["event_ts"], f["stack_tid"])
        parts = wanted.get(key)
        if parts is None:
            parts = wanted[key] = [None, None]
            by_cpu[(f["event_ts"], ev.cpu)] = (key, f["stack_pid"])
        if "frames" in f:
            frames = f["frames"]
            # a full stack walk that reaches user mode holds both parts already
            parts[0] = frames if parts[0] is None else parts[0]
        else:
            frames = keys.get(f["key"])
            if frames is not None:
                parts[0 if f["part"] == "kernel" else 1] = frames
    if not wanted:
        return events
    out = []
    for ev in events:
        if ev.kind not in ("stack", "stack_key") and ev.stack is None:
            key = (ev.ts, ev.tid)
            parts = wanted.get(key) if ev.tid is not None else None
            if parts is None:
                alt = by_cpu.get((ev.ts, ev.cpu))
                if alt is not None and ev.tid is None:
                    # an event logged without ids: the stack knows its true thread and process
                    (key, pid) = alt
                    parts = wanted.get(key)
                    ev = ev._replace(tid=key[1], pid=ev.pid if ev.pid is not None else pid)
            if parts is not None:
                frames = (parts[0] or []) + (parts[1] or [])
                if frames:
                    ev = ev._replace(stack=tuple(frames))
        out.append(ev)
    return out
