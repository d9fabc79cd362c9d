"""The one place that runs rpctrace's stages: sources -> trace -> correlate -> explain.

Commands parse their arguments, call one function here and hand the result to a renderer;
renderers never compute.  Two ways through the stages:

* **streamed** (:func:`calls`): one file is read as a stream and calls are rebuilt as events pass,
  so memory follows the calls, not the events (``rpctrace calls`` on ten million events);
* **whole** (:func:`load`): every event is kept, for what needs the whole trace (``events``,
  ``explain``'s stacks and identities, the report's timeline).

``on_progress(done, total)`` is a plain callable (see :mod:`rpctrace.progress`): the stages
report how far reading is, the command decides whether a bar is shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from rpctrace.correlate.calls import Correlation
from rpctrace.correlate.select import CallFilter
from rpctrace.trace.model import Trace

__all__ = ["calls", "coverage", "findings", "findings_of_call", "load", "source_warnings"]

OnProgress = Callable[[float, float], None]


def source_warnings(trace: Trace) -> list[str]:
    """One line per loss or damage the readers counted (commands print them on stderr, so that
    stdout stays machine-readable)."""
    lines = []
    for info in trace.sources:
        lost = info.get("events_lost", 0) + info.get("buffers_lost", 0)
        if lost or info.get("buffers_flagged_lost"):
            lines.append(f"{info['path']}: the logger lost {info.get('events_lost', 0)} events and "
                         f"{info.get('buffers_lost', 0)} buffers")
        damage = info.get("damage") or []
        if damage:
            lines.append(f"{info['path']}: skipped {len(damage)} damaged region(s); first: {damage[0]}")
    return lines


def load(files: Sequence[str], keep_going: bool = False, on_progress: OnProgress | None = None) -> Trace:
    """Every event of ``files``, assembled.  Damage that ended reading is in ``trace.error`` (the
    caller reports it after using what was read); it is raised only when nothing was read."""
    from rpctrace.trace import load as load_trace

    trace = load_trace(files, keep_going=keep_going, on_progress=on_progress)
    if trace.error is not None and not trace.events:
        raise trace.error
    return trace


#: calls of a report shown in detail (the rest: failing ones in brief, others counted)
REPORT_DETAILED_CALLS = 3000


def calls(files: Sequence[str], keep_going: bool = False, operations: str = "all",
          on_progress: OnProgress | None = None, keep_all_for: int = 0) -> tuple[Trace, Correlation]:
    """``(trace, correlation)``, streamed when there is one file (see the module docstring).

    ``operations="failed"`` keeps only the servers' failed operations (a listing shows no
    others); ``"all"`` keeps every operation and the stacks of failed ones (the tree)."""
    from rpctrace.correlate import correlate_files

    trace, result = correlate_files(files, keep_going=keep_going, operations=operations, on_progress=on_progress,
                                    keep_all_for=keep_all_for)
    if trace.error is not None and not trace.records:
        raise trace.error
    return trace, result


def select(result: Correlation, trace: Trace, flt: CallFilter | None) -> Iterable:
    """The calls of ``result`` that pass ``flt`` (lazily)."""
    if flt is None or not flt.active:
        return result.calls
    return flt.apply(result.calls, trace)


def acl_sources(hives: Iterable[str] = (), sddl_pairs: Iterable[str] = ()):
    """The security descriptors the person gave (``--hive``, ``--sddl KEYPATH=SDDL``), checked
    before any trace is read: a typo costs no minute of reading first."""
    from rpctrace.explain.acl_sources import AclSources

    return AclSources.from_args(list(hives), list(sddl_pairs))


def findings(trace: Trace, correlation: Correlation | None = None, hives: Iterable[str] = (),
             sddl_pairs: Iterable[str] = (), acls=None) -> list[dict]:
    """What ``explain`` prints: the findings of a trace (whole, or streamed with its correlation),
    with ACL verdicts from ``acls`` or else from ``hives`` and ``sddl_pairs``."""
    from rpctrace.correlate import correlate
    from rpctrace.explain.findings import build_findings

    if acls is None:
        acls = acl_sources(hives, sddl_pairs)
    return build_findings(trace, correlation if correlation is not None else correlate(trace), acls)


def findings_of_call(trace: Trace, call_id: int, acls=None) -> list[dict]:
    """The findings about call ``call_id`` of a whole trace: the finding of that call, or the one
    that blames a failure inside it (a nested call's failure is blamed in its root call's finding)."""
    from rpctrace.correlate import correlate
    from rpctrace.errors import RpctraceError

    result = correlate(trace)
    if not any(c.id == call_id for c in result.calls):
        raise RpctraceError(f"no call {call_id} (calls are numbered 1..{len(result.calls)})")
    return [f for f in findings(trace, result, acls=acls)
            if f.get("call") == call_id or (f.get("failure") or {}).get("call") == call_id]


def coverage(trace: Trace, correlation: Correlation | None = None):
    """What ``trace`` holds and lacks (:func:`rpctrace.explain.coverage.coverage`)."""
    from rpctrace.explain.coverage import coverage as compute

    return compute(trace, correlation)


def tree_roots(result: Correlation, trace: Trace, flt: CallFilter | None = None, call_id: int | None = None) -> list:
    """Where a call tree starts: the call ``call_id``; else, without filters, every call no other
    call made; with filters, every call that passes and is not inside another call that passes
    (so each matching call is shown once, with what it led to)."""
    if call_id is not None:
        return [c for c in result.calls if c.id == call_id]
    if flt is None or not flt.active:
        return [c for c in result.calls if c.parent is None]
    match = flt.matcher(trace)
    chosen = [c for c in result.calls if match(c)]
    ids = {id(c) for c in chosen}
    roots = []
    for c in chosen:
        p, depth = c.parent, 0
        while p is not None and id(p) not in ids and depth < 64:
            p, depth = p.parent, depth + 1
        if p is None or id(p) not in ids:
            roots.append(c)
    return roots


def call_with_stacks(trace: Trace, call_id: int) -> dict:
    """The record of call ``call_id`` of a whole trace, each failure with its stack as
    ``module+0xoffset`` frames (what the WinDbg script and the report show)."""
    from rpctrace.correlate import call_record, correlate
    from rpctrace.errors import RpctraceError
    from rpctrace.knowledge.interfaces import lookup
    from rpctrace.knowledge.status import ntstatus_name

    calls = correlate(trace).calls
    found = [c for c in calls if c.id == call_id]
    if not found:
        raise RpctraceError(f"no call {call_id} (calls are numbered 1..{len(calls)})")
    call = found[0]
    record = call_record(call, trace, names=lookup, status_name=ntstatus_name)
    for rec, op in zip(record["failures"], call.failures):
        if op.stack:
            rec["stack"] = [trace.symbolize(op.pid, addr) for addr in op.stack]
    return record


def acl_check(key: str | None, hives: Sequence[str], sddl_pairs: Sequence[str], principal_names: Sequence[str],
              access_text: str) -> dict:
    """What ``rpctrace acl`` reports: the key's descriptor (and its parent's) from ``hives`` or
    ``sddl_pairs``, the verdict for ``principal_names`` asking ``access_text``, and the fix."""
    from rpctrace.errors import InputError, RpctraceError
    from rpctrace.explain.access_check import evaluate, resolve_principals, suggest_fix
    from rpctrace.explain.acl_sources import AclSources
    from rpctrace.explain.security import SecurityDescriptorError, to_sddl
    from rpctrace.knowledge import access

    try:
        principals = resolve_principals(list(principal_names))
    except ValueError as exc:
        raise RpctraceError(f"--principal: {exc}") from None
    try:
        desired = access.parse(access_text, "key")
    except ValueError as exc:
        raise RpctraceError(f"--access: {exc}") from None
    try:
        sources = AclSources.from_args(list(hives), list(sddl_pairs), key=key or "")
    except InputError as exc:
        if exc.path == "--sddl" or exc.path.startswith("--sddl "):
            raise RpctraceError(f"--sddl: {exc.message}") from None
        raise
    name = key or ""  # "": the one key a bare --sddl describes, unnamed
    found = sources.require(name)
    parent_path = sources.parent_path(name) if key else None
    parent = None
    parent_error = None
    if parent_path:
        try:
            parent = sources.require(parent_path)
        except InputError as exc:  # a missing or damaged parent only costs the inheritance fix
            if found.hive_path is not None:
                parent_error = exc.message
    verdict = evaluate(found.sd, principals, desired, "key")
    fix = None
    if not verdict.allowed:
        fix = suggest_fix(found.sd, parent.sd if parent else None, principals, desired, key or None, "key")

    def sddl_of(sd) -> str | None:
        if sd is None:
            return None
        try:
            return to_sddl(sd, "key")
        except SecurityDescriptorError as exc:
            return f"(no SDDL form: {exc.message})"

    if found.hive_path is not None:
        source: dict = {"hive": found.hive_path, "key": key, "parent": parent_path, "hive_kind": found.hive_kind}
        if parent_error:
            source["parent_error"] = parent_error
    else:
        source = {"sddl": found.sddl_text, "key": key or None, "parent": parent_path if parent else None}
    return {
        "source": source,
        "sddl": found.sddl_text if found.sddl_text is not None else sddl_of(found.sd),
        "parent_sddl": (parent.sddl_text or sddl_of(parent.sd)) if parent else None,
        "descriptor": found.sd.to_dict("key"),
        "principals": principals,
        "access": verdict.to_dict(),
        "fix": fix.to_dict() if fix else None,
    }


@dataclass
class ReportModel:
    """What the HTML report shows, computed: the calls of the page, its findings and its scope."""

    trace: Trace
    calls: list
    findings: list[dict]
    total_calls: int
    scope: str | None
    unpaired: dict[str, int]
    detailed: int = REPORT_DETAILED_CALLS


def _with_descendants(chosen: Iterable) -> list:
    seen: dict[int, object] = {}
    for call in chosen:
        for c in call.subtree():
            if id(c) in seen:
                break
            seen[id(c)] = c
    return list(seen.values())


def report(files: Sequence[str], keep_going: bool = False, flt: CallFilter | None = None, call_id: int | None = None,
           hives: Iterable[str] = (), sddl_pairs: Iterable[str] = (), on_progress: OnProgress | None = None,
           on_stage: Callable[[str], None] | None = None) -> ReportModel:
    """The report's model, streamed: the trace is read once, calls keep their operations, and the
    findings come from the calls and the failures outside them (no event list is kept)."""
    from rpctrace.errors import RpctraceError

    acls = acl_sources(hives, sddl_pairs)
    # every operation of the calls a page can show in detail, and of every call that failed;
    # the others keep a count (a busy trace's operations would not fit in memory)
    detail = REPORT_DETAILED_CALLS if call_id is None and not (flt is not None and flt.active) else 0
    trace, result = calls(files, keep_going=keep_going, operations="report" if detail else "all",
                          on_progress=on_progress, keep_all_for=2 * detail)
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
    return ReportModel(trace, list(chosen), found, len(result.calls), scope, result.unpaired)


def _process_matches(flt: CallFilter | None, trace: Trace, finding: dict) -> bool:
    """Whether a finding without a call (a failure seen only on the server's stack) belongs to a
    filtered page: only ``--server`` and ``--failed`` can say (there is no client or interface)."""
    if flt is None or flt.client or flt.interface:
        return False
    if not flt.server:
        return True
    from rpctrace.correlate.select import _ProcessMatch

    pid = (finding.get("server") or {}).get("pid")
    return _ProcessMatch(flt.server, trace, "server")(pid, None, None)
