"""Chrome trace-event JSON for ui.perfetto.dev and chrome://tracing.

One track per process and thread (``process_name`` / ``thread_name`` metadata events), a complete
slice (``"ph": "X"``) for each call on its client thread and for the server thread's work on it,
the registry and file operations of that work as thread-scoped instant events (``"ph": "i"``) with
their path and status, and a flow arrow (``"s"`` on the client slice, ``"f"`` with
``"bp": "e"`` inside the server slice) from each call to the work that served it; nested calls get
their own arrows.  Format: the Trace Event Format (JSON Object Format, ``traceEvents``); ``ts``
and ``dur`` are microseconds (floats) from the start of the trace.

Strings from the trace are data: they go into JSON values only, and ``json.dumps`` escapes them.
The output is deterministic: the same trace gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING

from rpctrace import __version__
from rpctrace.correlate.procedure import procedure_of
from rpctrace.knowledge.failures import event_expected_reason
from rpctrace.knowledge.status import is_failure, ntstatus_name
from rpctrace.model import target_of, ticks_to_iso

if TYPE_CHECKING:
    from rpctrace.correlate.calls import Call

FLOW_NAME = "rpc request"
FLOW_CAT = "rpc.flow"
#: how far (µs) inside a slice a flow end is placed, so that it binds to that slice
_INSIDE = 0.05


def _hex(value) -> str | None:
    return f"0x{value:x}" if isinstance(value, int) else None


def _services(trace, calls) -> dict[int, str]:
    """The service(s) each process hosts, named as every other output names them: svchost's
    ``-s NAME``, else the owners of the interfaces the process served in this trace."""
    from rpctrace.knowledge.services import service_for

    served: dict[int, dict] = {}
    for c in calls:
        if c.server_pid is not None:
            served.setdefault(c.server_pid, {})[c.interface] = None
    out: dict[int, str] = {}
    for pid, info in trace.processes.items():
        try:
            found = [service_for(info.image, info.command_line, i) for i in (served.get(pid) or {None: None})]
        except Exception:  # a hostile command line only costs the name
            continue
        names = ", ".join(dict.fromkeys(x for x in found if x))
        if names:
            out[pid] = names
    return out


#: frames of a failed operation's stack in its instant's args (a stack walk has at most 192)
STACK_FRAMES = 192


def _label(trace, call) -> str:
    """A slice's name: the procedure (``PolicyConfigSetDefaultEndpoint``; from the server's PDB
    when no database names it), else the interface's name or UUID with the opnum, else the
    endpoint."""
    iname, proc, _ = procedure_of(trace, call)
    if proc:
        return proc
    what = iname or call.interface or call.endpoint or "?"
    if call.opnum is not None:
        what += f" opnum {call.opnum}"
    return what


def _who(trace, pid, tid) -> str:
    info = trace.process(pid)
    image = info.image if info and info.image else "?"
    return f"{image} ({pid}:{tid})"


class _Builder:
    def __init__(self, trace, t0: int, status_name):
        self.trace = trace
        self.t0 = t0
        self.status_name = status_name
        self.events: list[dict] = []
        self.threads: dict[tuple[int, int], set[str]] = {}
        self.slices: dict[tuple[int, int], list[dict]] = {}

    def us(self, ticks: int) -> float:
        return max(0, ticks - self.t0) / 10  # ticks are 100 ns: one decimal is exact

    def touch(self, pid: int, tid: int, role: str | None = None) -> None:
        roles = self.threads.setdefault((pid, tid), set())
        if role:
            roles.add(role)

    def slice(self, pid, tid, begin: int, end: int, name: str, cat: str, args: dict, role: str) -> dict:
        ts = self.us(begin)
        ev = {"ph": "X", "name": name, "cat": cat, "ts": ts, "dur": _r(max(0.0, self.us(max(begin, end)) - ts)),
              "pid": pid, "tid": tid, "args": args}
        self.touch(pid, tid, role)
        self.slices.setdefault((pid, tid), []).append(ev)
        self.events.append(ev)
        return ev

    def instant(self, pid, tid, ts: int, name: str, cat: str, args: dict, cname: str | None = None) -> None:
        self.touch(pid, tid)
        ev = {"ph": "i", "s": "t", "name": name, "cat": cat, "ts": self.us(ts), "pid": pid, "tid": tid, "args": args}
        if cname:
            ev["cname"] = cname  # the trace-event format's reserved colour names: failures red, expected grey
        self.events.append(ev)


def _r(value: float) -> float:
    """Microseconds rounded to the nanosecond (keeps the JSON short and stable)."""
    return round(value, 3)


def _inside(ev: dict, at: float | None = None) -> float:
    """A time strictly inside slice ``ev`` (near ``at`` when given), so a flow event binds to it."""
    begin, dur = ev["ts"], ev["dur"]
    if dur <= 0:
        return begin
    nudge = min(dur / 2, _INSIDE)
    if at is not None and begin + nudge <= at <= begin + dur - nudge:
        return at
    return _r(begin + nudge)


def _nest(slices: list[dict]) -> None:
    """Make the complete slices of one thread nest (a viewer requires it): a slice that starts
    inside another but would end after it is cut at the other's end (``args.clipped``)."""
    order = sorted(slices, key=lambda e: (e["ts"], -e["dur"]))
    stack: list[dict] = []
    for ev in order:
        while stack and stack[-1]["ts"] + stack[-1]["dur"] <= ev["ts"]:
            stack.pop()
        if stack:
            top_end = stack[-1]["ts"] + stack[-1]["dur"]
            if ev["ts"] + ev["dur"] > top_end:
                ev["dur"] = _r(max(0.0, top_end - ev["ts"]))
                ev["args"]["clipped"] = True
        stack.append(ev)


def _server_span(call: Call) -> tuple[int, int] | None:
    """When the server thread worked on the call: from taking the message (or RPC event 6) to the
    reply (or RPC event 8), stretched over the operations attributed to it; None when the trace
    does not show the server start."""
    msg = call.message
    begins, ends = [], []
    if msg is not None and msg.server_tid == call.server_tid and msg.receive_ts is not None:
        begins.append(msg.receive_ts)
    if call.server_start is not None:
        begins.append(call.server_start)
    if msg is not None and msg.reply_ts is not None and (msg.reply_tid in (None, call.server_tid)):
        ends.append(msg.reply_ts)
    if call.server_end is not None:
        ends.append(call.server_end)
    if not begins:
        return None
    begin = min(begins)
    ends.extend(op.ts for op in call.operations)
    end = max([begin] + ends)
    return begin, end


def to_trace_events(trace, calls: Iterable, status_name=ntstatus_name) -> dict:
    """The Chrome trace-event document (a dict ready for ``json.dump``) for ``calls`` of ``trace``."""
    calls = sorted(calls, key=lambda c: c.id)
    times = [t for c in calls for t in (c.start, c.server_start) if t is not None]
    if trace.events:
        t0 = trace.events[0].ts
    elif trace.time_range is not None:
        t0 = trace.time_range[0]
    else:
        t0 = min(times) if times else 0
    b = _Builder(trace, t0, status_name)
    flows = 0
    seen_ops: set[int] = set()
    for call in calls:
        label = _label(trace, call)
        status = call.status if call.status is not None else call.server_status
        iname, proc, proc_source = procedure_of(trace, call)
        mode = call.mode
        common = {
            "call": call.id,
            "interface": call.interface,
            "interface_name": iname,
            "procedure": proc,
            "procedure_source": proc_source,
            "opnum": call.opnum,
            "mode": mode,
            "completion_tid": call.completion_tid,
            "endpoint": call.endpoint,
            "protocol": call.protocol_name,
            "alpc_message_id": call.alpc_message_id,
            "rpc_status": _hex(status),
            "confidence": call.confidence,
            "evidence": list(call.evidence),
            "failures": len(call.blamed),
            "expected_results": len(call.failures) - len(call.blamed),
            "parent": call.parent.id if call.parent is not None else None,
        }
        client = server = None
        if call.client_pid is not None and call.client_tid is not None and call.start is not None:
            end = call.end if call.end is not None else call.start
            args = dict(common, server=_who(trace, call.server_pid, call.server_tid) if call.server_pid is not None else None)
            if mode == "async" and call.completion_tid is not None and call.completion_tid != call.client_tid:
                # the calling thread only started it: its slice ends with the request; the thread
                # that took the reply gets a slice of its own for the completion
                sent = call.message.send_ts if call.message is not None and call.message.send_ts is not None else call.start
                client = b.slice(call.client_pid, call.client_tid, call.start, max(sent, call.start),
                                 f"call {call.id}: {label} (async)", "rpc.client", args, "client")
                done = call.message.client_receive_ts if call.message is not None else None
                done = done if done is not None else end
                b.slice(call.client_pid, call.completion_tid, done, end, f"completes call {call.id}: {label}",
                        "rpc.client", dict(args), "client")
            else:
                client = b.slice(call.client_pid, call.client_tid, call.start, end,
                                 f"call {call.id}: {label}" + (" (one-way)" if mode == "datagram" else ""),
                                 "rpc.client", args, "client")
        if call.server_pid is not None and call.server_tid is not None:
            span = _server_span(call)
            if span is not None:
                begin, end = span
                args = dict(common, client=_who(trace, call.client_pid, call.client_tid)
                            if call.client_pid is not None else None)
                server = b.slice(call.server_pid, call.server_tid, begin, end, f"serve {call.id}: {label}",
                                 "rpc.server", args, "server")
        for op in call.operations:
            if id(op) in seen_ops or op.tid is None:
                continue
            seen_ops.add(id(op))
            pid = op.pid if op.pid is not None else call.server_pid
            if pid is None:
                continue
            f = op.fields
            st = f.get("status")
            failed = is_failure(st)
            expected = event_expected_reason(op) if failed else None
            name_of = status_name(st) if status_name and isinstance(st, int) else None
            args = {
                "call": call.id,
                "path": target_of(op),
                "value_name": f.get("value_name"),
                "status": _hex(st),
                "status_name": name_of,
                "failed": failed and expected is None,
                "expected": expected,
            }
            if failed and op.stack:
                # the failing operation's stack, innermost first, as every output names frames
                # (module!function+0xdisp with symbols, else module+0xoffset); bounded
                args["stack"] = [trace.symbolize(pid, a) for a in op.stack[:STACK_FRAMES]]
            if failed and expected is None:
                name = f"FAILED {op.kind} {name_of or _hex(st)}"
            elif failed:
                name = f"{op.kind} {name_of or _hex(st)} (expected)"
            else:
                name = op.kind
            b.instant(pid, op.tid, op.ts, name, op.kind.split(".", 1)[0], args,
                      cname="terrible" if failed and expected is None else "grey" if failed else None)
        if client is not None and server is not None:
            flows += 1
            send = call.message.send_ts if call.message is not None else None
            s_ts = _inside(client, b.us(send) if send is not None else None)
            b.events.append({"ph": "s", "id": call.id, "name": FLOW_NAME, "cat": FLOW_CAT, "ts": s_ts,
                             "pid": client["pid"], "tid": client["tid"], "args": {"call": call.id}})
            server["_flow_end"] = call.id
    for slices in b.slices.values():
        _nest(slices)
    # flow ends after nesting (a clipped slice must still contain its flow end)
    for ev in list(b.events):
        call_id = ev.pop("_flow_end", None)
        if call_id is not None:
            b.events.append({"ph": "f", "bp": "e", "id": call_id, "name": FLOW_NAME, "cat": FLOW_CAT,
                             "ts": _inside(ev), "pid": ev["pid"], "tid": ev["tid"], "args": {"call": call_id}})

    meta: list[dict] = []
    services = _services(trace, calls)
    for pid in sorted({p for p, _ in b.threads}):
        info = trace.process(pid)
        name = info.image if info and info.image else f"pid {pid}"
        service = services.get(pid)
        if service:
            name = f"{name} ({service})"
        meta.append({"ph": "M", "name": "process_name", "ts": 0, "pid": pid, "tid": 0, "args": {"name": name}})
    for (pid, tid), roles in sorted(b.threads.items()):
        role = {frozenset({"client"}): "RPC client thread", frozenset({"server"}): "RPC server thread",
                frozenset({"client", "server"}): "RPC client and server thread"}.get(frozenset(roles), "thread")
        meta.append({"ph": "M", "name": "thread_name", "ts": 0, "pid": pid, "tid": tid,
                     "args": {"name": f"{role} {tid}"}})
    order = {"X": 0, "i": 1, "s": 2, "f": 3}
    body = sorted(b.events, key=lambda e: (e["ts"], e["pid"], e["tid"], order[e["ph"]], -e.get("dur", 0.0),
                                           e.get("id", 0), e["name"]))
    return {
        "traceEvents": meta + body,
        "displayTimeUnit": "ns",
        "metadata": {
            "generator": f"rpctrace {__version__}",
            "trace_start": ticks_to_iso(t0),
            "time_unit": "microseconds since trace_start",
            "calls": len(calls),
            "flows": flows,
            "sources": [str(s.get("path")) for s in trace.sources],
        },
    }


def write(doc: dict, out: IO[str]) -> None:
    """Write the document as JSON (ASCII only: every non-ASCII or odd character is escaped)."""
    json.dump(doc, out, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    out.write("\n")
