"""Failures outside any call the trace shows, and the ones among them inside RPC server dispatch.

A Procmon log has no RPC events, but its stacks show when a thread was running code that rpcrt4
called: the server side of an RPC call (rule and limits: :func:`rpctrace.knowledge.stackframes.find_rpc_dispatch`).
A registry or file operation that failed on such a stack is a failure *while serving an RPC
call* - the article's pattern without ETW.  Every other failure outside a call still matters to
the person reading the log (an ACCESS DENIED is an ACCESS DENIED): it is a finding too, marked
outside, without a dispatch entry.

:func:`outside_failures` lists them, one record per operation; :func:`group_failures` counts them
per (process, operation, path, value, status); :func:`outside_findings` makes the findings.  ETW
events with stacks work too: their frames are resolved through the trace's module maps
(``Trace.frame``, the same :class:`~rpctrace.knowledge.stackframes.ModuleMap` the Procmon reader
uses) and the same rule applied.
"""

from __future__ import annotations

from typing import Any

from rpctrace.knowledge.status import is_failure as is_failure_status
from rpctrace.knowledge import access, services, sids
from rpctrace.knowledge.status import ntstatus_name as status_name
from rpctrace.model import Event, target_of, target_text, ticks_to_iso
from rpctrace.knowledge.stackframes import find_rpc_dispatch


def _service(command_line: str | None) -> tuple[str | None, str | None]:
    """(service, svchost group) from an svchost command line (``-s`` names one service)."""
    parsed = services.parse_svchost(command_line)
    if parsed is None:
        return None, None
    return parsed.service, parsed.group


def _access_text(mask: int | None, object_type: str) -> str | None:
    return access.format(mask, object_type) if mask is not None else None


def _record(trace, ev: Event, dispatch: dict | None, frames: list[str]) -> dict[str, Any]:
    f = ev.fields
    info = trace.process(ev.pid)
    image = f.get("process_name") or (info.image if info else None)
    command_line = f.get("command_line") or (info.command_line if info else None)
    service, group = _service(command_line)
    status = f.get("status")
    desired = f.get("desired_access")
    object_type = "key" if ev.kind.startswith("registry.") else "file"
    user_sid = (info.user_sid if info else None) or f.get("user_sid")
    dispatch = dispatch or {}
    return {
        "ts": ticks_to_iso(ev.ts),
        "ts_ticks": ev.ts,
        "pid": ev.pid,
        "tid": ev.tid,
        "image": image,
        "image_path": f.get("image_path"),
        "command_line": command_line,
        "service": service,
        "service_group": group,
        "user": f.get("user") or (sids.name_of(user_sid) if user_sid else None),
        "user_sid": user_sid,
        "integrity": f.get("integrity"),
        "kind": ev.kind,
        "operation": f.get("operation") or ev.kind,
        "path": target_of(ev),
        "value_name": f.get("value_name"),
        "target": target_text(ev),
        "nt_path": f.get("nt_path"),
        "desired_access": desired,
        "desired_access_text": _access_text(desired, object_type),
        "desired_access_names": f.get("desired_access_names") or (access.decode(desired, object_type) if desired is not None else None),
        "status": status,
        "status_name": f.get("status_name") or status_name(status),
        **(trace.stack_json(ev.pid, ev.stack) if ev.stack else
           {"stack": frames, "stack_kernel": None, "stack_user": None, "stack_addresses": None}),
        "dispatch_entry": dispatch.get("entry"),
        "dispatch_symbol": dispatch.get("symbol"),
        "dispatch_frames": dispatch.get("frames"),
        "source": "procmon" if f.get("result") is not None or f.get("merged_from") else "etw",
    }


def outside_failures(trace, events=None) -> list[dict]:
    """Every failing registry/file operation of ``events`` (default: the trace's), in time order,
    each with the RPC dispatch its stack shows (``dispatch_entry``), if any."""
    out = []
    for ev in (trace.events if events is None else events):
        kind = ev.kind
        if not (kind.startswith("registry.") or kind.startswith("file.")):
            continue
        f = ev.fields
        if not is_failure_status(f.get("status")):
            continue
        dispatch = f.get("rpc_dispatch")
        frames = f.get("frames")
        if dispatch is None and ev.stack and frames is None:  # an ETW stack: the reader did not look
            resolved = [trace.frame(ev.pid, a) for a in ev.stack]  # the trace's module maps
            dispatch = find_rpc_dispatch(resolved)
            frames = [fr.text for fr in resolved]
        if frames is None:
            frames = [trace.symbolize(ev.pid, a) for a in ev.stack or ()]
        out.append(_record(trace, ev, dispatch, list(frames)))
    return out


def rpc_dispatch_failures(trace, events=None) -> list[dict]:
    """The failures of :func:`outside_failures` whose stack shows RPC server dispatch."""
    return [r for r in outside_failures(trace, events) if r["dispatch_entry"] is not None]


def group_failures(records: list[dict]) -> list[dict]:
    """Counts per (process, operation, path, value, status, dispatch entry); paths compare
    case-insensitively, as the registry and NTFS do.  Most frequent first."""
    groups: dict[tuple, dict] = {}
    for r in records:
        key = (r["pid"], r["image"], r["operation"], (r["path"] or "").upper(), r.get("value_name"), r["status"],
               r["dispatch_entry"] is not None)
        g = groups.get(key)
        if g is None:
            g = groups[key] = {
                "pid": r["pid"], "image": r["image"], "command_line": r["command_line"], "service": r["service"],
                "service_group": r["service_group"], "user": r["user"], "operation": r["operation"], "kind": r["kind"],
                "path": r["path"], "value_name": r.get("value_name"), "status": r["status"],
                "status_name": r["status_name"], "desired_access": set(), "dispatch_entries": {}, "count": 0,
                "first": r["ts"], "last": r["ts"], "tids": set(), "first_record": r,
            }
        g["count"] += 1
        g["last"] = r["ts"]
        g["tids"].add(r["tid"])
        if r["desired_access"] is not None:
            g["desired_access"].add(r["desired_access"])
        entry = r["dispatch_entry"]
        if entry is not None:
            g["dispatch_entries"][entry] = g["dispatch_entries"].get(entry, 0) + 1
    out = []
    for g in groups.values():
        g["desired_access"] = sorted(g["desired_access"])
        g["tids"] = sorted(t for t in g["tids"] if t is not None)
        out.append(g)
    out.sort(key=lambda g: (-g["count"], g["first"]))
    return out


#: what a finding says of the client side when the trace has none (Procmon logs no RPC events)
NO_CLIENT = "not recorded by the trace (Process Monitor logs no RPC events, so no client side)"


def outside_findings(trace, acls=None, events=None) -> list[dict]:
    """Findings for failures outside any call (``call: None``, ``outside: True``), one per group
    of failures; ``dispatch`` names the RPC server entry point when the stack shows one."""
    findings = []
    for g in group_failures(outside_failures(trace, events)):
        first = g["first_record"]
        desired = first["desired_access"]
        who = first["user"] or first["user_sid"] or "the process's account"
        svc = first["service"] or (f"svchost group {first['service_group']}" if first["service_group"] else None)
        failure = {
            "kind": first["kind"], "operation": first["operation"], "path": first["path"],
            "value_name": first["value_name"], "target": first["target"], "nt_path": first["nt_path"],
            "status": first["status"], "status_name": first["status_name"], "desired_access": desired,
            "desired_access_names": first["desired_access_names"], "desired_access_text": first["desired_access_text"],
            "pid": first["pid"], "tid": first["tid"], "ts": first["ts"], "call": None, "stack": first["stack"],
            "stack_kernel": first["stack_kernel"], "stack_user": first["stack_user"],
            "stack_addresses": first["stack_addresses"],
            "count": g["count"],
        }
        verdict = None
        if acls is not None and hasattr(acls, "verdict") and failure["path"] and failure["kind"].startswith("registry."):
            principals = [s for s in (first["user_sid"],) if s]
            try:
                verdict = acls.verdict(failure, principals)
            except Exception:
                verdict = None
        times = f" ({g['count']} times)" if g["count"] > 1 else ""
        server = {"pid": first["pid"], "tid": first["tid"], "image": first["image"],
                  "command_line": first["command_line"], "service": first["service"]}
        what = (f"{first['operation']} of {first['target']}"
                f"{' desired ' + first['desired_access_text'] if desired is not None else ''} failed with "
                f"{first['status_name'] or hex(first['status'])} running as {who}{times}")
        where = f"{first['image']} (pid {first['pid']}{', ' + svc if svc else ''})"
        if first["dispatch_entry"] is not None:
            summary = (f"{where} was serving an RPC call (dispatch entry {first['dispatch_entry']}; the client is "
                       f"not in the trace) when {what}.")
        else:
            summary = f"Outside any RPC call the trace shows: in {where}, {what}."
        findings.append({
            "call": None,
            "summary": summary,
            "client": None,
            "client_note": NO_CLIENT if first["source"] == "procmon" else "no client: the operation was not made while serving a call the trace shows",
            "server": server,
            "interface": None,
            "hops": [],
            "status": None,
            "failure": failure,
            "identity": {"user": first["user"], "user_sid": first["user_sid"], "service": first["service"],
                         "service_sid": None},
            "acl": verdict.get("acl") if verdict else None,
            "fix": verdict.get("fix") if verdict else None,
            "confidence": None,
            "outside": True,
            "dispatch": ({"entry": first["dispatch_entry"], "frames": first["dispatch_frames"]}
                         if first["dispatch_entry"] is not None else None),
            "chain": [
                f"process {first['image']} pid {first['pid']}{' (' + svc + ')' if svc else ''} thread {first['tid']}",
                (f"RPC dispatch: rpcrt4 -> {first['dispatch_entry']}" if first["dispatch_entry"] is not None
                 else "not while serving an RPC call the trace shows"),
                f"{first['operation']} {first['target']}"
                + (f" desired {first['desired_access_text']}" if desired is not None else "")
                + f" -> {first['status_name'] or hex(first['status'])}" + times,
                f"identity: user {who}",
            ],
        })
    return findings


def dispatch_findings(trace, acls=None, events=None) -> list[dict]:
    """The findings of :func:`outside_findings` inside RPC dispatch."""
    return [f for f in outside_findings(trace, acls, events) if f["dispatch"] is not None]
