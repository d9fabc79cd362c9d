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
from pathlib import Path
from typing import TYPE_CHECKING

from markupsafe import Markup

from rpctrace import __version__
from rpctrace.explain.rootcause import first_failure
from rpctrace.model import ticks_to_iso
from rpctrace.render.report.facts import Names, op_target, pids_text, status_text
from rpctrace.render.report.safe import _finalize, defang
from rpctrace.render.report.svg import sequence_svg
from rpctrace.render.report.views import (
    MAX_BRIEF_CALLS,
    MAX_TREE_CALLS,
    MAX_TREE_DEPTH,
    call_tree,
    finding_view,
    timeline,
)

if TYPE_CHECKING:
    from rpctrace.correlate.calls import Call
    from rpctrace.schema import Finding

TEMPLATES = Path(__file__).parent.parent / "templates"

#: bounds, so a trace with a million calls still gives a page a browser opens
MAX_DIAGRAMS = 30

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


def _diagram_order(findings: list[Finding], calls: list, by_id: dict, memo) -> tuple[list, set]:
    """The calls to draw: those the findings blame first (the client's call, then the nested calls
    down to the one whose server failed), then every other call whose server failed."""
    order: list = []
    for f in findings:
        failure = f.get("failure") or {}
        chain: list[Call] = []
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
    order.extend(c for c in calls if memo.blamed(c) and c.id not in finding_calls)
    return order, finding_calls


def _diagram(call, trace, names: Names, finding_calls: set) -> dict:
    fails = names.memo.blamed(call)
    blame = first_failure(call)
    first = blame.op if blame is not None and blame.call is call else (fails[0] if fails else None)
    iname, where = names.what(call)
    svc = names.service(call.server_pid, call.interface)
    if first is not None:
        first_text = f"{first.kind} {op_target(first)} → {status_text(first.fields.get('status'))}"
    elif blame is not None:
        first_text = (f"in nested call {blame.call.id}: {blame.op.kind} {op_target(blame.op)} → "
                      f"{status_text(blame.op.fields.get('status'))}")
    else:
        first_text = None
    return {
        "id": call.id,
        "open": call.id in finding_calls,
        "finding": call.id in finding_calls,
        "iface": iname,
        "where": where,
        "iface_key": names.iface(call.interface),
        "pids": pids_text(call.client_pid, call.server_pid),
        "client": names.image(call.client_pid),
        "server": names.image(call.server_pid) + (f" ({svc})" if svc else ""),
        "first": first_text,
        "svg": Markup(sequence_svg(call, trace, names, first)),
    }


def _time_range(trace, calls) -> tuple[int, int] | None:
    if trace.events:
        return trace.events[0].ts, trace.events[-1].ts
    if getattr(trace, "time_range", None):
        return trace.time_range
    times = [t for c in calls for t in (c.start, c.end) if t is not None]
    return (min(times), max(times)) if times else None


def render_report(trace, findings: list[Finding], calls: list, *, title: str | None = None,
                  total_calls: int | None = None, scope: str | None = None, commands: dict | None = None,
                  limits: list[str] | None = None, losses: list[str] | None = None,
                  tree_limit: int = MAX_TREE_CALLS, brief_limit: int = MAX_BRIEF_CALLS) -> str:
    """The report page as a string.  Nothing is computed here: ``findings`` and ``calls`` come
    from the pipeline (:func:`rpctrace.pipeline.report`).

    ``calls`` are the calls the page is about; ``total_calls`` how many the trace has (when the
    page is about some of them, ``scope`` says which: the filters as typed); ``commands`` the
    command lines the page offers for seeing what it leaves out (``calls_failed``, ``report_call``);
    ``losses`` what the readers lost, skipped or stopped at, and ``limits`` what the inputs could
    not show (both a banner: never a silent "all fine")."""
    calls = sorted(calls, key=lambda c: c.id)
    by_id = {c.id: c for c in calls}
    names = Names(trace, calls, findings)
    span = _time_range(trace, calls)
    t0 = span[0] if span else 0
    order, finding_calls = _diagram_order(findings, calls, by_id, names.memo)
    diagrams = [_diagram(call, trace, names, finding_calls) for call in order[:MAX_DIAGRAMS]]
    tree = call_tree(calls, trace, names, t0, limit=tree_limit, brief_limit=brief_limit)
    tl = timeline(calls, trace, names)
    processes = sorted(names.pids, key=lambda p: (names.image(p).lower(), p))
    script = _static("report.js")
    css = _static("report.css")
    sources = [str(s.get("path")) for s in trace.sources if s.get("path") is not None]
    if title is None:
        title = "rpctrace report" + (f": {os.path.basename(sources[0])}" if sources else "")
        if len(sources) > 1:
            title += f" (+{len(sources) - 1} more)"
    losses = list(losses or ())  # what the readers lost or skipped (the pipeline's source_warnings)
    losses.extend(limits or ())  # what the inputs could not show: a banner, never a silent "all fine"
    records = trace.records if getattr(trace, "records", None) is not None else len(trace.events)
    commands = dict(commands or {})
    commands.setdefault("calls_failed", "rpctrace calls FILE --failed")
    commands.setdefault("report_call", "rpctrace report FILE --call ID -o call.html")
    env = _environment()
    return env.get_template("report.html.j2").render(
        csp=content_security_policy(script, css),
        script=Markup(script),
        css=Markup(css),
        title=title,
        version=__version__,
        sources=sources,
        losses=losses,
        trace_start=ticks_to_iso(span[0]) if span else None,
        trace_end=ticks_to_iso(span[1]) if span else None,
        event_count=records,
        call_count=len(calls),
        total_calls=total_calls if total_calls is not None else len(calls),
        scope=scope,
        nested_calls=sum(1 for c in calls if c.parent is not None),
        failing_calls=sum(1 for c in calls if names.memo.blamed(c)),
        expected_only=sum(1 for c in calls if c.expected_only),
        process_count=len(names.pids),
        findings=[finding_view(f, names) for f in findings],
        diagrams=diagrams,
        diagram_ids={d["id"] for d in diagrams},
        more_diagrams=max(0, len(order) - MAX_DIAGRAMS),
        tree=tree,
        timeline=tl,
        commands=commands,
        processes=[{"pid": p, "label": names.process_label(p)} for p in processes],
        ifaces=[{"key": k, "label": names.iface_label(u)} for u, k in
                sorted(names.iface_keys.items(), key=lambda kv: names.iface_label(kv[0]).lower())],
    )


def write_report(trace, path: str | os.PathLike, **kwargs) -> int:
    """Render and write the page (whole or not at all); returns its size in bytes."""
    from rpctrace.render.files import open_output

    data = render_report(trace, **kwargs).encode("utf-8")
    with open_output(path, binary=True) as fh:
        fh.write(data)
    return len(data)


__all__ = ["render_report", "write_report", "sequence_svg", "content_security_policy", "script_hash", "defang"]
