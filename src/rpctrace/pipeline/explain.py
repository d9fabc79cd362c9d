"""Explaining: findings (root cause, identity, ACL verdict, fix), with what the inputs could not
show, and the ACL check of one key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from rpctrace.correlate.calls import Correlation
from rpctrace.pipeline.read import OnProgress, calls, limits
from rpctrace.schema import Finding
from rpctrace.trace.model import Trace

if TYPE_CHECKING:
    from rpctrace.explain.acl_sources import AclSources


def acl_sources(hives: Iterable[str] = (), sddl_pairs: Iterable[str] = (), hive_logs: Iterable[str] = ()) -> AclSources:
    """The security descriptors the person gave (``--hive`` with its ``--hive-log`` files,
    ``--sddl KEYPATH=SDDL``), checked before any trace is read: a typo costs no minute of reading
    first.  Their ``warnings`` say what the person must know (a dirty hive read as it is)."""
    from rpctrace.explain.acl_sources import AclSources

    return AclSources.from_args(list(hives), list(sddl_pairs), hive_logs=list(hive_logs))


def findings(trace: Trace, correlation: Correlation | None = None, hives: Iterable[str] = (),
             sddl_pairs: Iterable[str] = (), acls: AclSources | None = None,
             include_expected: bool = False) -> list[Finding]:
    """What ``explain`` prints: the findings of a trace (whole, or streamed with its correlation),
    with ACL verdicts from ``acls`` or else from ``hives`` and ``sddl_pairs``; expected results
    only with ``include_expected`` (``explain --all``)."""
    from rpctrace.correlate import correlate
    from rpctrace.explain.findings import build_findings

    if acls is None:
        acls = acl_sources(hives, sddl_pairs)
    return build_findings(trace, correlation if correlation is not None else correlate(trace), acls,
                          include_expected=include_expected)


@dataclass
class Explanation:
    """What ``explain`` shows: the findings, the expected results it left out, and the limits of
    the inputs (what they could not show)."""

    trace: Trace
    findings: list[Finding]
    left_out: int
    limits: list[str]
    calls: int


def explain(files: Sequence[str], keep_going: bool = False, acls: AclSources | None = None,
            include_expected: bool = False,
            on_progress: OnProgress | None = None, on_stage: Callable[[str], None] | None = None,
            call_id: int | None = None, symbols: str | None = None, image_path: Sequence[str] = ()) -> Explanation:
    """Read the inputs streamed (calls keep their operations; captures join in) and explain them;
    with ``call_id``, only the findings about that call (its own, or one whose hops or failure
    run through it: a nested call's failure is blamed in its root call's finding).  ``symbols``
    and ``image_path`` name frames from PDBs (see :func:`rpctrace.pipeline.attach_symbols`)."""
    from rpctrace.errors import RpctraceError
    from rpctrace.explain.findings import expected_left_out

    trace, result = calls(files, keep_going=keep_going, on_progress=on_progress, symbols=symbols,
                          image_path=image_path)
    if call_id is not None and not any(c.id == call_id for c in result.calls):
        raise RpctraceError(f"no call {call_id} (calls are numbered 1..{len(result.calls)})")
    if on_stage is not None:
        on_stage("explaining")
    found = findings(trace, result, acls=acls, include_expected=include_expected)
    if call_id is not None:
        found = [f for f in found if _about(f, call_id)]
    left_out = 0 if include_expected else expected_left_out(trace, result)
    return Explanation(trace, found, left_out, limits(trace), len(result.calls))


def acl_check(key: str | None, hives: Sequence[str], sddl_pairs: Sequence[str], principal_names: Sequence[str],
              access_text: str, hive_logs: Sequence[str] = (), as_service: str | None = None) -> dict[str, Any]:
    """What ``rpctrace acl`` reports: the key's descriptor (and its parent's) from ``hives`` or
    ``sddl_pairs``, the verdict for ``principal_names`` (and, with ``as_service``, every SID a
    token of that service holds) asking ``access_text``, and the fix."""
    from rpctrace.errors import InputError, RpctraceError
    from rpctrace.explain.acl_sources import AclSources
    from rpctrace.knowledge import access
    from rpctrace.knowledge import sids as sid_names
    from rpctrace.security import SecurityDescriptor, SecurityDescriptorError, to_sddl
    from rpctrace.security.check import evaluate, resolve_principals
    from rpctrace.security.fixes import suggest_fix

    names = list(principal_names)
    token = None
    if as_service:
        kind, _, name = as_service.partition(":")
        if kind.lower() != "service" or not name.strip():
            raise RpctraceError(f"--as: expected service:NAME (e.g. service:Audiosrv), got {as_service!r}")
        token = sid_names.principal_notes(name.strip(), None)
        names = [sid for sid, _, _ in token] + names
    if not names:
        raise RpctraceError("say whose access to check: --principal NAME|SID... or --as service:NAME")
    try:
        principals = resolve_principals(names)
    except ValueError as exc:
        raise RpctraceError(f"--principal: {exc}") from None
    try:
        desired = access.parse(access_text, "key")
    except ValueError as exc:
        raise RpctraceError(f"--access: {exc}") from None
    try:
        sources = AclSources.from_args(list(hives), list(sddl_pairs), key=key or "", hive_logs=list(hive_logs))
    except InputError as exc:
        if exc.path == "--sddl" or exc.path.startswith("--sddl "):
            raise RpctraceError(f"--sddl: {exc.message}") from None
        raise
    if key is None and len(sddl_pairs) == 1:
        from rpctrace.explain.acl_sources import split_sddl_pair

        key = split_sddl_pair(sddl_pairs[0])[0]  # --sddl KEYPATH=SDDL names the key
    if key is None and hives:
        raise RpctraceError("say which key: rpctrace acl KEYPATH --hive PATH ...")
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
    full_key = found.full_path or key or None  # PowerShell needs the path the running system knows
    fix = None
    if not verdict.allowed:
        fix = suggest_fix(found.sd, parent.sd if parent else None, principals, desired, full_key, "key")

    def sddl_of(sd: SecurityDescriptor | None) -> str | None:
        if sd is None:
            return None
        try:
            return to_sddl(sd, "key")
        except SecurityDescriptorError as exc:
            return f"(no SDDL form: {exc.message})"

    if found.hive_path is not None:
        source: dict[str, Any] = {"hive": found.hive_path, "key": key, "full_path": full_key, "parent": parent_path,
                        "hive_kind": found.hive_kind}
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
        "token": ([{"sid": sid, "name": sid_names.name_of(sid), "why": why} for sid, why, _ in token]
                  if token is not None else None),
        "warnings": list(sources.warnings),
        "access": verdict.to_dict(),
        "fix": fix.to_dict() if fix else None,
    }


def _about(finding: Finding, call_id: int) -> bool:
    """Whether ``finding`` is about call ``call_id``: its own call, a hop of its chain, or the
    call its failure happened in."""
    failure = finding.get("failure") or {}
    return (finding.get("call") == call_id or failure.get("call") == call_id
            or any(hop["call"] == call_id for hop in finding.get("hops") or ()))
