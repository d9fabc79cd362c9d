"""Findings: the chain from a client's call to the verdict and the fix, in the article's terms.

For each top-level call that failed (:func:`rpctrace.explain.rootcause.suspect_calls`) a finding
says: the client -> every hop of the call (server process, service, thread, interface, procedure,
ALPC message, status) down to the hop where it failed -> the failing operation (the key or file,
the value for a value operation, the desired access when the source has it, the status) -> the
identity it ran under (process user, service and its SID) -> the ACL verdict (when the key's
security descriptor is known, from a hive or SDDL) -> the fix.

Only failures that deserve blame are findings (:mod:`rpctrace.knowledge.failures`); the expected
results left out are counted (:func:`expected_left_out`; ``--all`` includes them).  Failures that
happened outside any call the trace shows come last, marked ``outside`` - a Procmon log's failures
among them (Procmon records no RPC events; when a stack runs through RPC dispatch the finding says
which server entry point it was, :mod:`rpctrace.explain.dispatch`).
"""

from __future__ import annotations

from typing import Any

from rpctrace.correlate.calls import Call, Correlation
from rpctrace.correlate.procedure import procedure_of, server_function
from rpctrace.explain.acl_sources import AclSources
from rpctrace.explain.rootcause import Blame, blame_rank, first_failure, suspect_calls
from rpctrace.knowledge import access, codes, interfaces, services, sids
from rpctrace.knowledge.failures import event_class
from rpctrace.knowledge.registry import hive_option
from rpctrace.knowledge.status import is_failure
from rpctrace.model import target_of, target_text, ticks_to_iso
from rpctrace.schema import ClientSide, Finding, Hop, ServerSide

__all__ = ["build_findings", "expected_left_out", "failure_of", "identity_of"]


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


def failure_of(trace: Any, blame: Blame) -> dict[str, Any]:
    op = blame.op
    f = op.fields
    desired = f.get("desired_access")
    if op.stack:
        stack = trace.stack_json(op.pid, op.stack)
    else:
        stack = {"stack": f.get("frames"), "stack_kernel": None, "stack_user": None, "stack_addresses": None}
    return {
        "kind": op.kind,
        "path": target_of(op),  # the key (or file): what an ACL belongs to
        "value_name": f.get("value_name"),
        "target": target_text(op),  # with the value, for a value operation
        "nt_path": f.get("nt_path"),
        "status": f.get("status"),
        "status_name": codes.name(f.get("status"), hint="NTSTATUS") if f.get("status") is not None else None,
        "expected": blame.expected,
        "desired_access": desired,
        "desired_access_names": access.decode(desired, "key") if desired is not None and op.kind.startswith("registry.") else None,
        "pid": op.pid,
        "tid": op.tid,
        "ts": ticks_to_iso(op.ts),
        "call": blame.call.id,
        **stack,
    }


def _process(trace: Any, pid: int | None, tid: int | None) -> ClientSide:
    info = trace.process(pid)
    return {"pid": pid, "tid": tid, "image": info.image if info else None,
            "command_line": info.command_line if info else None}


def _server(trace: Any, pid: int | None, tid: int | None) -> ServerSide:
    info = trace.process(pid)
    return {"pid": pid, "tid": tid, "image": info.image if info else None,
            "command_line": info.command_line if info else None}


def _target(trace: Any, call: Call) -> tuple[str | None, str | None, str]:
    """(interface name, procedure, what a person calls it: ``audiosrv!PolicyConfigSetDefaultEndpoint``).
    A procedure no database names but the server's PDB does is marked ``(from symbols)``."""
    iname, proc, source = procedure_of(trace, call)
    if source == "symbols":
        sym = server_function(trace, call)
        return iname, proc, f"{sym.module}!{proc} (named from symbols; no interface database names it)"
    where = proc or f"opnum {call.opnum}"
    known = interfaces.info(call.interface) if call.interface else None
    module = known.module if known else None
    text = f"{module.rsplit('.', 1)[0]}!{where}" if module and proc else f"{iname or call.interface or 'an RPC interface'} {where}"
    return iname, proc, text


def _hop(trace: Any, call: Call) -> Hop:
    iname, proc, source = procedure_of(trace, call)
    server = _server(trace, call.server_pid, call.server_tid)
    server.pop("command_line")
    server["service"] = identity_of(trace, call.server_pid, call.interface)["service"]
    client = _process(trace, call.client_pid, call.client_tid)
    client.pop("command_line")
    return {"call": call.id, "client": client, "server": server,
            "interface": {"uuid": call.interface, "name": iname}, "procedure": proc,
            "procedure_source": source, "alpc_message_id": call.alpc_message_id, "status": call.status if call.status is not None else call.server_status}


def _hop_text(trace, call: Call) -> str:
    _, _, target = _target(trace, call)
    info = trace.process(call.server_pid)
    image = (info.image if info else None) or "an unseen server"
    service = identity_of(trace, call.server_pid, call.interface)["service"]
    return f"{target} in {image}" + (f" ({service})" if service else "")


def _operation_text(failure: dict) -> str:
    return failure["kind"].replace("registry.", "registry ").replace("file.", "file ")


def finding_for_call(trace: Any, call: Call, blame: Blame | None, acls: AclSources) -> Finding:
    """The finding of top-level ``call``: every hop down to ``blame``'s, or the RPC status the
    client saw when no operation of the subtree failed."""
    hops_calls = blame.hops if blame is not None else [call]
    failing = hops_calls[-1]
    iname, proc, _ = _target(trace, failing)
    proc_source = procedure_of(trace, failing)[2]
    client = _process(trace, call.client_pid, call.client_tid)
    server = _server(trace, failing.server_pid, failing.server_tid)
    identity = identity_of(trace, failing.server_pid, failing.interface)
    server["service"] = identity["service"]
    who = _who(identity)
    wire = getattr(call, "wire", None)
    if wire is not None:  # a remote call: the client is an address on the wire, not a process here
        client["address"], client["port"] = wire.client_address, wire.client_port
    client_name = (f"{wire.client_address}:{wire.client_port}" if wire is not None
                   else client["image"] or (f"pid {client['pid']}" if client["pid"] is not None else "a client not in the trace"))
    route = " -> ".join(_hop_text(trace, c) for c in hops_calls)
    failure: dict[str, Any] = failure_of(trace, blame) if blame is not None else {
        "kind": "rpc.status", "path": None, "value_name": None, "target": None, "nt_path": None,
        "status": call.status, "status_name": codes.name(call.status, hint="RPC") if call.status else None,
        "expected": False, "desired_access": None, "desired_access_names": None, "pid": call.client_pid,
        "tid": call.client_tid, "ts": ticks_to_iso(call.end) if call.end is not None else None, "call": call.id,
        "stack": None}
    verdict = acls.verdict(failure, _principals(identity)) if failure["path"] else None
    if wire is not None:
        # a remote call: "10.0.0.5:52311 -> 10.0.0.1 lsass.exe (Netlogon) NetrServerAuthenticate3: ..."
        host = wire.server_address or "the server"
        image = server["image"] or "an unseen server"
        svc = f" ({identity['service']})" if identity["service"] else ""
        what = ("the call failed with RPC status " + _status_text(call.status) if blame is None else
                f"{_operation_text(failure)} of {failure['target']} failed with {_status_text(failure['status'])}")
        summary = (f"{client_name} -> {host} {image}{svc} "
                   f"{proc or f'opnum {failing.opnum}'}: {what} while running as {who}")
        if verdict is not None and verdict.get("acl"):
            summary += f", because {who} {verdict['acl']['short']} {failure['path']}"
        summary += "."
    elif blame is None:
        summary = (f"{client_name} -> {route}: the call failed with RPC status {_status_text(call.status)}; "
                   "no failing operation of the server's work is in the trace.")
    elif verdict is not None and verdict.get("acl"):
        acl = verdict["acl"]
        summary = f"{client_name}'s call reached {route}, which failed because {who} {acl['short']} {failure['path']}"
        if verdict.get("fix"):
            fix = verdict["fix"]
            summary += "; re-enable inheritance on that key." if fix["kind"] == "enable-inheritance" else f"; {fix['short']}."
        else:
            summary += "."
    else:
        summary = (f"{client_name}'s call reached {route} (thread {server['tid']}), where {_operation_text(failure)} of "
                   f"{failure['target']} failed with {_status_text(failure['status'])} while running as {who}.")
        if failure["status"] in (0xC0000022, 0xC0000061) and failure["kind"].startswith("registry.") and failure["path"]:
            summary += (f" Give rpctrace the key's security descriptor ({hive_option(failure['path'])} or "
                        "--sddl KEYPATH=SDDL) for the ACL verdict and the fix.")
    chain = [
        (f"client {wire.client_address}:{wire.client_port} over {wire.transport}"
         + (f" pipe {wire.pipe}" if wire.pipe else f" to port {wire.server_port}") if wire is not None
         else f"client {client['image'] or '?'} pid {client['pid']} thread {client['tid']}"),
    ]
    for n, c in enumerate(hops_calls):
        hop_server = _process(trace, c.server_pid, c.server_tid)
        service = identity_of(trace, c.server_pid, c.interface)["service"]
        hi, hp, hsrc = procedure_of(trace, c)
        if hsrc == "symbols":
            hp = f"{hp} (named from symbols)"
        chain.append((f"hop {n + 1}: " if len(hops_calls) > 1 else "")
                     + f"server {hop_server['image'] or '?'} pid {hop_server['pid']}"
                     + (f" ({service})" if service else "") + f" thread {hop_server['tid']}"
                     + (f" (ALPC message {c.alpc_message_id})" if c.alpc_message_id is not None else "")
                     + f", interface {hi or c.interface} {hp or f'opnum {c.opnum}'} over {c.protocol_name or '?'} "
                       f"endpoint {c.endpoint}")
    if blame is not None:
        chain.append(f"{failure['kind']} {failure['target']}"
                     + (f" desired {access.format(failure['desired_access'], 'key')}" if failure["desired_access"] is not None else "")
                     + f" -> {_status_text(failure['status'])}" + (" (an expected result)" if blame.expected else ""))
    chain.append(f"identity: user {identity['user'] or identity['user_sid'] or '?'}"
                 + (f", service {identity['service']} ({identity['service_sid']})" if identity["service"] else ""))
    if verdict is not None and verdict.get("acl"):
        chain.append(f"verdict: {verdict['acl']['verdict']}")
    if verdict is not None and verdict.get("fix"):
        chain.append(f"fix: {verdict['fix']['text']}")
    return {
        "call": call.id,
        "summary": summary,
        "client": client,
        "server": server,
        "interface": {"uuid": failing.interface, "name": iname, "opnum": failing.opnum, "procedure": proc,
                      "procedure_source": proc_source, "endpoint": failing.endpoint, "protocol": failing.protocol_name},
        "hops": [_hop(trace, c) for c in hops_calls],
        "status": {"rpc": call.status, "result": call.result_status, "result_source": call.result_source,
                   "note": None if call.result_status is not None else
                   "the procedure's own result is not in the trace (ETW does not record it)"},
        "failure": failure,
        "identity": {k: identity[k] for k in ("user", "service", "service_sid")} | {"user_sid": identity["user_sid"]},
        "acl": verdict.get("acl") if verdict else None,
        "fix": verdict.get("fix") if verdict else None,
        "confidence": call.confidence,
        "outside": False,
        "chain": chain,
    }


def _outside_events(trace, correlation: Correlation) -> list:
    """Failed operations no call was being served for (a whole trace: from its events)."""
    if not trace.events:
        return correlation.outside
    covered = {id(op) for c in correlation.calls for op in c.operations}
    return [ev for ev in trace.events if ev.kind.startswith(("registry.", "file.")) and is_failure(ev.fields.get("status"))
            and id(ev) not in covered]


def expected_left_out(trace, correlation: Correlation) -> int:
    """How many failed operations are expected results that the findings leave out."""
    n = 0
    for c in correlation.calls:
        n += sum(1 for op in c.failures if event_class(op) == "expected") + c.expected_not_kept
    n += sum(1 for ev in _outside_events(trace, correlation) if event_class(ev) == "expected")
    return n


def build_findings(trace: Any, correlation: Correlation, acls: AclSources | None = None,
                   include_expected: bool = False) -> list[Finding]:
    """Every finding, in the order a person reads them (module docstring)."""
    acls = acls or AclSources()
    findings: list[Finding] = [finding_for_call(trace, call, blame, acls)
                for call, blame in suspect_calls(correlation.calls, include_expected)]
    from rpctrace.explain.dispatch import outside_findings

    events = [ev for ev in _outside_events(trace, correlation)
              if include_expected or event_class(ev) == "blame"]
    outside = sorted(outside_findings(trace, acls, events),
                     key=lambda f: (blame_rank(f["failure"]["status"]) if event_class_of(f) == "blame" else 9,
                                    f["dispatch"] is None, -f["failure"].get("count", 1), f["failure"]["ts"]))
    for f in outside:
        identity = f["identity"]
        if identity.get("service") and not identity.get("service_sid"):
            identity["service_sid"] = sids.service_sid(identity["service"])
        findings.append(f)  # type: ignore[arg-type]  # the dispatch module builds the same shape
    return findings


def event_class_of(finding: dict) -> str:
    """The failure class of an outside finding's operation."""
    from rpctrace.knowledge.failures import classify

    failure = finding["failure"]
    return classify(failure.get("status"), failure.get("kind"), failure.get("operation"))


def first_failure_of(call: Call) -> Blame | None:
    """The blame of a call for views (every failure counts, expected results last)."""
    return first_failure(call, include_expected=True)
