"""Findings: the chain from a client's call to the verdict and the fix, in the article's terms.

For each suspect call (:func:`rpctrace.explain.rootcause.suspect_calls`) a finding says:
client -> server (process, service, thread) -> interface/procedure -> failing operation (path in
HKLM form, desired access when the source has it, status) -> identity (process user, service and
its SID) -> ACL verdict (when the key's security descriptor is known, from a hive or SDDL) -> fix.

Traces without correlated calls (a Procmon log: no RPC events, but stacks that run through RPC
dispatch) give findings with ``call: null`` from :mod:`rpctrace.explain.dispatch`.
"""

from __future__ import annotations

from typing import Any

from rpctrace.correlate.calls import Call, Correlation
from rpctrace.explain.acl_sources import AclSources
from rpctrace.explain.rootcause import Blame, blame_rank, suspect_calls
from rpctrace.knowledge import access, codes, interfaces, services, sids
from rpctrace.model import ticks_to_iso


def _status_text(code: int | None) -> str:
    if code is None:
        return "?"
    info = codes.describe(code)
    return f"0x{code:08x} {info.name}" if info else f"0x{code:08x}"


def identity_of(trace, pid: int | None, interface: str | None) -> dict:
    """Who the server thread ran as: the process user, the service and its service SID."""
    info = trace.process(pid)
    user_sid = info.user_sid if info else None
    service = services.service_for(info.image if info else None, info.command_line if info else None, interface)
    return {
        "user": sids.name_of(user_sid) if user_sid else None,
        "user_sid": user_sid,
        "service": service,
        "service_sid": sids.service_sid(service) if service else None,
    }


def _principals(identity: dict) -> list[str]:
    """The SIDs the server thread's token would hold (see sids.principals_for_service)."""
    if identity.get("service"):
        return sids.principals_for_service(identity["service"], identity.get("user_sid"))
    out = [s for s in (identity.get("user_sid"),) if s]
    return out + [sids.resolve(n)[0] for n in ("Everyone", "Authenticated Users")]


def _who(identity: dict) -> str:
    if identity.get("service"):
        return f"NT SERVICE\\{identity['service']}"
    return identity.get("user") or identity.get("user_sid") or "the server's account"


def failure_of(trace, blame: Blame) -> dict:
    op = blame.op
    f = op.fields
    desired = f.get("desired_access")
    if op.stack:
        stack = trace.stack_json(op.pid, op.stack)
    else:
        stack = {"stack": f.get("frames"), "stack_kernel": None, "stack_user": None, "stack_addresses": None}
    return {
        "kind": op.kind,
        "path": f.get("path") or f.get("open_path") or f.get("key_name"),
        "nt_path": f.get("nt_path"),
        "status": f.get("status"),
        "status_name": codes.name(f.get("status"), hint="NTSTATUS") if f.get("status") is not None else None,
        "desired_access": desired,
        "desired_access_names": access.decode(desired, "key") if desired is not None and op.kind.startswith("registry.") else None,
        "pid": op.pid,
        "tid": op.tid,
        "ts": ticks_to_iso(op.ts),
        "call": blame.call.id,
        **stack,
    }


def _process(trace, pid, tid) -> dict:
    info = trace.process(pid)
    return {"pid": pid, "tid": tid, "image": info.image if info else None,
            "command_line": info.command_line if info else None}


def finding_for_call(trace, call: Call, blame: Blame, acls: AclSources) -> dict[str, Any]:
    iname, proc = interfaces.lookup(call.interface, call.opnum) if call.interface else (None, None)
    client = _process(trace, call.client_pid, call.client_tid)
    server = _process(trace, blame.call.server_pid, blame.call.server_tid)
    identity = identity_of(trace, blame.call.server_pid, blame.call.interface)
    server["service"] = identity["service"]
    failure = failure_of(trace, blame)
    verdict = acls.verdict(failure, _principals(identity)) if failure["path"] else None
    where = proc or f"opnum {call.opnum}"
    module = (interfaces.info(call.interface).module if call.interface and interfaces.info(call.interface) else None)
    target = f"{module.rsplit('.', 1)[0]}!{where}" if module and proc else f"{iname or call.interface or 'an RPC interface'} {where}"
    who = _who(identity)
    svc = f" ({identity['service']})" if identity["service"] else ""
    if verdict is not None and verdict.get("acl"):
        acl = verdict["acl"]
        summary = (f"{client['image']}'s call reached {target} in {server['image']}{svc}, which failed because "
                   f"{who} {acl['short']} {failure['path']}")
        if verdict.get("fix"):
            fix = verdict["fix"]
            summary += "; re-enable inheritance on that key." if fix["kind"] == "enable-inheritance" else f"; {fix['short']}."
        else:
            summary += "."
    else:
        summary = (f"{client['image']}'s call reached {target} in {server['image']}{svc} (thread {server['tid']}), "
                   f"where {failure['kind'].replace('registry.', 'registry ').replace('file.', 'file ')} of "
                   f"{failure['path']} failed with {_status_text(failure['status'])} while running as {who}.")
        if failure["status"] == 0xC0000022 and failure["kind"].startswith("registry."):
            summary += " Give rpctrace the key's security descriptor (--hive SOFTWARE or --sddl KEY=SDDL) for the ACL verdict and the fix."
    chain = [
        f"client {client['image']} pid {client['pid']} thread {client['tid']}",
        f"server {server['image']} pid {server['pid']}{svc} thread {server['tid']}"
        + (f" (ALPC message {call.alpc_message_id})" if call.alpc_message_id is not None else ""),
        f"interface {iname or call.interface} {where} over {call.protocol_name or '?'} endpoint {call.endpoint}",
        f"{failure['kind']} {failure['path']}"
        + (f" desired {access.format(failure['desired_access'], 'key')}" if failure["desired_access"] is not None else "")
        + f" -> {_status_text(failure['status'])}",
        f"identity: user {identity['user'] or identity['user_sid'] or '?'}"
        + (f", service {identity['service']} ({identity['service_sid']})" if identity["service"] else ""),
    ]
    if verdict is not None and verdict.get("acl"):
        chain.append(f"verdict: {verdict['acl']['verdict']}")
    if verdict is not None and verdict.get("fix"):
        chain.append(f"fix: {verdict['fix']['text']}")
    return {
        "call": call.id,
        "summary": summary,
        "client": client,
        "server": server,
        "interface": {"uuid": call.interface, "name": iname, "opnum": call.opnum, "procedure": proc,
                      "endpoint": call.endpoint, "protocol": call.protocol_name},
        "failure": failure,
        "identity": {k: identity[k] for k in ("user", "service", "service_sid")} | {"user_sid": identity["user_sid"]},
        "acl": verdict.get("acl") if verdict else None,
        "fix": verdict.get("fix") if verdict else None,
        "confidence": call.confidence,
        "chain": chain,
    }


def build_findings(trace, correlation: Correlation, acls: AclSources | None = None) -> list[dict]:
    acls = acls or AclSources()
    findings = [finding_for_call(trace, call, blame, acls) for call, blame in suspect_calls(correlation.calls)]
    # Failures inside RPC dispatch that no correlated call explains (a Procmon log has no RPC
    # events at all): findings with call null, from the stacks alone.
    from rpctrace.explain.dispatch import dispatch_findings

    covered = {(op.pid, op.tid, ticks_to_iso(op.ts)) for c in correlation.calls for op in c.failures}
    stack_only = sorted(dispatch_findings(trace, acls),
                        key=lambda f: (blame_rank(f["failure"]["status"]), -f["failure"].get("count", 1), f["failure"]["ts"]))
    for f in stack_only:
        fail = f["failure"]
        if (fail["pid"], fail["tid"], fail["ts"]) in covered:
            continue
        identity = f["identity"]
        if identity.get("service") and not identity.get("service_sid"):
            identity["service_sid"] = sids.service_sid(identity["service"])
        findings.append(f)
    return findings
