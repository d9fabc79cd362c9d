"""What an input holds and what it lacks for rpctrace's questions, said out loud.

A trace without Microsoft-Windows-RPC events cannot say which procedure ran; one with start
events only (a saved RPC log filtered to event 6) cannot say how a call ended; one without kernel
ALPC events cannot say which server thread took a client's request.  rpctrace must never answer
"every call succeeded" from a trace that could not have shown a failure, so every command that
answers from a trace gets the same list of limits (:func:`limits`), and ``rpctrace check`` prints
the whole picture with advice on what to enable.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

__all__ = ["ADVICE", "Coverage", "coverage", "limits"]

#: what each missing part costs and how to get it (the `rpctrace record` profile enables all)
ADVICE: dict[str, str] = {
    "rpc": "no Microsoft-Windows-RPC events: interfaces, procedures and RPC statuses are unknown; enable the "
           "Microsoft-Windows-RPC provider (rpctrace record writes a WPR profile that does)",
    "rpc_results": "RPC start events without stop events: how calls ended (their RPC status) was not recorded; "
                   "keep events 7 and 8 of Microsoft-Windows-RPC (rpctrace record's profile keeps them)",
    "alpc": "no kernel ALPC events: server threads cannot be matched to the clients' calls; enable the kernel "
            "logger's ALPC flag (xperf -on ALPC, or rpctrace record's profile)",
    "server_work": "a network capture alone: it shows the calls and how they ended on the wire, not what the "
                   "servers did (their failing operations, identities, ACLs); record an ETW trace on the server "
                   "(rpctrace record) and give it with the capture",
    "registry": "no registry events: failed registry opens (the usual ACCESS DENIED) cannot be seen; enable "
                "the kernel's Registry flag or Microsoft-Windows-Kernel-Registry",
    "file": "no file events: failed file opens cannot be seen; enable the kernel's FileIO and FileIOInit flags",
    "stacks": "no stack walks: the code that made a failing operation cannot be shown; enable stack walking "
              "for registry and file events (xperf -stackwalk, or rpctrace record's profile)",
    "process_rundown": "no process start or rundown events: process names, command lines and services are "
                       "unknown; enable the kernel's Process flag (its rundown comes with it)",
    "image_loads": "no image load or rundown events: stack frames cannot be named by module; enable the "
                   "kernel's ImageLoad flag",
}

#: the same parts missing from inputs that cannot hold them: the advice is to record a trace beside
#: them, not to enable a provider in a tool that has none
RECORDED_ELSEWHERE: dict[str, str] = {
    "rpc": "a Process Monitor log holds no RPC events: interfaces, procedures and RPC statuses are unknown "
           "(its stacks still show failures inside RPC server dispatch); record an ETW trace beside it "
           "(rpctrace record's WPR profile) for the calls",
    "alpc": "{what} holds no kernel ALPC events: server threads cannot be matched to the clients' calls; "
            "record an ETW trace beside it (rpctrace record's WPR profile)",
}
#: the formats that cannot hold kernel ALPC events, as a person names them
_NO_ALPC = {"pml": "a Process Monitor log", "evtx": "an event log", "eventxml": "an event log export"}


@dataclass
class Coverage:
    """The events of an input by kind, what was lost, and what is missing (see :data:`ADVICE`)."""

    events: dict[str, int] = field(default_factory=dict)
    lost_events: int = 0
    lost_buffers: int = 0
    truncated: bool = False
    missing: list[str] = field(default_factory=list)
    formats: tuple[str, ...] = ()  # the inputs' formats

    @property
    def advice(self) -> list[str]:
        return [self.say(m) for m in self.missing]

    def say(self, missing: str) -> str:
        """What ``missing`` costs and how to get it, for these inputs (see :data:`ADVICE`)."""
        kinds = set(self.formats)
        if missing == "rpc" and kinds == {"pml"}:
            return RECORDED_ELSEWHERE["rpc"]
        if missing == "alpc" and len(kinds) == 1 and kinds <= set(_NO_ALPC):
            return RECORDED_ELSEWHERE["alpc"].format(what=_NO_ALPC[next(iter(kinds))])
        return ADVICE[missing]

    def to_dict(self) -> dict:
        return {"events": dict(sorted(self.events.items())), "lost_events": self.lost_events,
                "lost_buffers": self.lost_buffers, "truncated": self.truncated, "missing": list(self.missing),
                "advice": self.advice}


def _has(kinds: Counter, *prefixes: str) -> bool:
    return any(k.startswith(prefixes) for k, n in kinds.items() if n)


def coverage(kinds: Iterable[tuple[str, int]] | Counter, sources: list[dict], error: object = None,
             formats: Iterable[str] = ()) -> Coverage:
    """The coverage of a trace from its event counts by kind and its readers' summaries
    (``trace.sources``); ``error`` is the damage that ended reading, if any; ``formats`` the
    inputs' formats (a Procmon log carries each event's stack inside the event)."""
    counts = kinds if isinstance(kinds, Counter) else Counter(dict(kinds))
    formats = tuple(formats)
    cov = Coverage(events={k: n for k, n in counts.items() if n}, formats=formats)
    for info in sources:
        cov.lost_events += int(info.get("events_lost") or 0)
        cov.lost_buffers += int(info.get("buffers_lost") or 0)
        if info.get("damage") or info.get("truncated"):
            cov.truncated = True
    if error is not None:
        cov.truncated = True
    missing = []
    if not _has(counts, "rpc.", "net.rpc_request"):
        missing.append("rpc")
    elif not _has(counts, "rpc.client_stop", "rpc.server_stop", "net.rpc_response", "net.rpc_fault") \
            and _has(counts, "rpc.client_start", "rpc.server_start"):
        missing.append("rpc_results")
    if not _has(counts, "alpc.") and not _has(counts, "net.rpc_request"):
        missing.append("alpc")
    if _has(counts, "net.rpc_request") and not _has(counts, "rpc.server_start", "alpc.", "registry.", "file."):
        missing.append("server_work")  # the wire only: nothing the servers did
    if not _has(counts, "registry."):
        missing.append("registry")
    if not _has(counts, "file."):
        missing.append("file")
    if not _has(counts, "stack") and "pml" not in set(formats):
        missing.append("stacks")
    if not _has(counts, "process."):
        missing.append("process_rundown")
    if not _has(counts, "image."):
        missing.append("image_loads")
    cov.missing = missing
    return cov


#: the limits that change an answer about calls, in the order they matter
_ANSWER_LIMITS = ("rpc", "rpc_results", "alpc", "server_work")


def limits(cov: Coverage, losses: bool = True) -> list[str]:
    """The lines every answering command prints (stderr, or a banner in HTML) when the input
    limits its answer: missing RPC events, results or ALPC events, and losses.  ``losses=False``
    leaves the loss line out (stderr names each file's losses already:
    ``pipeline.source_warnings``)."""
    out = [cov.say(m) for m in _ANSWER_LIMITS if m in cov.missing]
    if losses and (cov.lost_events or cov.lost_buffers):
        out.append(f"the logger lost {cov.lost_events} events and {cov.lost_buffers} buffers: calls and failures "
                   "in what was lost cannot be shown")
    return out
