"""The HTML report: structure, escaping of hostile trace strings, and rendering in a real browser.

The browser tests run Debian's Chromium headless (the CI set-up installs it with
``apt-get install -y chromium``); where it is missing they skip and say so.  They run it the way
a person would (``--screenshot``, ``--dump-dom``) and once more over the DevTools protocol on a
pipe (``--remote-debugging-pipe``: no port, no extra package) to ask the laid-out page what is
visible, to drive the filters, and to see any dialog (``alert``) or policy violation.
"""

from __future__ import annotations

import base64
import contextlib
import io
import hashlib
import html
import json
import os
import re
import select
import shutil
import struct
import subprocess
import time
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rpctrace import synth
from rpctrace.cli import main
from rpctrace.pipeline import findings as _findings
from rpctrace.correlate import correlate
from rpctrace.explain import article
from rpctrace.explain.acl_sources import AclSources
from rpctrace.explain.findings import build_findings
from rpctrace.render.report import content_security_policy, render_report, write_report
from rpctrace.trace import load



def explain(trace, hives=(), sddl_pairs=()):
    """The findings `rpctrace explain` prints for a loaded trace."""
    return _findings(trace, None, hives, sddl_pairs)

SDDL = [f"{article.AUDIO_RENDER_KEY_PATH}={article.AUDIO_RENDER_KEY_SDDL}",
        f"{article.AUDIO_RENDER_PARENT_PATH}={article.AUDIO_RENDER_PARENT_SDDL}"]

# what a compromised machine could put in names, command lines, registry paths and endpoints
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
STYLE = "</style>"
JINJA = "{{ 7*7 }}"
TEMPLATE = "${alert(document.domain)}"
PAYLOAD = SCRIPT + IMG + STYLE + JINJA + TEMPLATE
BAD_IMAGE = f"rund{SCRIPT}ll32\u202e{IMG}.exe"
BAD_CMDLINE = f"rundll32.exe {PAYLOAD}"
BAD_PATH = article.AUDIO_RENDER_KEY_PATH + "\\" + PAYLOAD
BAD_ENDPOINT = "AudioClientRpc" + PAYLOAD
BAD_MODULE = f"{IMG}{SCRIPT}"


# --- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def etl(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    path, truth = d / "audiosrv.etl", d / "audiosrv.truth.json"
    synth.synthesize("audiosrv-access-denied", path, truth, seed=3)
    return path


@pytest.fixture(scope="module")
def audiosrv(etl, tmp_path_factory):
    trace = load([etl])
    findings = explain(trace, (), SDDL)
    calls = correlate(trace).calls
    out = tmp_path_factory.mktemp("audiosrv-report") / "audiosrv.html"
    write_report(trace, out, findings=findings, calls=calls)
    failing = next(c for c in calls if c.id == findings[0]["call"])
    return {"path": out, "html": out.read_text(encoding="utf-8"), "findings": findings, "calls": calls,
            "call": failing, "trace": trace}


def hostile_trace(etl):
    """The AudioSrv trace with attacker-chosen strings where a trace carries strings."""
    trace = load([etl])
    client = next(p for p in trace.processes.values() if p.image == "rundll32.exe")
    client.image = BAD_IMAGE
    client.command_line = BAD_CMDLINE
    server = next(p for p in trace.processes.values() if p.command_line and "LocalServiceNetworkRestricted" in p.command_line)
    server.command_line = f"C:\\WINDOWS\\system32\\svchost.exe -k LocalServiceNetworkRestricted {IMG} -p {STYLE}"
    hits = {"path": 0, "endpoint": 0, "port": 0}
    for ev in trace.events:
        f = ev.fields
        if f.get("path") == article.AUDIO_RENDER_KEY_PATH:
            f["path"] = f["key_name"] = BAD_PATH
            hits["path"] += 1
        if f.get("endpoint") == "AudioClientRpc":
            f["endpoint"] = BAD_ENDPOINT
            hits["endpoint"] += 1
        if f.get("port_name") == "\\RPC Control\\AudioClientRpc":
            f["port_name"] = "\\RPC Control\\" + BAD_ENDPOINT
            hits["port"] += 1
    for img in trace.images.get(server.pid, []):
        if img.module.lower() == "audiosrv":
            img.file_name = f"C:\\Windows\\System32\\{BAD_MODULE}.dll"
            hits["module"] = 1
    assert all(hits.values()), hits
    return trace


@pytest.fixture(scope="module")
def hostile(etl, tmp_path_factory):
    trace = hostile_trace(etl)
    correlation = correlate(trace)
    # the ACL comes from SDDL keyed by the hostile path (a --sddl argument cannot hold '='), so
    # the verdict, the fix text and the PowerShell all carry the payload too
    acls = AclSources(sddl={BAD_PATH: article.AUDIO_RENDER_KEY_SDDL,
                            article.AUDIO_RENDER_KEY_PATH: article.AUDIO_RENDER_PARENT_SDDL})
    findings = build_findings(trace, correlation, acls)
    assert findings and findings[0]["fix"] and PAYLOAD in findings[0]["fix"]["powershell"]
    assert BAD_IMAGE in findings[0]["summary"] and BAD_PATH in findings[0]["summary"]
    out = tmp_path_factory.mktemp("hostile-report") / "hostile.html"
    write_report(trace, out, findings=findings, calls=correlation.calls)
    return {"path": out, "html": out.read_text(encoding="utf-8"), "findings": findings}


class Page(HTMLParser):
    """Every start tag with its attributes, and the text, as a browser's parser sees them."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.script_text: list[str] = []
        self.style_text: list[str] = []
        self._in = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: (v or "") for k, v in attrs}))
        self._in = tag if tag in ("script", "style") else None

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, {k: (v or "") for k, v in attrs}))

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._in = None

    def handle_data(self, data):
        {"script": self.script_text, "style": self.style_text}.get(self._in, self.text).append(data)

    def find(self, tag, **attrs):
        return [a for t, a in self.tags if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())]

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def _section(page_html: str, section_id: str) -> str:
    m = re.search(rf'<section id="{section_id}">(.*?)</section>', page_html, re.S)
    assert m, section_id
    return m.group(1)


def _svg_text(svg: str) -> str:
    return html.unescape("".join(re.findall(r"<text[^>]*>([^<]*)</text>", svg)))


# --- (a) structure ------------------------------------------------------------------------------

URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "data", "poster", "srcset", "background",
             "cite", "longdesc", "ping", "manifest", "codebase"}


def test_self_contained_no_references_to_other_hosts(audiosrv):
    text = audiosrv["html"]
    page = Page(text)
    # the only absolute URL is the SVG namespace name, which is never fetched
    assert set(re.findall(r"(?i)\b(?:https?|ftp|wss?|file|data|javascript):[^\s\"'<>)]*", text)) <= {"http://www.w3.org/2000/svg"}
    assert not re.search(r"(?i)(?:\burl\s*\(|@import|\bsrc\s*=|<link\b|<iframe\b|<object\b|<embed\b|<img\b)", text)
    assert "\\\\" not in "".join(v for _, a in page.tags for k, v in a.items() if k in URL_ATTRS)
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            if name in URL_ATTRS:
                assert value.startswith("#"), (tag, name, value)  # in-page links only
            assert not name.startswith("on"), (tag, name)  # no inline event handlers
    assert [t for t, _ in page.tags].count("script") == 1
    assert page.find("script")[0] == {}  # inline, no src


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def test_content_security_policy_allows_only_our_script_and_style(audiosrv):
    text = audiosrv["html"]
    page = Page(text)
    metas = [a for a in page.find("meta") if a.get("http-equiv", "").lower() == "content-security-policy"]
    assert len(metas) == 1
    csp = metas[0]["content"]
    # before anything that could be injected: right after the charset, first in <head>
    assert text.index("Content-Security-Policy") < text.index("<title>") < text.index("<body>")
    script, css = "".join(page.script_text), "".join(page.style_text)
    assert f"script-src 'sha256-{_sha256(script)}';" in csp and f"style-src 'sha256-{_sha256(css)}';" in csp
    assert csp == content_security_policy(script, css)
    for directive in ("default-src 'none'", "base-uri 'none'", "form-action 'none'", "img-src 'none'",
                      "require-trusted-types-for 'script'", "trusted-types 'none'"):
        assert directive in csp
    assert "unsafe" not in csp and "nonce" not in csp
    # so the page may not use style attributes (the policy would refuse them): it has none
    assert [t for t, _ in page.tags].count("style") == 1
    assert not [(t, a) for t, a in page.tags if "style" in a]
    assert "innerHTML" not in script.replace("never innerHTML", "") and "eval(" not in script


def test_findings_come_first_with_the_chain_verdict_and_fix(audiosrv):
    text = audiosrv["html"]
    f = audiosrv["findings"][0]
    order = [text.index(f'<section id="{s}">') for s in ("findings", "diagrams", "tree", "timeline")]
    assert order == sorted(order)
    findings = Page(_section(text, "findings")).all_text
    assert f["summary"] in findings
    for words in ("Who called", "Who answered", "What was called", "What failed", "Running as", "Why", "Fix",
                  "rundll32.exe", "svchost.exe", "Audiosrv", "PolicyConfigSetDefaultEndpoint", "STATUS_ACCESS_DENIED",
                  f["acl"]["verdict"], f["fix"]["text"], "SetAccessRuleProtection", f["fix"]["sddl_after"]):
        assert words in findings, words
    for step in f["chain"]:
        assert step in findings
    assert all(frame in findings for frame in f["failure"]["stack"])


def test_sequence_diagram_of_the_failing_call(audiosrv):
    call, f = audiosrv["call"], audiosrv["findings"][0]
    diagrams = _section(audiosrv["html"], "diagrams")
    m = re.search(rf'<details class="diagram fc" id="seq-{call.id}"[^>]*open>.*?(<svg .*?</svg>)', diagrams, re.S)
    assert m, "the finding's call has an open diagram"
    svg = m.group(1)
    assert 'xmlns="http://www.w3.org/2000/svg"' in svg
    words = _svg_text(svg)
    for needed in ("client thread", "server worker thread", "ALPC port", "rundll32.exe", "svchost.exe (Audiosrv)",
                   f"pid {call.client_pid} · thread {call.client_tid}", f"pid {call.server_pid} · thread {call.server_tid}",
                   "RPC call starts", f"ALPC request · message {call.alpc_message_id}",
                   f"worker takes message {call.alpc_message_id}", "RPC dispatch starts (opnum 71)",
                   "FAILED registry.open → 0xC0000022 STATUS_ACCESS_DENIED", f["failure"]["path"],
                   f"ALPC reply · message {call.alpc_message_id}", "RPC call completes", "stack of the failing registry.open"):
        assert needed in words, needed
    # the stack is listed in the diagram (frames are shortened only when long)
    for frame in f["failure"]["stack"]:
        assert frame in words
    # the failing operation is drawn in red, the others are not
    assert svg.count('fill="#c62828"') >= 2
    # rows in time order: request before the worker takes it, the failure before the reply
    assert words.index("ALPC request") < words.index("worker takes") < words.index("FAILED") < words.index("ALPC reply")


def test_call_tree_and_timeline(audiosrv):
    call = audiosrv["call"]
    tree = _section(audiosrv["html"], "tree")
    m = re.search(rf'<li class="call fc tc failed" id="call-{call.id}" data-pids="{call.client_pid} {call.server_pid}"'
                  rf' data-iface="i\d+" data-failed="1">(.*?)</li>\s*</ul>', tree, re.S)
    assert m
    node = Page(m.group(1)).all_text
    assert "PolicyConfigSetDefaultEndpoint" in node and "registry.open" in node and "registry.query_value" in node
    assert "STATUS_ACCESS_DENIED" in node and article.AUDIO_RENDER_KEY_PATH in node
    assert tree.count('class="call fc tc') == len(audiosrv["calls"])  # every call is in the tree
    assert f"thread {call.client_tid}" in Page(tree).all_text
    timeline = _section(audiosrv["html"], "timeline")
    bars = re.findall(r'<a class="bar fc (client|server)( failed)?" href="#call-(\d+)"[^>]*><title>[^<]*</title>'
                      r'<rect x="([\d.]+)" y="1" width="([\d.]+)" height="10"/></a>', timeline)
    assert {int(b[2]) for b in bars} == {c.id for c in audiosrv["calls"]}
    mine = [b for b in bars if int(b[2]) == call.id]
    assert {b[0] for b in mine} == {"client", "server"} and all(b[1] for b in mine)
    assert all(0 <= float(b[3]) and 3 <= float(b[4]) and float(b[3]) + float(b[4]) <= 1000.01 for b in bars)
    assert 'viewBox="0 0 1000 12"' in timeline
    rows = Page(timeline).all_text
    assert f"rundll32.exe · pid {call.client_pid}" in rows and f"svchost.exe (Audiosrv) · pid {call.server_pid}" in rows


def test_filter_controls(audiosrv):
    page = Page(audiosrv["html"])
    procs = {a["value"] for a in page.find("option")}
    assert str(audiosrv["call"].client_pid) in procs and "" in procs
    assert page.find("select", id="f-proc") and page.find("select", id="f-iface")
    assert page.find("input", id="f-failed", type="checkbox")
    # every filterable element says which processes and interface it concerns
    for _tag, attrs in page.tags:
        if "fc" in attrs.get("class", "").split():
            assert re.fullmatch(r"(\d+( \d+)*)?", attrs["data-pids"]) and re.fullmatch(r"i\d+", attrs["data-iface"])
            assert attrs["data-failed"] in ("0", "1")


def test_deterministic_and_cli(audiosrv, etl, tmp_path, capsys):
    again = render_report(audiosrv["trace"], audiosrv["findings"], audiosrv["calls"])
    assert again == audiosrv["html"]
    out = tmp_path / "cli.html"
    args = ["report", str(etl), "-o", str(out)]
    for pair in SDDL:
        args += ["--sddl", pair]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().err
    text = out.read_text(encoding="utf-8")
    assert audiosrv["findings"][0]["summary"] in html.unescape(text)
    assert "re-enable inheritance" in text
    # without --sddl the finding asks for the key's ACL instead of giving a verdict
    assert main(["report", str(etl), "-o", str(out)]) == 0
    assert "--hive SOFTWARE" in out.read_text(encoding="utf-8")  # the key is under HKLM\\SOFTWARE


def test_report_of_a_trace_without_calls(tmp_path):
    from rpctrace.trace.model import Trace

    page = render_report(Trace([]), [], [])
    assert "No failure to blame" in page and "No call has a known start and end" in page


# --- (b) hostile strings ------------------------------------------------------------------------

ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "h4", "p", "span", "b",
                "nav", "label", "select", "option", "input", "button", "a", "main", "section", "article", "dl", "dt",
                "dd", "div", "table", "thead", "tbody", "tr", "th", "td", "details", "summary", "code", "pre", "ol",
                "ul", "li", "svg", "g", "text", "rect", "line", "path", "polygon", "circle", "footer", "script"}


def test_hostile_strings_are_text(hostile):
    text = hostile["html"]
    for raw in (SCRIPT, IMG, "<img", "onerror=alert(1)>", '"><img', "alert(1)</script>"):
        assert raw not in text, raw
    assert text.count(STYLE) == 1  # our own
    assert text.count("<script") == 1
    page = Page(text)
    assert {t for t, _ in page.tags} <= ALLOWED_TAGS
    assert not page.find("img")
    for tag, attrs in page.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        for name, value in attrs.items():
            if name in URL_ATTRS:
                assert value.startswith("#"), (tag, name, value)
    # ... and shown as the text it is: in the findings, the diagram, the tree, the filters
    shown = page.all_text
    for needed in (PAYLOAD, BAD_PATH, BAD_ENDPOINT, BAD_CMDLINE, "rund" + SCRIPT + "ll32\\u202e" + IMG + ".exe"):
        assert needed in shown, needed
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in text
    assert STYLE + JINJA + TEMPLATE in shown and STYLE + "49" not in shown  # not evaluated by the template engine
    assert TEMPLATE in shown
    # the invisible right-to-left override is shown as \u202e, never raw (it would reorder the line)
    assert "\u202e" not in text
    diagrams = _section(text, "diagrams")
    assert BAD_PATH in _svg_text(diagrams) and BAD_ENDPOINT[:17] in _svg_text(diagrams)
    assert "\\RPC Control\\" + BAD_ENDPOINT in html.unescape(diagrams)  # the port, in the lifeline's tooltip
    assert BAD_IMAGE.replace("\u202e", "\\u202e") in shown
    powershell = Page(re.search(r"<pre>.*?</pre>", text, re.S).group(0)).all_text
    assert BAD_PATH.replace("HKLM\\", "HKLM:\\") in powershell


def test_defang_bounds_and_controls():
    from rpctrace.render.report import defang

    assert defang("a\u202eb\x00c\u200bd\ud800") == "a\\u202eb\\u0000c\\u200bd\\ud800"
    assert defang("tab\tnew\nline") == "tab\tnew\nline"
    long = defang("x" * 10_000)
    assert len(long) < 4100 and long.endswith("(6000 more characters)")


# --- (c) in a browser ---------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,2400"]


@pytest.fixture(scope="module")
def chromium():
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("chromium not installed: apt-get install chromium (the CI set-up does)")


def _run_chromium(chromium, profile: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _dump_dom(chromium, tmp_path: Path, page: Path) -> str:
    done = _run_chromium(chromium, tmp_path / "profile-dom", "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode("utf-8")


def _png_facts(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the filtered scanlines) of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    pixels = zlib.decompress(idat)
    return width, height, len(set(pixels[: 1 << 20]))


class DevTools:
    """Chromium's DevTools protocol over --remote-debugging-pipe (fd 3: commands in, fd 4: out)."""

    def __init__(self, chromium: str, profile: Path):
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()

        def wire():  # in the child, before exec: the pipes become fds 3 and 4
            os.dup2(cmd_r, 3)
            os.dup2(out_w, 4)

        self.proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                      "--remote-debugging-pipe", "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=wire, pass_fds=(3, 4))
        os.close(cmd_r)
        os.close(out_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def send(self, method: str, session: str | None = None, timeout: float = 20, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._id:
                assert "error" not in reply, (method, reply["error"])
                return reply.get("result", {})

    def wait_event(self, method: str, timeout: float = 20) -> dict:
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        while True:
            msg = self._read(timeout)
            if msg.get("method") == method:
                return msg

    def _read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._out_r], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._out_r, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        msg = json.loads(raw)
        if "method" in msg:
            self.events.append(msg)
            if msg["method"] == "Page.javascriptDialogOpening":  # never block on an alert()
                os.write(self._cmd_w, json.dumps({"id": 0, "method": "Page.handleJavaScriptDialog",
                                                  "sessionId": msg.get("sessionId"),
                                                  "params": {"accept": True}}).encode() + b"\0")
        return msg

    def open(self, url: str) -> str:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session)
        self.send("Page.navigate", session, url=url)
        self.wait_event("Page.loadEventFired")
        return session

    def evaluate(self, session: str, expression: str):
        result = self.send("Runtime.evaluate", session, expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except (TimeoutError, EOFError, OSError, AssertionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._out_r)


VISIBLE_JS = """
(() => {
  const vis = (sel) => {
    const el = document.querySelector(sel);
    if (!el) return null;
    const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return {w: r.width, h: r.height, top: r.top + scrollY,
            shown: el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true}) && r.width > 0 && r.height > 0
                   && s.display !== 'none' && s.visibility !== 'hidden' && !el.closest('[hidden]'),
            text: el.textContent.slice(0, 4000)};
  };
  return {
    title: document.title, ready: document.documentElement.dataset.filters || null,
    status: document.getElementById('f-status').textContent,
    summary: vis('#findings .finding .summary'), diagram: vis('#seq-CALL svg.seq'),
    failing: vis('#seq-CALL svg.seq rect[fill="#fdecea"]'), tree: vis('#call-CALL'),
    bar: vis('#timeline a.bar.failed[href="#call-CALL"]'), filters: vis('nav.bar'),
    images: document.images.length, scripts: document.scripts.length,
    handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
  };
})()
"""


def _visible_in_browser(chromium, tmp_path, page: Path, call_id: int, filters: bool = False) -> tuple[dict, list]:
    tools = DevTools(chromium, tmp_path / "profile-cdp")
    try:
        session = tools.open(page.as_uri())
        facts = tools.evaluate(session, VISIBLE_JS.replace("CALL", str(call_id)))
        if filters:
            facts["filtered"] = tools.evaluate(session, FILTER_JS.replace("CALL", str(call_id)))
        return facts, tools.events
    finally:
        tools.close()


FILTER_JS = """
(() => {
  const pick = (id, value) => { const el = document.getElementById(id); el.value = value; el.dispatchEvent(new Event('change')); };
  const hidden = (sel) => [...document.querySelectorAll(sel)].filter(e => e.closest('[hidden]')).length;
  const total = (sel) => document.querySelectorAll(sel).length;
  const mine = document.getElementById('call-CALL');
  const out = {};
  pick('f-proc', mine.dataset.pids.split(' ')[0]);
  out.byProcess = {status: document.getElementById('f-status').textContent, mineHidden: !!mine.closest('[hidden]'),
                   hiddenCalls: hidden('li.tc'), calls: total('li.tc'), hiddenBars: hidden('a.bar')};
  pick('f-proc', '');
  pick('f-iface', mine.dataset.iface);
  out.byInterface = {status: document.getElementById('f-status').textContent, mineHidden: !!mine.closest('[hidden]'),
                     hiddenCalls: hidden('li.tc')};
  pick('f-iface', '');
  document.getElementById('f-failed').click();
  out.failedOnly = {status: document.getElementById('f-status').textContent, hiddenCalls: hidden('li.tc'),
                    hiddenFailed: hidden('li.tc.failed')};
  document.getElementById('f-reset').click();
  out.reset = {status: document.getElementById('f-status').textContent, hiddenCalls: hidden('li.tc')};
  return out;
})()
"""


def _problems(events: list) -> list:
    """Dialogs, uncaught exceptions, and errors the browser logged (policy violations among them)."""
    bad = []
    for ev in events:
        method, params = ev.get("method"), ev.get("params", {})
        if method in ("Page.javascriptDialogOpening", "Runtime.exceptionThrown"):
            bad.append(ev)
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            bad.append(ev)
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            bad.append(ev)
    return bad


def test_browser_renders_the_audiosrv_report(audiosrv, chromium, tmp_path):
    page, call = audiosrv["path"], audiosrv["call"]
    # 1. a screenshot, as a person would take it
    png = tmp_path / "audiosrv.png"
    done = _run_chromium(chromium, tmp_path / "profile-shot", f"--screenshot={png}", page.as_uri())
    assert done.returncode == 0 and png.exists(), done.stderr.decode(errors="replace")[-2000:]
    data = png.read_bytes()
    width, height, distinct = _png_facts(data)
    assert (width, height) == (1400, 2400)
    assert len(data) > 60_000 and distinct > 40  # text, tables and a diagram, not an empty page
    if os.environ.get("RPCTRACE_REPORT_SCREENSHOT"):
        shutil.copyfile(png, os.environ["RPCTRACE_REPORT_SCREENSHOT"])
    # 2. the DOM after the page's script ran
    dom = _dump_dom(chromium, tmp_path, page)
    assert 'data-filters="ready"' in dom.split(">", 2)[1]  # our script ran: the policy's hash matches it
    assert f"showing all {len(audiosrv['calls'])} calls" in dom
    dom_page = Page(dom)
    assert audiosrv["findings"][0]["summary"] in dom_page.all_text
    for sel in ('id="findings"', f'id="seq-{call.id}"', f'id="call-{call.id}"', 'id="timeline"'):
        start = dom.index(sel)
        tag = dom[dom.rindex("<", 0, start): dom.index(">", start)]
        assert " hidden" not in tag, tag
    assert dom.count("<svg") >= 1 and "<img" not in dom
    # 3. what the laid-out page shows, and that the filters work
    facts, events = _visible_in_browser(chromium, tmp_path, page, call.id, filters=True)
    assert not _problems(events), _problems(events)
    assert facts["ready"] == "ready" and facts["images"] == 0 and facts["scripts"] == 1 and facts["handlers"] == 0
    for part in ("summary", "diagram", "failing", "tree", "bar", "filters"):
        assert facts[part] and facts[part]["shown"], (part, facts[part])
    assert audiosrv["findings"][0]["summary"] in facts["summary"]["text"]
    assert facts["summary"]["top"] < facts["diagram"]["top"] < facts["tree"]["top"]  # findings first
    assert facts["diagram"]["top"] < 2400  # the finding and its diagram are on the first screen
    assert f"message {call.alpc_message_id}" in facts["diagram"]["text"]
    f = facts["filtered"]
    assert not f["byProcess"]["mineHidden"] and 0 < f["byProcess"]["hiddenCalls"] < f["byProcess"]["calls"]
    assert f["byProcess"]["hiddenBars"] > 0 and f["byProcess"]["status"].startswith("showing ")
    assert not f["byInterface"]["mineHidden"] and f["byInterface"]["hiddenCalls"] > 0
    assert f["failedOnly"]["hiddenCalls"] > 0 and f["failedOnly"]["hiddenFailed"] == 0
    assert f["reset"]["hiddenCalls"] == 0 and f["reset"]["status"].startswith("showing all")


def test_browser_runs_nothing_from_a_hostile_trace(hostile, chromium, tmp_path):
    page = hostile["path"]
    dom = _dump_dom(chromium, tmp_path, page)
    dom_page = Page(dom)
    tags = [t for t, _ in dom_page.tags]
    assert "img" not in tags and tags.count("script") == 1
    assert set(tags) <= ALLOWED_TAGS | {"tbody"}
    assert not any(name.startswith("on") for _, a in dom_page.tags for name in a)
    assert PAYLOAD in dom_page.all_text and 'data-filters="ready"' in dom.split(">", 2)[1]
    call_id = hostile["findings"][0]["call"]
    facts, events = _visible_in_browser(chromium, tmp_path, page, call_id)
    assert not [e for e in events if e.get("method") == "Page.javascriptDialogOpening"], "alert() ran"
    assert not _problems(events), _problems(events)
    assert facts["images"] == 0 and facts["scripts"] == 1 and facts["handlers"] == 0
    assert facts["title"] == "rpctrace report: audiosrv.etl"  # unchanged by anything on the page
    assert facts["ready"] == "ready"
    assert PAYLOAD in facts["summary"]["text"] and facts["summary"]["shown"] and facts["diagram"]["shown"]


def test_policy_stops_scripts_even_if_escaping_failed(audiosrv, chromium, tmp_path):
    """The second line of defence: markup smuggled into the page (as an escaping bug would let
    through) neither runs nor loads anything.  A page without the policy is the control: there the
    same markup does run, so the dialog watch is not blind."""
    smuggled = ('<script>alert(1)</script><img src=x onerror=alert(2)><svg><script>alert(3)</script></svg>'
                '<style>body { display: none }</style><b style="display: none">x</b>')
    control = tmp_path / "control.html"
    control.write_text(f"<!DOCTYPE html><title>control</title><body>{smuggled}</body>", encoding="utf-8")
    injected = tmp_path / "injected.html"
    page = audiosrv["html"].replace('<p class="summary">', f'<p class="summary">{smuggled}', 1)
    assert page != audiosrv["html"]
    injected.write_text(page, encoding="utf-8")
    tools = DevTools(chromium, tmp_path / "profile-policy")
    try:
        tools.open(control.as_uri())
        assert any(e.get("method") == "Page.javascriptDialogOpening" for e in tools.events)
        tools.events.clear()
        session = tools.open(injected.as_uri())
        ready = tools.evaluate(session, "document.documentElement.dataset.filters || null")
        shown = tools.evaluate(session, "document.querySelector('.summary').checkVisibility()"
                                        " && getComputedStyle(document.body).display !== 'none'")
        events = list(tools.events)
    finally:
        tools.close()
    assert not [e for e in events if e.get("method") == "Page.javascriptDialogOpening"], "smuggled script ran"
    refused = [e["params"]["entry"]["text"] for e in events
               if e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("source") == "security"]
    assert any("inline script" in t for t in refused) and any("event handler" in t for t in refused)
    assert any("img-src" in t for t in refused)
    assert sum("style" in t and "Content Security Policy" in t for t in refused) >= 2  # <style> and style=""
    assert ready == "ready" and shown  # our own script still ran, and the smuggled CSS hid nothing


# --- (d) a large trace: caps said out loud, counts that agree, no failing call hidden ----------

@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    """A busy server's report over the page's caps (3,000 calls in detail, 5,000 timeline bars)."""
    d = tmp_path_factory.mktemp("busy")
    etl = d / "busy.etl"
    synth.synthesize("busy-server", etl, None, seed=2, clients=64, calls=6500)
    page = d / "busy.html"
    assert main(["report", str(etl), "-o", str(page)]) == 0
    listing = io.StringIO()
    with contextlib.redirect_stdout(listing):
        assert main(["calls", str(etl), "--format", "json"]) == 0
    return {"etl": etl, "page": page, "html": page.read_text(encoding="utf-8"), "calls": json.loads(listing.getvalue())}


def test_large_report_counts_agree_and_failing_calls_are_listed(busy):
    calls = busy["calls"]
    text = busy["html"]
    total = len(calls)
    assert total > 6000
    header = " ".join(Page(text[: text.index("</header>")]).all_text.split())
    assert f"{total} RPC calls rebuilt" in header
    from rpctrace.knowledge.failures import classify

    failing = {c["id"] for c in calls if any(classify(f["status"], f["kind"]) == "blame" for f in c["failures"])}
    expected_only = {c["id"] for c in calls if c["failures"]} - failing
    assert f"{len(failing)} with a failing server operation" in header
    assert expected_only and f"{len(expected_only)} more with expected results only" in header
    listed = [int(i) for i in re.findall(r'<li class="call fc tc[^"]*" id="call-(\d+)"', text)]
    assert len(listed) == len(set(listed))
    assert failing <= set(listed)  # no failing call is hidden behind a cap
    status = re.search(r'<span id="f-status"[^>]*data-total="(\d+)">([^<]*)</span>', text)
    assert status.group(1) == str(total) and status.group(2) == f"{len(listed)} of {total} calls listed"
    scope = Page(re.search(r'<p class="warn" id="tree-scope">(.*?)</p>', text, re.S).group(1)).all_text
    numbers = [int(n) for n in re.findall(r"\b(\d+)\b", scope)]
    roots, detailed = numbers[0], numbers[1]
    assert roots == total and detailed == 3000
    not_listed = int(re.search(r"(\d+) calls without a failing operation are not listed", scope).group(1))
    assert len(listed) + not_listed == total
    assert "--call ID" in scope and "--failed" in scope
    timeline = _section(text, "timeline")
    assert f"Bars of 5000 of the {total} calls are drawn" in Page(timeline).all_text
    bars = {int(i) for i in re.findall(r'<a class="bar fc [a-z]+( failed)?" href="#call-(\d+)"', timeline) for i in [i[1]]}
    assert failing <= bars


def test_browser_opens_a_large_report(busy, chromium, tmp_path):
    tools = DevTools(chromium, tmp_path / "profile-large")
    try:
        session = tools.open(busy["page"].as_uri())
        facts = tools.evaluate(session, """(() => ({
            ready: document.documentElement.dataset.filters || null,
            status: document.getElementById('f-status').textContent,
            listed: document.querySelectorAll('.tc').length,
            failedBox: (() => { const b = document.getElementById('f-failed'); b.click();
                                const t = document.getElementById('f-status').textContent; b.click(); return t; })(),
        }))()""")
        events = tools.events
    finally:
        tools.close()
    assert not _problems(events), _problems(events)
    assert facts["ready"] == "ready"
    total = int(re.search(r'data-total="(\d+)"', busy["html"]).group(1))
    assert facts["status"] == f"showing {facts['listed']} of {total} calls listed"
    assert re.fullmatch(rf"showing \d+ \({facts['listed']} of {total} calls listed\)", facts["failedBox"])


def test_capped_tree_lists_every_failing_call_in_brief(audiosrv):
    """Over the detail budget, failing calls are listed one line each; over the brief bound the page
    counts what it left out and names the command that lists them."""
    from rpctrace.correlate.calls import Call
    from rpctrace.model import Event
    from rpctrace.render.report.facts import Names
    from rpctrace.render.report.views import call_tree

    def call(n: int, status: int) -> Call:
        c = Call(n, client_pid=10, client_tid=11, server_pid=20, server_tid=21, start=n, end=n + 1)
        c.operations = [Event(n, 20, 21, 0, "p", 0, 11, 0, "registry.open",
                              {"status": status, "path": f"HKLM\\SOFTWARE\\K{n}"})]
        return c

    calls = [call(n, 0xC0000022 if n % 3 == 0 else 0) for n in range(1, 151)]  # 50 denied, 100 fine
    trace = audiosrv["trace"]
    tree = call_tree(calls, trace, Names(trace, calls, []), 0, limit=10, brief_limit=25)
    assert tree["roots"] == 150 and tree["detailed"] == 10 and tree["detailed_failing"] == 10
    assert len(tree["brief"]) == 25 and tree["failing_not_listed"] == 15 and tree["others_not_listed"] == 100
    assert tree["listed"] == 35
    page = render_report(trace, [], calls, tree_limit=10, brief_limit=25,
                         commands={"calls_failed": "rpctrace calls T.etl --failed"})
    scope = Page(re.search(r'<p class="warn" id="tree-scope">(.*?)</p>', page, re.S).group(1)).all_text
    assert "150 top-level calls: 10 are shown in detail (10 failing ones first" in " ".join(scope.split())
    assert "15 failing calls are not listed" in scope and "rpctrace calls T.etl --failed" in scope
    assert "100 calls without a failing operation are not listed" in " ".join(scope.split())
