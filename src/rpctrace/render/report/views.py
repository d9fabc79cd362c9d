"""The page's views of calls, built from the calls (no analysis): the call tree, the timeline
and the findings, as plain dicts for the template."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rpctrace.explain.rootcause import SECURITY
from rpctrace.knowledge.registry import hive_option
from rpctrace.model import ticks_to_iso
from rpctrace.knowledge.failures import event_class, event_expected_reason
from rpctrace.render.report.facts import Names, op_target, pids_text, status_text
from rpctrace.schema import Finding

MAX_TREE_CALLS = 3000
MAX_TREE_OPS = 200
MAX_TREE_DEPTH = 12
MAX_TIMELINE_CALLS = 5000


def call_view(call, trace, names: Names, t0: int) -> dict:
    iname, where = names.what(call)
    status = call.status if call.status is not None else call.server_status
    return {
        "id": call.id,
        "iface": iname,
        "where": where,
        "iface_key": names.iface(call.interface),
        "pids": pids_text(call.client_pid, call.server_pid),
        "client": names.process_label(call.client_pid) + (f" · thread {call.client_tid}" if call.client_tid is not None else ""),
        "server": (names.process_label(call.server_pid) + (f" · thread {call.server_tid}" if call.server_tid is not None else ""))
        if call.server_pid is not None else "server not seen",
        "endpoint": call.endpoint,
        "protocol": call.protocol_name,
        "mode": call.mode,
        "completion": call.completion_tid,
        "message": call.alpc_message_id,
        "status": status_text(status, "RPC") if status is not None else None,
        "result": (f"{status_text(call.result_status)} ({call.result_source})" if call.result_status is not None
                   else "not in the trace"),
        "start": ticks_to_iso(call.start) if call.start is not None else None,
        "offset_ms": f"{(call.start - t0) / 10_000:,.3f}" if call.start is not None else None,
        "duration": f"{(call.end - call.start) / 10:,.1f} µs" if call.end is not None and call.start is not None else None,
        "confidence": f"{call.confidence:.2f}",
        "failed": names.memo.failed(call),
    }


def op_view(op, trace) -> dict:
    st = op.fields.get("status")
    failed = event_class(op) == "blame"
    expected = event_expected_reason(op) if not failed else None
    stack = [trace.symbolize(op.pid, a) for a in op.stack] if failed and op.stack else []
    return {"kind": op.kind, "target": op_target(op), "status": status_text(st), "failed": failed,
            "expected": expected, "ts": ticks_to_iso(op.ts), "stack": stack, "thread": op.tid}


#: failing top-level calls beyond the detailed ones are listed one line each, up to this many
#: (a bound against hostile traces; the page says how many it left out and how to see them)
MAX_BRIEF_CALLS = 100_000


def _brief(call, names: Names) -> dict:
    """One line for a failing call the detailed tree has no room for."""
    iname, where = names.what(call)
    first = None
    for c in call.subtree():
        if names.memo.blamed(c):
            op = names.memo.blamed(c)[0]
            first = f"{op.kind} {op_target(op)} → {status_text(op.fields.get('status'))}"
            break
    return {"id": call.id, "iface": iname, "where": where, "iface_key": names.iface(call.interface),
            "pids": pids_text(call.client_pid, call.server_pid), "client": names.image(call.client_pid),
            "server": names.image(call.server_pid) if call.server_pid is not None else "server not seen",
            "first": first}


def call_tree(calls, trace, names: Names, t0: int, *, limit: int = MAX_TREE_CALLS,
              brief_limit: int = MAX_BRIEF_CALLS) -> dict:
    """Client process -> client thread -> top-level calls (each with operations and nested calls).

    At most ``limit`` top-level calls are shown in detail: every call whose subtree failed first,
    then the others in order.  Failing top-level calls beyond that are listed one line each (up to
    ``brief_limit``), so no failing call is hidden; the counts say what is not listed."""
    roots = [c for c in calls if c.parent is None]
    failing = [c for c in roots if names.memo.failed(c)]
    failing_ids = {id(c) for c in failing}
    if len(roots) <= limit:
        detailed = roots
        brief: list = []
    else:
        keep = {id(c) for c in failing[:limit]}
        for c in roots:
            if len(keep) >= limit:
                break
            keep.add(id(c))
        detailed = [c for c in roots if id(c) in keep]
        brief = [c for c in failing if id(c) not in keep]
    brief_shown = brief[:brief_limit]
    nodes = 0

    def node(call, depth, seen) -> dict:
        nonlocal nodes
        nodes += 1
        seen.add(id(call))
        view = call_view(call, trace, names, t0)
        ops = call.operations
        view["ops"] = [op_view(op, trace) for op in ops[:MAX_TREE_OPS]]
        view["more_ops"] = max(0, len(ops) - MAX_TREE_OPS)
        view["ops_not_kept"] = call.ops_not_kept
        kids = [c for c in call.children if id(c) not in seen]
        view["children"] = [node(c, depth + 1, seen) for c in kids] if depth < MAX_TREE_DEPTH else []
        view["more_children"] = len(kids) - len(view["children"])
        return view

    procs: dict[Any, dict[Any, list]] = defaultdict(lambda: defaultdict(list))
    for c in detailed:
        procs[c.client_pid][c.client_tid].append(c)
    out = []
    for pid in sorted(procs, key=lambda p: (names.image(p).lower(), p if p is not None else -1)):
        threads = []
        for tid in sorted(procs[pid], key=lambda t: t if t is not None else -1):
            threads.append({"tid": tid, "calls": [node(c, 0, set()) for c in procs[pid][tid]]})
        out.append({
            "pid": pid,
            "label": names.process_label(pid) if pid is not None else "client not seen",
            "command_line": names.command_line(pid),
            "threads": threads,
        })
    return {
        "processes": out,
        "brief": [_brief(c, names) for c in brief_shown],
        "roots": len(roots),
        "detailed": len(detailed),
        "listed": nodes + len(brief_shown),  # call entries on the page (nested ones included)
        "failing": len(failing),
        "brief_total": len(brief),
        "failing_not_listed": len(brief) - len(brief_shown),
        "others_not_listed": len(roots) - len(detailed) - len(brief),
        "detailed_failing": sum(1 for c in detailed if id(c) in failing_ids),
    }


_TL_WIDTH = 1000  # viewBox units across a timeline row (about one per pixel on a wide screen)
_TL_MIN_BAR = 3.0


def timeline(calls, trace, names: Names) -> dict:
    from rpctrace.render.perfetto import _server_span

    bars: dict[tuple, list] = defaultdict(list)
    spans = []
    chosen = calls
    if len(calls) > MAX_TIMELINE_CALLS:
        # every failing call's bar first, then the others in order, up to the cap
        keep = {id(c) for c in [c for c in calls if names.memo.blamed(c)][:MAX_TIMELINE_CALLS]}
        for c in calls:
            if len(keep) >= MAX_TIMELINE_CALLS:
                break
            keep.add(id(c))
        chosen = [c for c in calls if id(c) in keep]
    for call in chosen:
        iname, where = names.what(call)
        failed = names.memo.failed(call)  # for the filter: the call failed somewhere
        common = {"id": call.id, "iface_key": names.iface(call.interface), "pids": pids_text(call.client_pid, call.server_pid),
                  "failed": failed, "red": failed}
        if call.client_pid is not None and call.client_tid is not None and call.start is not None:
            end = call.end if call.end is not None else call.start
            spans.append((call.start, end))
            bars[(call.client_pid, call.client_tid)].append(dict(common, begin=call.start, end=end, side="client",
                title=f"call {call.id} (client): {iname} {where} → {names.image(call.server_pid)}"))
        if call.server_pid is not None and call.server_tid is not None:
            span = _server_span(call)
            if span is not None:
                begin, end = span
                spans.append((begin, end))
                bars[(call.server_pid, call.server_tid)].append(dict(common, begin=begin, end=end, side="server",
                    red=bool(names.memo.blamed(call)),  # red where this thread's own operation failed
                    title=f"call {call.id} (server): {iname} {where} for {names.image(call.client_pid)}"
                          + (" — FAILED operation" if names.memo.blamed(call) else "")))
    if not spans:
        return {"rows": [], "ticks": [], "shown": len(chosen), "total": len(calls)}
    t0 = min(b for b, _ in spans)
    t1 = max(e for _, e in spans)
    width = max(1, t1 - t0)
    rows = []
    by_pid: dict[int, list] = defaultdict(list)
    for (pid, tid), items in bars.items():
        by_pid[pid].append((tid, items))
    for pid in sorted(by_pid, key=lambda p: (names.image(p).lower(), p)):
        threads = []
        for tid, items in sorted(by_pid[pid], key=lambda x: x[0]):
            view = []
            for b in sorted(items, key=lambda b: b["begin"]):
                x = (b["begin"] - t0) / width * _TL_WIDTH
                w = max(_TL_MIN_BAR, (b["end"] - b["begin"]) / width * _TL_WIDTH)
                x = min(x, _TL_WIDTH - w)
                view.append(dict(b, x=f"{x:.2f}", w=f"{w:.2f}", duration=f"{(b['end'] - b['begin']) / 10:,.1f} µs"))
            roles = {b["side"] for b in items}
            role = "client and server" if len(roles) == 2 else roles.pop()
            threads.append({"tid": tid, "bars": view, "role": role,
                            "ifaces": " ".join(sorted({b["iface_key"] for b in items})),
                            "pids": " ".join(sorted({p for b in items for p in b["pids"].split()}))})
        rows.append({"pid": pid, "label": names.process_label(pid), "threads": threads})
    ticks = [{"label": f"{(width * i / 5) / 10_000:,.1f} ms"} for i in range(6)]
    return {"rows": rows, "ticks": ticks, "width": _TL_WIDTH, "start": ticks_to_iso(t0), "span": f"{width / 10_000:,.1f} ms",
            "shown": len(chosen), "total": len(calls)}


def finding_view(f: Finding, names: Names) -> dict:
    failure = f.get("failure") or {}
    client, server = f.get("client") or {}, f.get("server") or {}
    iface = f.get("interface") or {}
    identity = f.get("identity") or {}
    acl = f.get("acl") or None
    deciding = set((acl or {}).get("deciding") or [])
    aces = []
    for ace in (acl or {}).get("aces") or []:
        aces.append({"index": ace.get("index"), "type": ace.get("type"), "name": ace.get("name") or ace.get("sid"),
                     "sid": ace.get("sid"), "rights": " | ".join(ace.get("mask_names") or []) or hex(ace.get("mask") or 0),
                     "inherited": "inherited" if ace.get("inherited") else "explicit", "effect": ace.get("effect"),
                     "deciding": ace.get("index") in deciding})
    status = failure.get("status")
    return {
        "f": f,
        "nested": failure.get("call") is not None and f.get("call") is not None and failure.get("call") != f.get("call"),
        "ask_acl": str(failure.get("kind") or "").startswith("registry.") and status in SECURITY,
        "hive_option": hive_option(failure.get("path") or ""),
        "call": f.get("call"),
        "pids": pids_text(client.get("pid"), server.get("pid")),
        "iface_key": names.iface(iface.get("uuid")),
        "status": (f"0x{status & 0xFFFFFFFF:08X}" + (f" {failure.get('status_name')}" if failure.get("status_name") else ""))
        if isinstance(status, int) else None,
        "what": f"{iface.get('name') or iface.get('uuid') or 'an RPC interface'}",
        "procedure": iface.get("procedure") or (f"opnum {iface.get('opnum')}" if iface.get("opnum") is not None else None),
        "operation": (failure.get("kind") or "").replace("registry.", "registry ").replace("file.", "file "),
        "desired": failure.get("desired_access_names"),
        "identity": identity,
        "acl": acl,
        "aces": aces,
        "fix": f.get("fix"),
        "confidence": f"{f['confidence']:.2f}" if f.get("confidence") is not None else None,
    }


_STATIC: dict[str, str] = {}


