"""The HTML report: one self-contained page that opens from disk.

Findings first (the explain chain in plain words, the ACL verdict and the fix), then a sequence
diagram per failing call (client thread, ALPC port, server worker thread: the RPC call, the ALPC
request and reply, the server's operations with the failing one in red and its stack), the call
tree (client process -> thread -> call -> operations -> nested calls), a timeline (a row per
process thread, a bar per call) and filters by process and interface.

Safety: every string in the page that came from a trace (process names, command lines, registry
paths, endpoints, module names; traces come from possibly compromised machines) is data:

* the page is built by jinja2 with ``autoescape=True``; no trace string is ever marked safe.  A
  ``finalize`` hook also makes control and bidirectional-override characters visible
  (``\\u202e``) and bounds the length of every value, so a name cannot reorder or flood the page;
* the sequence diagrams are SVG built here by :func:`_el`, which escapes every attribute value
  and text node (the result is marked safe only as a whole, after escaping);
* the filters read the page through ``dataset``/``textContent`` and toggle ``hidden``; they never
  parse markup (``innerHTML`` is not used, and Trusted Types forbid it anyway, see below);
* nothing is fetched: no URL to any host, no fonts, no images.

The Content-Security-Policy (a ``<meta>`` tag, the first thing in ``<head>``) is the second line
of defence, so that even an escaping bug could neither load nor run anything::

    default-src 'none'; script-src 'sha256-<our one script>'; style-src 'sha256-<our one
    style sheet>'; img-src 'none'; font-src 'none'; connect-src 'none'; ... base-uri 'none';
    form-action 'none'; require-trusted-types-for 'script'; trusted-types 'none'

The script and the style sheet are allowed by their SHA-256 hashes rather than by a nonce: both
are constants of this package (no trace data in them), so the hashes are fixed, the output stays
deterministic (the same trace gives the same bytes), and there is no per-file secret for injected
markup to reuse.  Any other script, inline event handler (``onerror=``), ``javascript:`` URL,
``<style>`` element or ``style=""`` attribute is refused, and nothing can be fetched; Trusted
Types make ``innerHTML``-style sinks throw.  There is no ``'unsafe-inline'`` at all: the page has
no ``style`` attributes (the timeline is SVG, placed with ``x``/``width`` attributes, which the
policy does not govern), so the CSS hash covers everything.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from markupsafe import Markup, escape

from rpctrace import __version__
from rpctrace.explain.rootcause import SECURITY, first_failure
from rpctrace.knowledge import codes, interfaces
from rpctrace.model import ticks_to_iso

TEMPLATES = Path(__file__).with_name("templates")

#: bounds, so a trace with a million calls still gives a page a browser opens
MAX_DIAGRAMS = 30
MAX_DIAGRAM_OPS = 40
MAX_STACK_FRAMES = 30
MAX_TREE_CALLS = 3000
MAX_TREE_OPS = 200
MAX_TREE_DEPTH = 12
MAX_TIMELINE_CALLS = 5000
MAX_TEXT = 4000

# C0/C1 controls (but tab/newline), zero-width and bidi controls, BOM, lone surrogates
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")


def defang(value: Any, limit: int = MAX_TEXT) -> str:
    """``value`` as text that displays as what it is: invisible and direction-changing characters
    shown as ``\\uXXXX``, and at most ``limit`` characters (the rest counted)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(text) - limit} more characters)"
    return _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _finalize(value: Any) -> Any:
    """Every ``{{ }}`` value: None prints as nothing, text is defanged (then autoescaped)."""
    if value is None:
        return ""
    if isinstance(value, Markup):
        return value  # built by this module from escaped parts (the SVG) or our constant CSS/JS
    if isinstance(value, str):
        return defang(value)
    return value


def _short(text: str | None, n: int) -> str:
    text = "" if text is None else defang(text)
    return text if len(text) <= n else text[: max(1, n - 1)] + "…"


# --- SVG built from escaped parts ---------------------------------------------------------------

def _el(tag: str, text: Any = None, children: Iterable[str] = (), **attrs: Any) -> str:
    """One SVG element; attribute names come from this module, every value and text is escaped."""
    parts = [f"<{tag}"]
    for name, value in attrs.items():
        if value is None:
            continue
        parts.append(f' {name.rstrip("_").replace("_", "-")}="{escape(defang(value))}"')
    body = "".join(children)
    if text is not None:
        body += str(escape(defang(text)))
    if not body:
        return "".join(parts) + "/>"
    return "".join(parts) + ">" + body + f"</{tag}>"


def _wrap(text: str, width: int, max_lines: int = 4) -> list[str]:
    """Split a long label (a registry path) into lines of at most ``width``, at backslashes when
    possible."""
    text = defang(text)
    lines: list[str] = []
    while text and len(lines) < max_lines:
        if len(text) <= width:
            lines.append(text)
            text = ""
            break
        cut = text.rfind("\\", 0, width)
        if cut < width // 3:
            cut = width
        lines.append(text[:cut])
        text = text[cut:]
    if text:
        lines[-1] = lines[-1][: max(1, width - 1)] + "…"
    return lines or [""]


# --- facts about calls --------------------------------------------------------------------------

def _is_failure(status) -> bool:
    return isinstance(status, int) and (status & 0xC0000000) == 0xC0000000


def _status_text(code, hint: str = "NTSTATUS") -> str:
    if code is None:
        return "?"
    if not isinstance(code, int):
        return defang(code, 80)
    if code == 0:
        return "0 (success)"
    name = codes.name(code, hint=hint)
    return f"0x{code & 0xFFFFFFFF:08X}" + (f" {name}" if name else "")


def _op_target(op) -> str:
    f = op.fields
    target = f.get("path") or f.get("open_path") or f.get("key_name") or ""
    value = f.get("value_name")
    if value and op.kind.startswith("registry.") and "value" in op.kind:
        target = f"{target} [{value}]" if target else str(value)
    return str(target)


def _subtree_failed(call, seen=None) -> bool:
    seen = set() if seen is None else seen
    if id(call) in seen:
        return False
    seen.add(id(call))
    return bool(call.failures) or any(_subtree_failed(c, seen) for c in call.children)


class _Names:
    """Labels for processes and interfaces, and the keys the filters use."""

    def __init__(self, trace, calls, findings):
        from rpctrace.knowledge.services import service_for

        self.trace = trace
        self._service_for = service_for
        self.iface_keys: dict[str | None, str] = {}
        self.pids: set[int] = set()
        self._served: dict[int, dict] = {}  # server pid -> the interfaces it served (name the services)
        for call in calls:
            self.iface(call.interface)
            self.pids.update(p for p in (call.client_pid, call.server_pid) if p is not None)
            if call.server_pid is not None and call.interface:
                self._served.setdefault(call.server_pid, {})[call.interface] = None
        for f in findings:
            self.iface((f.get("interface") or {}).get("uuid"))
            for side in ("client", "server"):
                pid = (f.get(side) or {}).get("pid")
                if isinstance(pid, int):
                    self.pids.add(pid)

    def iface(self, uuid: str | None) -> str:
        key = self.iface_keys.get(uuid)
        if key is None:
            key = self.iface_keys[uuid] = f"i{len(self.iface_keys)}"
        return key

    def iface_label(self, uuid: str | None) -> str:
        if uuid is None:
            return "(no interface: ALPC only)"
        name, _ = interfaces.lookup(uuid)
        return f"{name} ({uuid})" if name else str(uuid)

    def image(self, pid) -> str:
        info = self.trace.process(pid)
        if info and info.image:
            return info.image
        return "?" if pid is None else f"pid {pid}"

    def service(self, pid, interface=None) -> str | None:
        """The service a process hosts (svchost -s NAME, else the owner of an interface it serves)."""
        info = self.trace.process(pid)
        if not info:
            return None
        try:
            if interface is not None or pid not in self._served:
                return self._service_for(info.image, info.command_line, interface)
            found = [self._service_for(info.image, info.command_line, i) for i in self._served[pid]]
            return ", ".join(dict.fromkeys(x for x in found if x)) or None
        except Exception:  # a hostile command line must not stop the report
            return None

    def process_label(self, pid) -> str:
        svc = self.service(pid)
        return f"{self.image(pid)}" + (f" ({svc})" if svc else "") + ("" if pid is None else f" · pid {pid}")

    def command_line(self, pid) -> str | None:
        info = self.trace.process(pid)
        return info.command_line if info else None

    def what(self, call) -> tuple[str, str]:
        """(interface name or uuid, procedure or 'opnum N')."""
        iname, proc = interfaces.lookup(call.interface, call.opnum) if call.interface else (None, None)
        where = proc or (f"opnum {call.opnum}" if call.opnum is not None else "?")
        return iname or call.interface or (f"endpoint {call.endpoint}" if call.endpoint else "ALPC"), where


def _pids(*pids) -> str:
    return " ".join(str(p) for p in dict.fromkeys(p for p in pids if isinstance(p, int)))


# --- sequence diagram ---------------------------------------------------------------------------

_W = 1210
_X_TIME, _X_CLIENT, _X_PORT, _X_SERVER = 12, 170, 450, 730
_TEXT_X = _X_SERVER + 18
_TEXT_CHARS = 64  # what fits between _TEXT_X and the right edge at 13px
_HEAD_H = 78
_ROW = 34
_LINE = 16
_RED, _BLUE, _GREEN, _GREY = "#c62828", "#1f5fa8", "#2e7d32", "#6b6b6b"


def sequence_svg(call, trace, names: _Names, blamed_op=None) -> str:
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
        keep = {id(op) for op in ops if _is_failure(op.fields.get("status"))}
        keep.update(id(op) for op in ops[:MAX_DIAGRAM_OPS])
        shown = [op for op in ops if id(op) in keep]
    for op in shown:
        st = op.fields.get("status")
        failed = _is_failure(st)
        head = [f"{'FAILED ' if failed else ''}{op.kind} → {_status_text(st)}"]
        if len(head[0]) > _TEXT_CHARS - 8:  # bold text is wider: the status goes on a line of its own
            head = [f"{'FAILED ' if failed else ''}{_short(op.kind, 40)}", f"→ {_status_text(st)}"]
        lines = head + _wrap(_op_target(op), _TEXT_CHARS, 8 if failed else 3)
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
        failed_child = _subtree_failed(child)
        if failed_child:
            blame = first_failure(child)
            if blame is not None:
                lines.append(_short(f"where {blame.op.kind} failed → {_status_text(blame.op.fields.get('status'))}",
                                    _TEXT_CHARS))
                lines.append(f"(in call {blame.call.id}: its diagram follows)")
        row(child.start, 4, "server-note", color=_RED if failed_child else _GREY, lines=lines)
    if call.has_server:
        status = call.server_status
        row(call.server_end, 6, "server-note", color=_GREEN,
            lines=["RPC dispatch returns" + (f" · {_status_text(status, 'RPC')}" if status is not None else "")])
    if msg is not None:
        row(msg.reply_ts, 7, "from-server", color=_GREEN, lines=[f"ALPC reply · message {msg.message_id}"])
        row(msg.client_receive_ts, 8, "to-client", color=_BLUE, lines=["reply reaches the client thread"])
    if call.has_client and call.end != call.start:
        row(call.end, 9, "client-self", color=_BLUE,
            lines=["RPC call completes", f"status {_status_text(call.status, 'RPC')}"])
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
            failed = r.get("failed")
            if kind == "op":
                out.append(_el("rect", x=_X_SERVER - 6, y=mid - 6, width=12, height=12, rx=2, fill=color,
                               stroke="#fff", stroke_width=1))
                if failed:
                    out.append(_el("rect", x=_TEXT_X - 8, y=mid - 17, width=_W - _TEXT_X + 4, height=h + 2,
                                   rx=6, fill="#fdecea", stroke=_RED, stroke_width=1.5 if r.get("blamed") else 1))
            else:
                out.append(_el("circle", cx=_X_SERVER, cy=mid, r=4, fill=color))
            for i, line in enumerate(r["lines"]):
                mono = kind == "op" and i > 0 and not line.startswith("→ ")
                cls = "lbl" + (" b" if failed and not mono else "") + (" mono" if mono else "")
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


# --- the page -----------------------------------------------------------------------------------

def _call_view(call, trace, names: _Names, t0: int) -> dict:
    iname, where = names.what(call)
    status = call.status if call.status is not None else call.server_status
    return {
        "id": call.id,
        "iface": iname,
        "where": where,
        "iface_key": names.iface(call.interface),
        "pids": _pids(call.client_pid, call.server_pid),
        "client": names.process_label(call.client_pid) + (f" · thread {call.client_tid}" if call.client_tid is not None else ""),
        "server": (names.process_label(call.server_pid) + (f" · thread {call.server_tid}" if call.server_tid is not None else ""))
        if call.server_pid is not None else "server not seen",
        "endpoint": call.endpoint,
        "protocol": call.protocol_name,
        "message": call.alpc_message_id,
        "status": _status_text(status, "RPC") if status is not None else None,
        "start": ticks_to_iso(call.start) if call.start is not None else None,
        "offset_ms": f"{(call.start - t0) / 10_000:,.3f}" if call.start is not None else None,
        "duration": f"{(call.end - call.start) / 10:,.1f} µs" if call.end is not None and call.start is not None else None,
        "confidence": f"{call.confidence:.2f}",
        "failed": _subtree_failed(call),
    }


def _op_view(op, trace) -> dict:
    st = op.fields.get("status")
    failed = _is_failure(st)
    stack = [trace.symbolize(op.pid, a) for a in op.stack] if failed and op.stack else []
    return {"kind": op.kind, "target": _op_target(op), "status": _status_text(st), "failed": failed,
            "ts": ticks_to_iso(op.ts), "stack": stack, "thread": op.tid}


def _tree(calls, trace, names: _Names, t0: int) -> tuple[list[dict], int, int]:
    """Client process -> client thread -> root calls (each with operations and nested calls)."""
    roots = [c for c in calls if c.parent is None]
    shown = roots
    if len(roots) > MAX_TREE_CALLS:
        keep = {id(c) for c in [c for c in roots if _subtree_failed(c)][:MAX_TREE_CALLS]}
        for c in roots:
            if len(keep) >= MAX_TREE_CALLS:
                break
            keep.add(id(c))
        shown = [c for c in roots if id(c) in keep]

    def node(call, depth, seen) -> dict:
        seen.add(id(call))
        view = _call_view(call, trace, names, t0)
        view["ops"] = [_op_view(op, trace) for op in call.operations[:MAX_TREE_OPS]]
        view["more_ops"] = max(0, len(call.operations) - MAX_TREE_OPS)
        kids = [c for c in call.children if id(c) not in seen]
        view["children"] = [node(c, depth + 1, seen) for c in kids] if depth < MAX_TREE_DEPTH else []
        view["more_children"] = len(kids) - len(view["children"])
        return view

    procs: dict[Any, dict[Any, list]] = defaultdict(lambda: defaultdict(list))
    for c in shown:
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
    return out, len(shown), len(roots)


_TL_WIDTH = 1000  # viewBox units across a timeline row (about one per pixel on a wide screen)
_TL_MIN_BAR = 3.0


def _timeline(calls, trace, names: _Names) -> dict:
    from rpctrace.render.perfetto import _server_span

    bars: dict[tuple, list] = defaultdict(list)
    spans = []
    chosen = calls
    if len(calls) > MAX_TIMELINE_CALLS:
        failing = [c for c in calls if c.failures]
        chosen = sorted(set(failing[:MAX_TIMELINE_CALLS]) | set(calls[: MAX_TIMELINE_CALLS - min(len(failing), MAX_TIMELINE_CALLS)]),
                        key=lambda c: c.id)
    for call in chosen:
        iname, where = names.what(call)
        failed = _subtree_failed(call)  # for the filter: the call failed somewhere
        common = {"id": call.id, "iface_key": names.iface(call.interface), "pids": _pids(call.client_pid, call.server_pid),
                  "failed": failed, "red": failed}
        if call.client_pid is not None and call.client_tid is not None and call.start is not None:
            end = call.end if call.end is not None else call.start
            spans.append((call.start, end))
            bars[(call.client_pid, call.client_tid)].append(dict(common, begin=call.start, end=end, side="client",
                title=f"call {call.id} (client): {iname} {where} → {names.image(call.server_pid)}"))
        if call.server_pid is not None and call.server_tid is not None:
            begin, end = _server_span(call)
            if begin is not None:
                spans.append((begin, end))
                bars[(call.server_pid, call.server_tid)].append(dict(common, begin=begin, end=end, side="server",
                    red=bool(call.failures),  # red where this thread's own operation failed
                    title=f"call {call.id} (server): {iname} {where} for {names.image(call.client_pid)}"
                          + (" — FAILED operation" if call.failures else "")))
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


def _finding_view(f: dict, names: _Names) -> dict:
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
        "call": f.get("call"),
        "pids": _pids(client.get("pid"), server.get("pid")),
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
        "confidence": f"{f.get('confidence') or 0:.2f}",
    }


_STATIC: dict[str, str] = {}


def _static(name: str) -> str:
    if name not in _STATIC:
        _STATIC[name] = (TEMPLATES / name).read_text(encoding="utf-8")
    return _STATIC[name]


def script_hash(script: str) -> str:
    """The CSP source that allows exactly this inline script (or style sheet)."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy(script: str, css: str) -> str:
    """The page's policy: only this script and this style sheet, nothing fetched (module docstring)."""
    return ("default-src 'none'; " f"script-src {script_hash(script)}; " f"style-src {script_hash(css)}; "
            "img-src 'none'; font-src 'none'; connect-src 'none'; media-src 'none'; object-src 'none'; "
            "frame-src 'none'; worker-src 'none'; manifest-src 'none'; base-uri 'none'; form-action 'none'; "
            "require-trusted-types-for 'script'; trusted-types 'none'")


def _environment():
    from jinja2 import ChainableUndefined, Environment, FileSystemLoader

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, finalize=_finalize,
                      undefined=ChainableUndefined, lstrip_blocks=True)
    return env


def render_report(trace, findings: list[dict] | None = None, calls: list | None = None, *,
                  hives: Iterable[str] = (), sddl_pairs: Iterable[str] = (), title: str | None = None) -> str:
    """The report page for ``trace`` as a string.

    ``findings`` default to :func:`rpctrace.commands.explain.explain` with ``hives`` and
    ``sddl_pairs`` (the ``--hive``/``--sddl`` arguments), ``calls`` to the trace's correlated calls.
    """
    if findings is None:
        from rpctrace.commands.explain import explain

        findings = explain(trace, tuple(hives), tuple(sddl_pairs))
    if calls is None:
        from rpctrace.correlate import correlate

        calls = correlate(trace).calls
    calls = sorted(calls, key=lambda c: c.id)
    by_id = {c.id: c for c in calls}
    names = _Names(trace, calls, findings)
    t0 = trace.events[0].ts if trace.events else min((c.start for c in calls if c.start is not None), default=0)

    # diagrams: the calls the findings blame first, then every other call whose server failed
    order: list = []
    blamed: dict[int, Any] = {}
    for f in findings:
        failure = f.get("failure") or {}
        # the client's call, then the nested calls down to the one whose server failed
        chain = []
        call = by_id.get(failure.get("call")) if failure.get("call") is not None else None
        while call is not None and call not in chain and len(chain) < MAX_TREE_DEPTH:
            chain.append(call)
            if call.id == f.get("call"):
                break
            call = call.parent
        root = by_id.get(f.get("call")) if f.get("call") is not None else None
        if root is not None and root not in chain:
            chain.append(root)
        for call in reversed(chain):
            if call not in order:
                order.append(call)
    finding_calls = {c.id for c in order}
    order.extend(c for c in calls if c.failures and c.id not in finding_calls)
    diagrams = []
    for call in order[:MAX_DIAGRAMS]:
        fails = call.failures
        blame = first_failure(call)
        blamed[call.id] = blame.op if blame is not None and blame.call is call else (fails[0] if fails else None)
        iname, where = names.what(call)
        first = blamed[call.id]
        diagrams.append({
            "id": call.id,
            "open": call.id in finding_calls,
            "finding": call.id in finding_calls,
            "iface": iname,
            "where": where,
            "iface_key": names.iface(call.interface),
            "pids": _pids(call.client_pid, call.server_pid),
            "client": names.image(call.client_pid),
            "server": names.image(call.server_pid) + (f" ({svc})" if (svc := names.service(call.server_pid, call.interface)) else ""),
            "first": f"{first.kind} {_op_target(first)} → {_status_text(first.fields.get('status'))}" if first is not None
            else f"in nested call {blame.call.id}: {blame.op.kind} {_op_target(blame.op)} → "
                 f"{_status_text(blame.op.fields.get('status'))}" if blame is not None else None,
            "svg": Markup(sequence_svg(call, trace, names, blamed[call.id])),
        })

    tree, tree_shown, tree_total = _tree(calls, trace, names, t0)
    timeline = _timeline(calls, trace, names)
    processes = sorted(names.pids, key=lambda p: (names.image(p).lower(), p))
    script = _static("report.js")
    css = _static("report.css")
    sources = [str(s.get("path")) for s in trace.sources if s.get("path") is not None]
    if title is None:
        title = "rpctrace report" + (f": {os.path.basename(sources[0])}" if sources else "")
        if len(sources) > 1:
            title += f" (+{len(sources) - 1} more)"
    failing_calls = sum(1 for c in calls if c.failures)
    losses = []
    from rpctrace.sources import losses as lost_counts

    for info in trace.sources:
        events_lost, buffers_lost = lost_counts(info)
        if events_lost or buffers_lost or info.get("damage"):
            losses.append(f"{info.get('path')}: the logger lost {events_lost} events and "
                          f"{buffers_lost} buffers; {len(info.get('damage') or [])} damaged region(s) skipped")
    if getattr(trace, "error", None) is not None:
        losses.append(f"reading stopped early: {trace.error.one_line()}")
    env = _environment()
    page = env.get_template("report.html.j2").render(
        csp=content_security_policy(script, css),
        script=Markup(script),
        css=Markup(css),
        title=title,
        version=__version__,
        sources=sources,
        losses=losses,
        trace_start=ticks_to_iso(trace.events[0].ts) if trace.events else None,
        trace_end=ticks_to_iso(trace.events[-1].ts) if trace.events else None,
        event_count=len(trace.events),
        call_count=len(calls),
        failing_calls=failing_calls,
        process_count=len(names.pids),
        findings=[_finding_view(f, names) for f in findings],
        diagrams=diagrams,
        diagram_ids={d["id"] for d in diagrams},
        more_diagrams=max(0, len(order) - MAX_DIAGRAMS),
        tree=tree,
        tree_shown=tree_shown,
        tree_total=tree_total,
        timeline=timeline,
        processes=[{"pid": p, "label": names.process_label(p)} for p in processes],
        ifaces=[{"key": k, "label": names.iface_label(u)} for u, k in
                sorted(names.iface_keys.items(), key=lambda kv: names.iface_label(kv[0]).lower())],
    )
    return page


def write_report(trace, path: str | os.PathLike, **kwargs) -> int:
    """Render and write the page atomically; returns its size in bytes."""
    page = render_report(trace, **kwargs)
    data = page.encode("utf-8")
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return len(data)


__all__ = ["render_report", "write_report", "sequence_svg", "content_security_policy", "script_hash", "defang"]
