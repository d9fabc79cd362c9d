"""The Perfetto / chrome://tracing export: trace-event format, tracks, slices and flows."""

from __future__ import annotations

import io
import json

import pytest

from rpctrace import synth
from rpctrace.cli import main
from rpctrace.correlate import correlate
from rpctrace.correlate.calls import Call
from rpctrace.model import Event
from rpctrace.render.perfetto import to_trace_events, write
from rpctrace.trace import load
from rpctrace.trace.model import Trace, build_tables

PROCESS = "3d6fa8d0-fe05-11d0-9dda-00c04fd7ba7c"
REGISTRY = "ae53722e-c863-11d2-8659-00c04fa321a1"
BASE = 132_000_000_000_000_000  # some FILETIME


@pytest.fixture(scope="module")
def audiosrv(tmp_path_factory):
    d = tmp_path_factory.mktemp("perfetto")
    etl, truth = d / "a.etl", d / "a.truth.json"
    synth.synthesize("audiosrv-access-denied", etl, truth, seed=7)
    trace = load([etl])
    calls = correlate(trace).calls
    return etl, json.loads(truth.read_text()), trace, calls


def _roundtrip(doc: dict) -> dict:
    buf = io.StringIO()
    write(doc, buf)
    return json.loads(buf.getvalue())


def _check_format(doc: dict) -> None:
    assert set(doc) >= {"traceEvents", "displayTimeUnit", "metadata"}
    assert doc["displayTimeUnit"] == "ns"
    events = doc["traceEvents"]
    assert isinstance(events, list) and events
    for ev in events:
        assert {"ph", "ts", "pid", "tid"} <= set(ev), ev
        assert isinstance(ev["pid"], int) and isinstance(ev["tid"], int)
        assert isinstance(ev["ts"], (int, float)) and ev["ts"] >= 0
        assert ev["ph"] in ("M", "X", "i", "s", "f")
        if ev["ph"] == "X":
            assert isinstance(ev["dur"], (int, float)) and ev["dur"] >= 0
            assert isinstance(ev["name"], str) and isinstance(ev["args"], dict)
        if ev["ph"] == "M":
            assert ev["name"] in ("process_name", "thread_name") and isinstance(ev["args"]["name"], str)
        if ev["ph"] == "i":
            assert ev["s"] == "t"
    # every pid/tid that has events has a name
    procs = {e["pid"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    threads = {(e["pid"], e["tid"]) for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    for ev in events:
        if ev["ph"] != "M":
            assert ev["pid"] in procs and (ev["pid"], ev["tid"]) in threads
    # flows pair: one s and one f per id, same name and cat, the f binds to its enclosing slice
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    ends = {e["id"]: e for e in events if e["ph"] == "f"}
    assert len(starts) == sum(1 for e in events if e["ph"] == "s")
    assert len(ends) == sum(1 for e in events if e["ph"] == "f")
    assert set(starts) == set(ends)
    for fid, s in starts.items():
        f = ends[fid]
        assert f["bp"] == "e"
        assert (s["name"], s["cat"]) == (f["name"], f["cat"])
        assert s["ts"] <= f["ts"]


def _enclosing(events, ev) -> list[dict]:
    return [x for x in events if x["ph"] == "X" and (x["pid"], x["tid"]) == (ev["pid"], ev["tid"])
            and x["ts"] <= ev["ts"] <= x["ts"] + x["dur"]]


def _nested(events) -> None:
    by_thread: dict = {}
    for x in events:
        if x["ph"] == "X":
            by_thread.setdefault((x["pid"], x["tid"]), []).append(x)
    for slices in by_thread.values():
        for a in slices:
            for b in slices:
                if a is b:
                    continue
                a0, a1, b0, b1 = a["ts"], a["ts"] + a["dur"], b["ts"], b["ts"] + b["dur"]
                # disjoint or one inside the other
                assert a1 <= b0 or b1 <= a0 or (a0 <= b0 and b1 <= a1) or (b0 <= a0 and a1 <= b1), (a, b)


def test_audiosrv_export_format_and_flow(audiosrv):
    etl, truth, trace, calls = audiosrv
    doc = _roundtrip(to_trace_events(trace, calls))
    _check_format(doc)
    events = doc["traceEvents"]
    _nested(events)

    want = [c for c in truth["calls"] if c["client"]["image"] == "rundll32.exe" and c["endpoint"] == "AudioClientRpc"
            and any(f["status_name"] == "STATUS_ACCESS_DENIED" for f in c["failures"])]
    assert len(want) == 1
    want = want[0]
    call = [c for c in calls if (c.client_pid, c.client_tid) == (want["client"]["pid"], want["client"]["tid"])
            and c.alpc_message_id == want["alpc_message_id"] and c.opnum == want["opnum"]
            and any(op.fields.get("status") == 0xC0000022 for op in c.failures)]
    assert len(call) == 1
    call = call[0]
    s = [e for e in events if e["ph"] == "s" and e["id"] == call.id][0]
    f = [e for e in events if e["ph"] == "f" and e["id"] == call.id][0]
    # the flow starts on the rundll32 client thread inside the client call's slice ...
    assert (s["pid"], s["tid"]) == (want["client"]["pid"], want["client"]["tid"])
    client_slices = [x for x in _enclosing(events, s) if x["cat"] == "rpc.client" and x["args"]["call"] == call.id]
    assert len(client_slices) == 1
    # ... and ends on the svchost worker inside that worker's slice for the same call
    assert (f["pid"], f["tid"]) == (want["server"]["pid"], want["server"]["tid"])
    server_slices = [x for x in _enclosing(events, f) if x["cat"] == "rpc.server"]
    assert [x["args"]["call"] for x in server_slices] == [call.id]
    # the innermost slice around the flow end is the server slice (bp "e" binds to it)
    assert min(_enclosing(events, f), key=lambda x: x["dur"]) is server_slices[0]
    # the access-denied registry open is an instant event inside the worker's slice
    denied = [e for e in events if e["ph"] == "i" and e["args"].get("status") == "0xc0000022"]
    assert denied and denied[0]["args"]["status_name"] == "STATUS_ACCESS_DENIED"
    assert "MMDevices\\Audio\\Render" in denied[0]["args"]["path"]
    assert server_slices[0] in _enclosing(events, denied[0])
    # process and thread names
    names = {(e["pid"], e["tid"], e["name"]): e["args"]["name"] for e in events if e["ph"] == "M"}
    assert names[(want["client"]["pid"], 0, "process_name")] == "rundll32.exe"
    assert names[(want["server"]["pid"], want["server"]["tid"], "thread_name")].startswith("RPC server thread")
    # slice times are microseconds from the trace start
    x = client_slices[0]
    assert x["ts"] == pytest.approx((call.start - trace.events[0].ts) / 10)
    assert x["dur"] == pytest.approx((call.end - call.start) / 10)


def test_every_truth_call_with_both_sides_has_a_flow(audiosrv):
    etl, truth, trace, calls = audiosrv
    doc = to_trace_events(trace, calls)
    events = doc["traceEvents"]
    flows = {e["id"] for e in events if e["ph"] == "s"}
    both = [c for c in calls if c.client_pid is not None and c.server_pid is not None]
    assert flows == {c.id for c in both}
    assert doc["metadata"]["flows"] == len(both) and doc["metadata"]["calls"] == len(calls)


def test_deterministic(audiosrv):
    etl, truth, trace, calls = audiosrv
    a, b = io.StringIO(), io.StringIO()
    write(to_trace_events(trace, calls), a)
    write(to_trace_events(trace, list(reversed(calls))), b)
    assert a.getvalue() == b.getvalue()


def _ev(ts, pid, tid, kind, fields, provider=PROCESS, opcode=1):
    return Event(BASE + ts, pid, tid, 0, provider, 0, opcode, 4, kind, fields)


def test_nested_call_flows_and_hostile_strings():
    evil = 'evil"\nname</script><!--\\u0000\x00\u2028'
    events = [
        _ev(0, 100, None, "process.start", {"image": evil, "command_line": 'x "svc\n</script>'}),
        _ev(0, 200, None, "process.start", {"image": "server.exe"}),
        _ev(0, 300, None, "process.start", {"image": "backend.exe"}),
        _ev(500, 300, 31, "registry.open", {"status": 0xC0000022, "path": 'HKLM\\SOFTWARE\\"quoted"\n</script>'},
            provider=REGISTRY, opcode=11),
    ]
    trace = Trace(events)
    build_tables(trace)
    outer = Call(1, client_pid=100, client_tid=11, server_pid=200, server_tid=21, endpoint=evil,
                 interface="00000000-0000-0000-0000-000000000001", opnum=3, start=BASE + 100, end=BASE + 1000,
                 server_start=BASE + 150, server_end=BASE + 950, has_client=True, has_server=True)
    inner = Call(2, client_pid=200, client_tid=21, server_pid=300, server_tid=31, endpoint="backend",
                 start=BASE + 300, end=BASE + 700, server_start=BASE + 350, server_end=BASE + 650, has_client=True,
                 has_server=True, parent=outer, operations=[events[3]])
    outer.children = [inner]  # Call.children is an empty tuple until a child is added
    doc = to_trace_events(trace, [outer, inner])
    text = io.StringIO()
    write(doc, text)
    raw = text.getvalue()
    assert raw.count("\n") == 1  # one line of JSON: newlines in data are escaped
    assert "\x00" not in raw and "\u2028" not in raw  # ASCII only: NUL and U+2028 are escaped
    back = json.loads(raw)
    _check_format(back)
    _nested(back["traceEvents"])
    events_out = back["traceEvents"]
    names = [e["args"]["name"] for e in events_out if e["ph"] == "M" and e["name"] == "process_name"]
    assert evil in names  # the hostile image name survives as data, byte for byte
    assert any(e["args"].get("endpoint") == evil for e in events_out if e["ph"] == "X")
    op = [e for e in events_out if e["ph"] == "i"][0]
    assert op["args"]["path"] == 'HKLM\\SOFTWARE\\"quoted"\n</script>'
    assert op["args"]["status_name"] == "STATUS_ACCESS_DENIED" and op["args"]["failed"] is True
    # two flows: client 100 -> server thread 200:21, and the nested call 200:21 -> 300:31
    s = {e["id"]: e for e in events_out if e["ph"] == "s"}
    f = {e["id"]: e for e in events_out if e["ph"] == "f"}
    assert (s[1]["pid"], f[1]["pid"], f[1]["tid"]) == (100, 200, 21)
    assert (s[2]["pid"], s[2]["tid"], f[2]["pid"], f[2]["tid"]) == (200, 21, 300, 31)
    # the nested call's flow starts inside the nested client slice, which sits inside the outer server slice
    around = sorted(_enclosing(events_out, s[2]), key=lambda x: x["dur"])
    assert [x["cat"] for x in around] == ["rpc.client", "rpc.server"]
    assert [x["args"]["call"] for x in around] == [2, 1]
    assert around[0]["args"]["parent"] == 1


def test_partial_overlap_is_clipped_to_nest():
    events = [_ev(0, 1, None, "process.start", {"image": "a.exe"}), _ev(0, 2, None, "process.start", {"image": "b.exe"})]
    trace = Trace(events)
    build_tables(trace)
    # thread 2:20 serves call 1 from 100 to 500 and (bad data) makes call 2 from 400 to 900
    c1 = Call(1, client_pid=1, client_tid=10, server_pid=2, server_tid=20, start=BASE + 50, end=BASE + 600,
              server_start=BASE + 100, server_end=BASE + 500, has_client=True, has_server=True)
    c2 = Call(2, client_pid=2, client_tid=20, start=BASE + 400, end=BASE + 900, has_client=True)
    back = _roundtrip(to_trace_events(trace, [c1, c2]))
    _check_format(back)
    _nested(back["traceEvents"])
    clipped = [e for e in back["traceEvents"] if e["ph"] == "X" and e["args"].get("clipped")]
    assert [e["args"]["call"] for e in clipped] == [2]


def test_empty_and_one_sided():
    trace = Trace([])
    doc = _roundtrip(to_trace_events(trace, []))
    assert doc["traceEvents"] == [] and doc["metadata"]["calls"] == 0
    only_server = Call(5, server_pid=7, server_tid=8, server_start=BASE + 10, server_end=BASE + 20, has_server=True)
    doc = _roundtrip(to_trace_events(trace, [only_server]))
    assert [e["ph"] for e in doc["traceEvents"]] == ["M", "M", "X"]
    assert not any(e["ph"] in "sf" for e in doc["traceEvents"])


def test_export_command(audiosrv, tmp_path, capsys):
    etl = audiosrv[0]
    out = tmp_path / "calls.json"
    assert main(["export", str(etl), "--perfetto", str(out)]) == 0
    assert "wrote" in capsys.readouterr().err
    doc = json.loads(out.read_text(encoding="ascii"))
    _check_format(doc)
    assert main(["export", str(etl)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    bad = tmp_path / "bad.etl"
    bad.write_bytes(b"not an etl at all" * 10)
    assert main(["export", str(bad), "--perfetto", str(tmp_path / "x.json")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
