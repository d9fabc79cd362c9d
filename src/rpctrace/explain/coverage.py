"""What a trace holds and lacks, and what each lack costs the answers.

rpctrace's answers are only as good as what was recorded: without RPC events there are no
interface or procedure names, without RPC stop events no call results, without ALPC the client
and server are joined by endpoint and time only, without registry events no registry failure
can be seen, without stacks no failure is placed in code.  :func:`coverage` counts, for one
trace and its correlation, the events of each family the readers delivered and the losses they
counted, and says in plain words what is missing (:meth:`Coverage.lacks`).  ``rpctrace index``
stores it in its ``traces`` table; ``rpctrace check`` prints it.

Counts come from the trace's events when it kept them (:func:`rpctrace.pipeline.load`), else
from the per-kind counts a streamed read keeps (``trace.sources[i]["kinds"]``, see
:class:`rpctrace.trace.stream.TraceStream`).  A count the read could not make is ``None``, and
the lack lines do not claim anything about it (a listing reads no stacks, so it cannot say
there are none).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rpctrace.correlate.calls import Correlation
    from rpctrace.trace.model import Trace

__all__ = ["Coverage", "coverage"]

_RPC_STARTS = ("rpc.client_start", "rpc.server_start")
_RPC_STOPS = ("rpc.client_stop", "rpc.server_stop")


@dataclass
class Coverage:
    """Counts of what one trace holds (None: not counted by this read) and what was lost."""

    events: int
    rpc_events: int | None
    rpc_stop_events: int | None
    alpc_events: int | None
    registry_events: int | None
    file_events: int | None
    stacks: int | None
    process_rundown: int | None
    process_starts: int | None
    image_loads: int | None
    processes: int
    events_lost: int
    buffers_lost: int
    damaged_regions: int
    calls: int | None = None
    unpaired: dict[str, int] = field(default_factory=dict)
    outside_failures_dropped: int = 0
    error: str | None = None
    formats: tuple[str, ...] = ()

    def lacks(self) -> list[str]:
        """What the trace lacks or lost, one line each, with what it costs; empty when nothing."""
        out: list[str] = []
        procmon = "pml" in self.formats
        if self.error:
            out.append(f"reading stopped at damage ({self.error}): what follows it is not in the trace")
        if self.events_lost or self.buffers_lost:
            out.append(f"the logger lost {self.events_lost} events and {self.buffers_lost} buffers: "
                       "calls and failures may be missing or unpaired")
        if self.damaged_regions:
            out.append(f"{self.damaged_regions} damaged region(s) were skipped: what they held is missing")
        if self.rpc_events == 0:
            out.append("no Microsoft-Windows-RPC call events: interfaces, procedures and endpoints are unknown"
                       + (" (calls come from ALPC messages alone)" if self.alpc_events else ""))
        elif self.rpc_stop_events == 0:
            out.append("no RPC stop events: the calls' results (RPC status) are unknown")
        if self.alpc_events == 0:
            if self.rpc_events:
                out.append("no kernel ALPC events: client and server are joined by endpoint, interface and time "
                           "only (lower confidence), and the server thread's work is not attributed")
            else:
                out.append("no kernel ALPC events: no client-to-server message can be followed")
        if self.registry_events == 0:
            out.append("no registry events: a failing registry key cannot be seen")
        if self.file_events == 0:
            out.append("no file events: a failing file cannot be seen")
        if self.stacks == 0:
            out.append("no stacks: failures are not placed in code, and RPC dispatch is not recognised on stacks")
        if self.processes == 0:
            out.append("no process events or table: images, command lines, users and services are unknown")
        elif self.process_rundown == 0 and not procmon:
            out.append("no process rundown: processes already running when recording began are known by id only")
        if self.image_loads == 0 and not procmon:
            out.append("no image load events: stack addresses cannot be named as module+offset")
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["formats"] = list(self.formats)
        d["lacks"] = self.lacks()
        return d


def _kind_counts(trace: Trace) -> tuple[Counter | None, int | None]:
    """Events per kind and events with a stack attached, from the events or the stream's counts."""
    if trace.events:
        kinds: Counter = Counter(ev.kind for ev in trace.events)
        return kinds, sum(1 for ev in trace.events if ev.stack is not None)
    total: Counter = Counter()
    with_stack = 0
    counted = False
    for info in trace.sources:
        if "kinds" in info:
            counted = True
            total.update(info["kinds"])
            with_stack += info.get("events_with_stack", 0)
    return (total, with_stack) if counted else (None, None)


def coverage(trace: Trace, correlation: Correlation | None = None) -> Coverage:
    """What ``trace`` holds and lacks (``correlation`` adds the calls and what stayed unpaired)."""
    kinds, with_stack = _kind_counts(trace)

    def count(*names: str, prefix: str | None = None, exclude: str | None = None) -> int | None:
        if kinds is None:
            return None
        n = sum(kinds.get(k, 0) for k in names)
        if prefix is not None:
            n += sum(v for k, v in kinds.items() if k.startswith(prefix) and not (exclude and k.startswith(exclude)))
        return n

    stacks_read = all(info.get("stacks_read", True) for info in trace.sources)
    # ETW stack walks are events of their own (a whole trace also attaches them to the events
    # they belong to: not counted twice); Procmon's stacks come attached to the events
    stacks = (count("stack") or with_stack or 0) if stacks_read and kinds is not None else None
    events = trace.records if trace.records is not None else len(trace.events)
    return Coverage(
        events=events,
        rpc_events=count(*_RPC_STARTS),
        rpc_stop_events=count(*_RPC_STOPS),
        alpc_events=count(prefix="alpc."),
        registry_events=count(prefix="registry.", exclude="registry.kcb_"),
        file_events=count(prefix="file."),
        stacks=stacks,
        process_rundown=count("process.rundown"),
        process_starts=count("process.start"),
        image_loads=count("image.load", "image.rundown"),
        processes=sum(1 for p in trace.processes.values() if p.image or p.command_line),
        events_lost=sum(int(info.get("events_lost") or 0) for info in trace.sources),
        buffers_lost=sum(int(info.get("buffers_lost") or 0) for info in trace.sources),
        damaged_regions=sum(len(info.get("damage") or []) for info in trace.sources),
        calls=len(correlation.calls) if correlation is not None else None,
        unpaired=dict(correlation.unpaired) if correlation is not None else {},
        outside_failures_dropped=correlation.outside_dropped if correlation is not None else 0,
        error=trace.error.one_line() if getattr(trace, "error", None) is not None else None,
        formats=tuple(str(info.get("format", "etl")) for info in trace.sources),
    )
