"""Failures inside RPC server dispatch, found from stacks alone.

A Procmon log has no RPC events, but its stacks show when a thread was running code that rpcrt4
called: the server side of an RPC call (rule and limits: :func:`rpctrace.knowledge.stackframes.find_rpc_dispatch`).
A registry or file operation that failed (NTSTATUS of severity error) on such a stack is a
failure *while serving an RPC call* - the article's pattern without ETW.

:func:`rpc_dispatch_failures` lists them, one record per operation; :func:`group_failures`
counts them per (process, operation, path, status).  ETW events with stacks work too: their
frames are resolved through the trace's image tables and the same rule applied.
"""

from __future__ import annotations

from typing import Any

from rpctrace.correlate.calls import is_failure_status
from rpctrace.knowledge import access, services
from rpctrace.knowledge.status import ntstatus_name as status_name
from rpctrace.model import Event, ticks_to_iso
from rpctrace.knowledge.stackframes import KERNEL, OTHER, RPC, SYSTEM, SYSTEM_MODULES, Frame, find_rpc_dispatch



def _frames_from_trace(trace, ev: Event, kernel_ids: set[int]) -> list[Frame]:
    out = []
    for addr in ev.stack or ():
        img = trace.image_for(ev.pid, addr)
        if img is None:
            klass = KERNEL if addr >= 0xFFFF800000000000 else OTHER
            out.append(Frame(addr, f"0x{addr:x}", None, None, klass))
            continue
        name = img.file_name.replace("/", "\\").rsplit("\\", 1)[-1].lower()
        kernel_img = id(img) in kernel_ids
        if kernel_img or addr >= 0xFFFF800000000000:
            klass = KERNEL
        elif name == "rpcrt4.dll":
            klass = RPC
        elif name in SYSTEM_MODULES:
            klass = SYSTEM
        else:
            klass = OTHER
        out.append(Frame(addr, f"{img.module}+0x{addr - img.base:x}", img.file_name, addr - img.base, klass))
    return out


def _service(command_line: str | None) -> tuple[str | None, str | None]:
    """(service, svchost group) from an svchost command line (``-s`` names one service)."""
    parsed = services.parse_svchost(command_line)
    if parsed is None:
        return None, None
    return parsed.service, parsed.group


def _access_text(mask: int | None, object_type: str) -> str | None:
    return access.format(mask, object_type) if mask is not None else None


def _record(trace, ev: Event, dispatch: dict, frames: list[str]) -> dict[str, Any]:
    f = ev.fields
    info = trace.process(ev.pid)
    image = f.get("process_name") or (info.image if info else None)
    command_line = f.get("command_line") or (info.command_line if info else None)
    service, group = _service(command_line)
    status = f.get("status")
    desired = f.get("desired_access")
    object_type = "key" if ev.kind.startswith("registry.") else "file"
    user_sid = (info.user_sid if info else None) or f.get("user_sid")
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
        "user": f.get("user"),
        "user_sid": user_sid,
        "integrity": f.get("integrity"),
        "kind": ev.kind,
        "operation": f.get("operation") or ev.kind,
        "path": f.get("path") or f.get("open_path") or f.get("key_name"),
        "value_name": f.get("value_name"),
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


def rpc_dispatch_failures(trace) -> list[dict]:
    """Every failing registry/file operation whose stack shows RPC server dispatch, in time order."""
    out = []
    kernel_ids = {id(img) for img in trace.images.get(0) or ()}
    for ev in trace.events:
        kind = ev.kind
        if not (kind.startswith("registry.") or kind.startswith("file.")):
            continue
        f = ev.fields
        if not is_failure_status(f.get("status")):
            continue
        dispatch = f.get("rpc_dispatch")
        frames = f.get("frames")
        if dispatch is None and ev.stack and frames is None:  # an ETW stack: the reader did not look
            resolved = _frames_from_trace(trace, ev, kernel_ids)
            dispatch = find_rpc_dispatch(resolved)
            frames = [fr.text for fr in resolved]
        if dispatch is None:
            continue
        if frames is None:
            frames = [trace.symbolize(ev.pid, a) for a in ev.stack or ()]
        out.append(_record(trace, ev, dispatch, list(frames)))
    return out


def group_failures(records: list[dict]) -> list[dict]:
    """Counts per (process, operation, path, status); paths compare case-insensitively, as the
    registry and NTFS do.  Most frequent first."""
    groups: dict[tuple, dict] = {}
    for r in records:
        key = (r["pid"], r["image"], r["operation"], (r["path"] or "").upper(), r.get("value_name"), r["status"])
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
        g["dispatch_entries"][entry] = g["dispatch_entries"].get(entry, 0) + 1
    out = []
    for g in groups.values():
        g["desired_access"] = sorted(g["desired_access"])
        g["tids"] = sorted(t for t in g["tids"] if t is not None)
        out.append(g)
    out.sort(key=lambda g: (-g["count"], g["first"]))
    return out


def dispatch_findings(trace, acls=None) -> list[dict]:
    """Findings without a correlated call (``call: None``), one per group of failures.

    A default for :func:`rpctrace.explain.findings.build_findings`, which asks this module for
    them when a trace has no RPC calls; the ACL verdict is added when ``acls`` offers
    ``verdict(failure, principals)``.
    """
    records = rpc_dispatch_failures(trace)
    findings = []
    for g in group_failures(records):
        first = g["first_record"]
        desired = first["desired_access"]
        who = first["user"] or first["user_sid"] or "the process's account"
        svc = first["service"] or (f"svchost group {first['service_group']}" if first["service_group"] else None)
        failure = {
            "kind": first["kind"], "operation": first["operation"], "path": first["path"],
            "value_name": first["value_name"], "nt_path": first["nt_path"], "status": first["status"],
            "status_name": first["status_name"], "desired_access": desired,
            "desired_access_names": first["desired_access_names"], "desired_access_text": first["desired_access_text"],
            "pid": first["pid"], "tid": first["tid"], "ts": first["ts"], "call": None, "stack": first["stack"],
            "stack_kernel": first["stack_kernel"], "stack_user": first["stack_user"],
            "stack_addresses": first["stack_addresses"],
            "count": g["count"],
        }
        verdict = None
        if acls is not None and hasattr(acls, "verdict") and failure["path"]:
            principals = [s for s in (first["user_sid"],) if s]
            try:
                verdict = acls.verdict(failure, principals)
            except Exception:  # noqa: BLE001 - a missing hive or SDDL must not hide the finding
                verdict = None
        times = f" ({g['count']} times)" if g["count"] > 1 else ""
        server = {"pid": first["pid"], "tid": first["tid"], "image": first["image"],
                  "command_line": first["command_line"], "service": first["service"]}
        summary = (f"{first['image']} (pid {first['pid']}{', ' + svc if svc else ''}) was serving an RPC call "
                   f"(dispatch entry {first['dispatch_entry']}) when {first['operation']} of {first['path']}"
                   f"{' desired ' + first['desired_access_text'] if desired is not None else ''} failed with "
                   f"{first['status_name'] or hex(first['status'])} running as {who}{times}.")
        findings.append({
            "call": None,
            "summary": summary,
            "client": None,
            "server": server,
            "interface": None,
            "failure": failure,
            "identity": {"user": first["user"], "user_sid": first["user_sid"], "service": first["service"],
                         "service_sid": None},
            "acl": verdict.get("acl") if verdict else None,
            "fix": verdict.get("fix") if verdict else None,
            "confidence": None,
            "dispatch": {"entry": first["dispatch_entry"], "frames": first["dispatch_frames"]},
            "chain": [
                f"server {first['image']} pid {first['pid']}{' (' + svc + ')' if svc else ''} thread {first['tid']}",
                f"RPC dispatch: rpcrt4 -> {first['dispatch_entry']}",
                f"{first['operation']} {first['path']}"
                + (f" desired {first['desired_access_text']}" if desired is not None else "")
                + f" -> {first['status_name'] or hex(first['status'])}",
                f"identity: user {who}",
            ],
        })
    return findings
