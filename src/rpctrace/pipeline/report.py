"""The HTML report's model: the calls of the page, its findings, its scope and what the inputs
could not show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from rpctrace.correlate.calls import Call
from rpctrace.correlate.select import CallFilter
from rpctrace.pipeline.explain import acl_sources, findings
from rpctrace.pipeline.read import OnProgress, calls, limits, source_warnings
from rpctrace.pipeline.select import tree_roots
from rpctrace.schema import Finding
from rpctrace.trace.model import Trace

REPORT_DETAILED_CALLS = 3000


@dataclass
class ReportModel:
    """What the HTML report shows, computed: the calls of the page, its findings and its scope."""

    trace: Trace
    calls: list[Call]
    findings: list[Finding]
    total_calls: int
    scope: str | None
    unpaired: dict[str, int]
    detailed: int = REPORT_DETAILED_CALLS
    limits: list[str] = field(default_factory=list)  # what the inputs could not show
    warnings: list[str] = field(default_factory=list)  # about the descriptors given (a dirty hive)
    losses: list[str] = field(default_factory=list)  # what the readers lost, skipped or stopped at


def _with_descendants(chosen: Iterable[Call]) -> list[Call]:
    seen: dict[int, Call] = {}
    for call in chosen:
        for c in call.subtree():
            if id(c) in seen:
                break
            seen[id(c)] = c
    return list(seen.values())


def report(files: Sequence[str], keep_going: bool = False, flt: CallFilter | None = None, call_id: int | None = None,
           hives: Iterable[str] = (), sddl_pairs: Iterable[str] = (), hive_logs: Iterable[str] = (),
           on_progress: OnProgress | None = None,
           on_stage: Callable[[str], None] | None = None, symbols: str | None = None,
           image_path: Sequence[str] = ()) -> ReportModel:
    """The report's model, streamed: the trace is read once, calls keep their operations, and the
    findings come from the calls and the failures outside them (no event list is kept)."""
    from rpctrace.errors import RpctraceError

    acls = acl_sources(hives, sddl_pairs, hive_logs)
    # every operation of the calls a page can show in detail, and of every call that failed;
    # the others keep a count (a busy trace's operations would not fit in memory)
    detail = REPORT_DETAILED_CALLS if call_id is None and not (flt is not None and flt.active) else 0
    trace, result = calls(files, keep_going=keep_going, operations="report" if detail else "all",
                          on_progress=on_progress, keep_all_for=2 * detail, symbols=symbols, image_path=image_path)
    if on_stage is not None:
        on_stage("explaining")
    found = findings(trace, result, acls=acls)
    chosen = result.calls
    scope = None
    if call_id is not None:
        chosen = [c for c in result.calls if c.id == call_id]
        if not chosen:
            raise RpctraceError(f"no call {call_id} (calls are numbered 1..{len(result.calls)})")
        scope = f"--call {call_id}"
    elif flt is not None and flt.active:
        chosen = tree_roots(result, trace, flt)
        scope = flt.describe()
    if scope is not None:
        chosen = _with_descendants(chosen)
        ids = {c.id for c in chosen}
        found = [f for f in found if f.get("call") in ids
                 or (f.get("call") is None and call_id is None and _process_matches(flt, trace, f))]
    return ReportModel(trace, list(chosen), found, len(result.calls), scope, result.unpaired,
                       limits=limits(trace), warnings=list(acls.warnings), losses=_losses(trace))


def _losses(trace: Trace) -> list[str]:
    """The report's lines about lost events, skipped damage and where reading stopped (the same
    lines the commands print on stderr)."""
    lines = source_warnings(trace)
    if trace.error is not None:
        lines.append(f"reading stopped early: {trace.error.one_line()}")
    return lines


def _process_matches(flt: CallFilter | None, trace: Trace, finding: Finding) -> bool:
    """Whether a finding without a call (a failure seen only on the server's stack) belongs to a
    filtered page: only ``--server`` and ``--failed`` can say (there is no client or interface)."""
    if flt is None or flt.client or flt.interface:
        return False
    if not flt.server:
        return True
    from rpctrace.correlate.select import _ProcessMatch

    pid = (finding.get("server") or {}).get("pid")
    return _ProcessMatch(flt.server, trace, "server")(pid, None, None)
