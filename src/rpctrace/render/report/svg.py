"""The sequence diagram of one call as inline SVG: client thread, ALPC port and server worker
thread, with the RPC call, the ALPC request and reply, the server's operations (the failing one
in red, with its stack) and the calls it made.  Every text is escaped by :func:`~.safe._el`."""

from __future__ import annotations

from rpctrace.explain.rootcause import first_failure
from rpctrace.knowledge.failures import event_class, event_expected_reason
from rpctrace.knowledge.status import is_failure
from rpctrace.render.report.facts import Names, op_target, status_text
from rpctrace.render.report.safe import _el, _short, _wrap

#: bounds, so a call with thousands of operations still gives a diagram a browser draws
MAX_DIAGRAM_OPS = 40
MAX_STACK_FRAMES = 30

_W = 1210
_X_TIME, _X_CLIENT, _X_PORT, _X_SERVER = 12, 170, 450, 730
_TEXT_X = _X_SERVER + 18
_TEXT_CHARS = 64  # what fits between _TEXT_X and the right edge at 13px
_HEAD_H = 78
_ROW = 34
_LINE = 16
_RED, _BLUE, _GREEN, _GREY = "#c62828", "#1f5fa8", "#2e7d32", "#6b6b6b"


def sequence_svg(call, trace, names: Names, blamed_op=None) -> str:
    """The sequence diagram of one call as an inline SVG string (every text escaped)."""
    msg = call.message
    iname, where = names.what(call)
    rows: list[dict] = []

    def row(ts, rank, kind, **kw):
        if ts is not None:
            rows.append({"ts": ts, "rank": rank, "kind": kind, **kw})

    row(call.start if call.has_client else None, 0, "client-self", color=_BLUE,
        lines=["RPC call starts", _short(where, 38)])
    if msg is not None:
        row(msg.send_ts, 1, "to-port", color=_BLUE, lines=[f"ALPC request · message {msg.message_id}"])
        row(msg.receive_ts, 2, "to-server", color=_GREEN, lines=[f"worker takes message {msg.message_id}"])
    if call.has_server:
        row(call.server_start, 3, "server-note", color=_GREEN,
            lines=["RPC dispatch starts" + (f" (opnum {call.opnum})" if call.opnum is not None else ""),
                   _short(f"{iname} {where}" if not where.startswith("opnum") else iname, _TEXT_CHARS)])
    ops = list(call.operations)
    shown = ops
    if len(ops) > MAX_DIAGRAM_OPS:
        keep = {id(op) for op in ops if event_class(op) == "blame"}
        keep.update(id(op) for op in ops[:MAX_DIAGRAM_OPS])
        shown = [op for op in ops if id(op) in keep]
    for op in shown:
        st = op.fields.get("status")
        failed = event_class(op) == "blame"
        expected = not failed and is_failure(st)
        head = [f"{'FAILED ' if failed else ''}{op.kind} → {status_text(st)}"]
        if len(head[0]) > _TEXT_CHARS - 8:  # bold text is wider: the status goes on a line of its own
            head = [f"{'FAILED ' if failed else ''}{_short(op.kind, 40)}", f"→ {status_text(st)}"]
        lines = head + _wrap(op_target(op), _TEXT_CHARS, 8 if failed else 3)
        if expected:
            lines.append(_short(f"expected: {event_expected_reason(op)}", _TEXT_CHARS))
        stack = []
        if failed and op.stack:
            stack = [trace.symbolize(op.pid, a) for a in op.stack]
        elif failed and op.fields.get("frames"):
            stack = [str(x) for x in op.fields.get("frames") or ()]
        row(op.ts, 4, "op", color=_RED if failed else _GREY, lines=lines, failed=failed, stack=stack,
            blamed=op is blamed_op)
    if len(shown) < len(ops):
        last = max(op.ts for op in ops)
        row(last, 5, "server-note", color=_GREY,
            lines=[f"… {len(ops) - len(shown)} more operations (see the call tree)"])
    for child in call.children:
        c_iname, c_where = names.what(child)
        lines = [f"calls out: call {child.id} → {_short(names.image(child.server_pid), 30)}"
                 + (f" thread {child.server_tid}" if child.server_tid is not None else ""),
                 _short(f"{c_iname} {c_where}", _TEXT_CHARS)]
        failed_child = names.memo.failed(child)
        if failed_child:
            blame = first_failure(child)
            if blame is not None:
                lines.append(_short(f"where {blame.op.kind} failed → {status_text(blame.op.fields.get('status'))}",
                                    _TEXT_CHARS))
                lines.append(f"(in call {blame.call.id}: its diagram follows)")
        row(child.start, 4, "server-note", color=_RED if failed_child else _GREY, lines=lines)
    if call.has_server:
        status = call.server_status
        row(call.server_end, 6, "server-note", color=_GREEN,
            lines=["RPC dispatch returns" + (f" · {status_text(status, 'RPC')}" if status is not None else "")])
    if msg is not None:
        row(msg.reply_ts, 7, "from-server", color=_GREEN, lines=[f"ALPC reply · message {msg.message_id}"])
        done = call.completion_tid if call.mode == "async" else None
        row(msg.client_receive_ts, 8, "to-client", color=_BLUE,
            lines=[f"reply taken by thread {done} (asynchronous call)" if done is not None and done != call.client_tid
                   else "reply reaches the client thread"])
    if call.has_client and call.end != call.start:
        row(call.end, 9, "client-self", color=_BLUE,
            lines=["RPC call completes", f"RPC status {status_text(call.status, 'RPC')}",
                   (f"result {status_text(call.result_status)}" if call.result_status is not None
                    else "the procedure's result is not in the trace")])
    rows.sort(key=lambda r: (r["ts"], r["rank"]))

    base = min((r["ts"] for r in rows), default=call.start or 0)
    out: list[str] = []
    y = _HEAD_H + 26
    for r in rows:
        n = len(r["lines"])
        h = _ROW + (n - 1) * _LINE
        stack = r.get("stack") or []
        mid = y + 8
        r["y"] = mid
        out.append(_el("text", f"+{(r['ts'] - base) / 10:,.1f} µs", x=_X_TIME, y=mid + 4, class_="t"))
        kind, color = r["kind"], r["color"]
        if kind in ("to-port", "to-server", "from-server", "to-client"):
            x1, x2 = {"to-port": (_X_CLIENT, _X_PORT), "to-server": (_X_PORT, _X_SERVER),
                      "from-server": (_X_SERVER, _X_PORT), "to-client": (_X_PORT, _X_CLIENT)}[kind]
            out.append(_arrow(x1, x2, mid, color, dashed=kind in ("from-server", "to-client")))
            tx = (x1 + x2) / 2
            for i, line in enumerate(r["lines"]):
                out.append(_el("text", line, x=tx, y=mid - 6 + i * _LINE, class_="lbl mid", fill=color))
        elif kind == "client-self":
            out.append(_el("path", d=f"M{_X_CLIENT + 5},{mid - 6} h26 v12 h-22", fill="none", stroke=color,
                           stroke_width=1.6))
            out.append(_el("polygon", points=f"{_X_CLIENT + 5},{mid + 6} {_X_CLIENT + 13},{mid + 2} "
                                             f"{_X_CLIENT + 13},{mid + 10}", fill=color))
            for i, line in enumerate(r["lines"]):
                out.append(_el("text", line, x=_X_CLIENT + 38, y=mid + i * _LINE, class_="lbl" + (" b" if i == 0 else ""),
                               fill=color))
        else:  # something the server thread did: a mark on its lifeline, text to the right
            marked = bool(r.get("failed"))  # (the row of a failed operation)
            if kind == "op":
                out.append(_el("rect", x=_X_SERVER - 6, y=mid - 6, width=12, height=12, rx=2, fill=color,
                               stroke="#fff", stroke_width=1))
                if marked:
                    out.append(_el("rect", x=_TEXT_X - 8, y=mid - 17, width=_W - _TEXT_X + 4, height=h + 2,
                                   rx=6, fill="#fdecea", stroke=_RED, stroke_width=1.5 if r.get("blamed") else 1))
            else:
                out.append(_el("circle", cx=_X_SERVER, cy=mid, r=4, fill=color))
            for i, line in enumerate(r["lines"]):
                mono = kind == "op" and i > 0 and not line.startswith("→ ")
                cls = "lbl" + (" b" if marked and not mono else "") + (" mono" if mono else "")
                out.append(_el("text", line, x=_TEXT_X, y=mid + 4 + i * _LINE, class_=cls, fill=color))
        y += h
        if stack:
            cols, per = 3, min(10, -(-min(len(stack), MAX_STACK_FRAMES) // 3))
            per = max(per, 1)
            frames = stack[: cols * per]
            box_h = 24 + per * 15 + (15 if len(stack) > len(frames) else 0)
            out.append(_el("rect", x=_TEXT_X - 8, y=y - 6, width=_W - _TEXT_X + 4, height=box_h, rx=6,
                           fill="#fff7f6", stroke=_RED, stroke_dasharray="3 3"))
            out.append(_el("text", f"stack of the failing {r['lines'][0].split(' → ')[0].replace('FAILED ', '')} "
                                   "(innermost first)", x=_TEXT_X, y=y + 10, class_="lbl small b", fill=_RED))
            col_w = (_W - _TEXT_X - 16) / cols
            for i, frame in enumerate(frames):
                c, k = divmod(i, per)
                out.append(_el("text", f"{i:>2} {_short(frame, 26)}", x=_TEXT_X + c * col_w, y=y + 28 + k * 15,
                               class_="mono small", fill="#5d1d1d"))
            if len(stack) > len(frames):
                out.append(_el("text", f"… {len(stack) - len(frames)} more frames (all in the finding above)",
                               x=_TEXT_X, y=y + 28 + per * 15, class_="small", fill=_RED))
            y += box_h + 8
    height = y + 16

    # activation bars: the client thread waits from the request to the reply; the server works
    acts = []
    c0 = next((r["y"] for r in rows if r["kind"] in ("client-self", "to-port")), None)
    c1 = next((r["y"] for r in reversed(rows) if r["kind"] in ("client-self", "to-client")), None)
    if c0 is not None and c1 is not None and c1 > c0:
        acts.append(_el("rect", x=_X_CLIENT - 4, y=c0, width=8, height=c1 - c0, fill="#dce8f6", stroke=_BLUE,
                        stroke_width=0.8))
    server_rows = [r["y"] for r in rows if r["kind"] in ("to-server", "server-note", "op", "from-server")]
    if len(server_rows) >= 2:
        acts.append(_el("rect", x=_X_SERVER - 4, y=min(server_rows), width=8, height=max(server_rows) - min(server_rows),
                        fill="#dff0e0", stroke=_GREEN, stroke_width=0.8))

    client_svc = names.service(call.client_pid)
    server_svc = names.service(call.server_pid, call.interface)
    heads = [
        _head(_X_CLIENT, "client thread", _short(names.image(call.client_pid) + (f" ({client_svc})" if client_svc else ""), 30),
              f"pid {call.client_pid if call.client_pid is not None else '?'} · thread "
              f"{call.client_tid if call.client_tid is not None else '?'}", _BLUE, names.command_line(call.client_pid)),
        _head(_X_PORT, "ALPC port", _short((msg.port_name if msg is not None else None) or
                                           (f"endpoint {call.endpoint}" if call.endpoint else "(no ALPC message seen)"), 32),
              f"{call.protocol_name or '?'} endpoint {_short(call.endpoint or '?', 18)}", _GREY,
              msg.port_name if msg is not None else call.endpoint),
        _head(_X_SERVER, "server worker thread",
              _short(names.image(call.server_pid) + (f" ({server_svc})" if server_svc else ""), 30),
              f"pid {call.server_pid if call.server_pid is not None else '?'} · thread "
              f"{call.server_tid if call.server_tid is not None else '?'}", _GREEN, names.command_line(call.server_pid)),
    ]
    lifelines = [_el("line", x1=x, y1=_HEAD_H, x2=x, y2=height - 8, stroke="#9aa4ae", stroke_dasharray="5 4")
                 for x in (_X_CLIENT, _X_PORT, _X_SERVER)]
    title = f"Sequence of call {call.id}: {iname} {where}"
    body = [_el("title", title)] + lifelines + heads + acts + out
    return _el("svg", children=body, xmlns="http://www.w3.org/2000/svg", class_="seq", role="img",
               viewBox=f"0 0 {_W} {height:.0f}", width=_W, height=f"{height:.0f}",
               aria_label=title)


def _arrow(x1: float, x2: float, y: float, color: str, dashed: bool = False) -> str:
    d = 1 if x2 > x1 else -1
    tip = x2 - d * 6
    line = _el("line", x1=x1 + d * 6, y1=y, x2=tip - d * 6, y2=y, stroke=color, stroke_width=1.8,
               stroke_dasharray="6 4" if dashed else None)
    head = _el("polygon", points=f"{tip},{y} {tip - d * 10},{y - 5} {tip - d * 10},{y + 5}", fill=color)
    return line + head


def _head(x: float, role: str, name: str, ids: str, color: str, tip: str | None) -> str:
    w = 230
    kids = [
        _el("title", tip) if tip else "",
        _el("rect", x=x - w / 2, y=6, width=w, height=_HEAD_H - 12, rx=8, fill="#fff", stroke=color, stroke_width=1.5),
        _el("text", role, x=x, y=24, class_="lbl mid small", fill=color),
        _el("text", name, x=x, y=43, class_="lbl mid b"),
        _el("text", ids, x=x, y=60, class_="lbl mid small", fill="#444"),
    ]
    return _el("g", children=kids)


