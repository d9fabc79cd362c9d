"""The join of a capture with the server's trace, on pairs from the writer (rpctrace.synth.remote).

The writer never calls the reader; its ground truth names, for every remote call, the server
thread and times.  The written capture is also checked with independent parsers: dpkt (the
container and TCP/IP, frame by frame) and, where Debian's tshark is installed, Wireshark's
DCE/RPC dissector (skipped otherwise).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import dpkt
import pytest

from rpctrace.pipeline import correlate_files
from rpctrace.correlate.records import RecordMaker
from rpctrace.correlate.remote import CONFIDENCE_JOINED, CONFIDENCE_WIRE_ONLY, correlate_remote, wire_calls
from rpctrace.knowledge.interfaces import lookup
from rpctrace.sources.net import NetReader
from rpctrace.synth.remote import synthesize_remote


def _pair(tmp_path, **kw):
    cap, etl = tmp_path / "remote.pcap", tmp_path / "server.etl"
    truth = synthesize_remote(cap, etl, tmp_path / "truth.json", **kw)
    trace, corr = correlate_files([etl])
    with NetReader(cap) as reader:
        result, report, counts = correlate_remote(corr, reader.events())
    return cap, trace, truth, result, report


def _score(truth, calls):
    want = {(t["client"]["address"], t["client"]["port"], t["call_id"]): t for t in truth["calls"]}
    tp = fp = 0
    for c in calls:
        if c.wire is None or c.server_tid is None:
            continue
        t = want.get((c.wire.client_address, c.wire.client_port, c.wire.call_id))
        if t is not None and (c.server_pid, c.server_tid, c.server_start) == (t["server_pid"], t["server_tid"], t["server_start"]):
            tp += 1
        else:
            fp += 1
    return tp / max(1, tp + fp), tp / len(want)


def test_the_remote_call_carries_the_server_thread_and_the_failure(tmp_path):
    _cap, trace, truth, result, report = _pair(tmp_path, calls=150)
    story = next(t for t in truth["calls"] if t["story"])
    call = next(c for c in result.calls if c.wire is not None and c.wire.client_port == 52311 and c.opnum == 26)
    assert (call.wire.client_address, call.wire.server_port) == ("10.0.0.5", 49676)
    assert lookup(call.interface, call.opnum) == ("netlogon", "NetrServerAuthenticate3")
    assert (call.server_pid, call.server_tid) == (story["server_pid"], story["server_tid"])
    assert call.status == 5 and call.wire.fault_name == "ERROR_ACCESS_DENIED"
    (failure,) = call.failures
    assert failure.kind == "registry.open" and failure.fields["status"] == 0xC0000022
    assert call.confidence == CONFIDENCE_JOINED
    assert abs(report.offset - truth["offset"]) < 200  # within 20 us of the true clock offset
    record = RecordMaker(trace, names=lookup)(call)
    assert record["server"]["image"] == "lsass.exe" and record["procedure"] == "NetrServerAuthenticate3"
    assert (record["client"]["address"], record["client"]["port"]) == ("10.0.0.5", 52311)
    assert record["protocol"] == "TCP" and record["duration_us"] > 0
    assert record["failures"][0]["path"].endswith("$MACHINE.ACC")
    json.dumps(record)


def test_nested_calls_and_pipes(tmp_path):
    _cap, _trace, truth, result, _report = _pair(tmp_path, calls=300)
    wires = [c for c in result.calls if c.wire is not None]
    nested = [c for c in wires if c.children]
    assert nested and all(ch.parent is c for c in nested for ch in c.children)
    pipes = [c for c in wires if c.protocol_name == "NP"]
    assert pipes and all(c.wire.pipe == "lsarpc" and c.server_tid is not None for c in pipes)
    assert all(c.endpoint == "\\PIPE\\lsarpc" for c in pipes)
    # the connection that predates the capture: no bind, interface from the endpoint mapper
    late = [c for c in wires if c.wire.interface_source == "epm"]
    assert late and all(lookup(c.interface, None)[0] == "netlogon" for c in late)
    # endpoint-mapper calls have no server in this trace (rpcss is not traced): said so
    epm = [c for c in wires if c.endpoint == "135"]
    assert epm and all(c.server_tid is None and c.confidence == CONFIDENCE_WIRE_ONLY for c in epm)
    assert all("join: " in " ".join(c.evidence) for c in epm)


def test_join_precision_and_recall_on_a_busy_pair(tmp_path):
    _cap, _trace, truth, result, report = _pair(tmp_path, calls=4000, clients=12, gap_us=80)
    precision, recall = _score(truth, result.calls)
    assert precision >= 0.999 and recall >= 0.999, (precision, recall, report)


def test_wire_only_without_a_server_trace(tmp_path):
    cap, etl = tmp_path / "r.pcap", tmp_path / "r.etl"
    synthesize_remote(cap, etl, calls=20)
    with NetReader(cap) as reader:
        calls, _counts = wire_calls(reader.events())
    assert calls and all(c.server_pid is None and c.confidence == CONFIDENCE_WIRE_ONLY for c in calls)


def test_capture_read_by_dpkt(tmp_path):
    """The container and TCP/IP layers of the written capture, checked frame by frame by dpkt."""
    cap = tmp_path / "r.pcap"
    truth = synthesize_remote(cap, tmp_path / "r.etl", calls=30)
    with open(cap, "rb") as fh:
        frames = list(dpkt.pcap.Reader(fh))
    assert len(frames) == truth["frames"]
    ports = set()
    for _ts, buf in frames:
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data
        assert isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.tcp.TCP)
        assert dpkt.in_cksum(bytes(ip)[:20]) == 0  # header checksum valid
        ports.add(ip.data.dport)
    assert {135, 445, 49676} <= ports


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark (Debian package) is not installed")
def test_capture_read_by_tshark(tmp_path):
    """Wireshark's DCE/RPC dissector finds the same calls (frame, call id, opnum) as the truth."""
    cap = tmp_path / "r.pcap"
    truth = synthesize_remote(cap, tmp_path / "r.etl", calls=40)
    out = subprocess.run(["tshark", "-r", str(cap), "-d", "tcp.port==49676,dcerpc", "-Y", "dcerpc.pkt_type == 0",
                          "-T", "fields", "-e", "ip.src", "-e", "tcp.srcport", "-e", "dcerpc.cn_call_id",
                          "-e", "dcerpc.opnum"], capture_output=True, text=True, check=True).stdout
    seen = {tuple(line.split("\t")) for line in out.splitlines()}
    want = {(t["client"]["address"], str(t["client"]["port"]), str(t["call_id"]), str(t["opnum"]))
            for t in truth["calls"]}
    assert want <= seen
    epm = subprocess.run(["tshark", "-r", str(cap), "-Y", "epm.tower.proto_id == 0x07", "-T", "fields",
                          "-e", "epm.proto.tcp_port"], capture_output=True, text=True, check=True).stdout
    assert "49676" in epm


def test_correlate_files_takes_a_capture_with_the_trace(tmp_path):
    cap, etl = tmp_path / "r.pcap", tmp_path / "r.etl"
    truth = synthesize_remote(cap, etl, calls=60)
    trace, result = correlate_files([etl, cap])
    wires = [c for c in result.calls if c.wire is not None]
    assert len([c for c in wires if c.server_tid is not None]) == len(truth["calls"])
    join = next(s["join"] for s in trace.sources if "join" in s)
    assert join.joined == len(truth["calls"])
    only_trace, only_cap = correlate_files([cap])
    assert only_cap.calls and all(c.server_pid is None for c in only_cap.calls)


def test_commands_take_captures_and_explain_names_the_remote_client(tmp_path, capsys):
    """calls, tree, explain, report and export accept a capture among their inputs; explain names
    a remote failure by the client's address and the server's process and service."""
    from rpctrace.cli import main

    cap, etl = tmp_path / "r.pcap", tmp_path / "r.etl"
    truth = synthesize_remote(cap, etl, tmp_path / "t.json", calls=60)
    story = next(t for t in truth["calls"] if t.get("failures"))
    assert main(["calls", str(etl), str(cap), "--format", "json"]) == 0
    calls = json.loads(capsys.readouterr().out)
    joined = [c for c in calls if c.get("wire") and c["server"]["tid"] is not None]
    assert len(joined) == len(truth["calls"])  # (the capture also holds endpoint-mapper lookups)
    assert main(["explain", str(etl), str(cap), "--format", "json"]) == 0
    findings = json.loads(capsys.readouterr().out)
    f = next(f for f in findings if (f.get("client") or {}).get("address") == story["client"]["address"])
    assert f["client"]["port"] == story["client"]["port"]
    assert f["summary"].startswith(f"{story['client']['address']}:{story['client']['port']} -> ")
    assert "lsass.exe" in f["summary"] and f["interface"]["procedure"] in f["summary"]
    assert main(["explain", str(etl), str(cap)]) == 0
    assert f"{story['client']['address']}:{story['client']['port']} -> " in capsys.readouterr().out
    assert main(["tree", str(etl), str(cap), "--server", "lsass"]) == 0
    assert "lsass.exe" in capsys.readouterr().out
    page, perf = tmp_path / "r.html", tmp_path / "r.json"
    assert main(["report", str(etl), str(cap), "-o", str(page)]) == 0
    assert story["client"]["address"] in page.read_text(encoding="utf-8") or "lsass.exe" in page.read_text(encoding="utf-8")
    assert main(["export", str(etl), str(cap), "-o", str(perf)]) == 0
    capsys.readouterr()


def test_windbg_takes_a_capture_with_the_trace_and_keeps_the_call_numbers(tmp_path, capsys):
    """`windbg TRACE CAPTURE --call ID` takes the call `calls TRACE CAPTURE` numbers ID: a local
    call gets its script, a call from another machine is refused saying why (exit 2)."""
    from rpctrace.cli import main

    cap, etl = tmp_path / "r.pcap", tmp_path / "r.etl"
    synthesize_remote(cap, etl, None, calls=20)
    assert main(["calls", str(etl), str(cap), "--format", "json"]) == 0
    calls = json.loads(capsys.readouterr().out)
    joined = next(c for c in calls if c.get("wire") and c["server"]["tid"] is not None)
    # a remote call: its client is on another machine (no ALPC ClientId to break on); the same
    # call number as `calls`, and its server side named
    assert main(["windbg", str(etl), str(cap), "--call", str(joined["id"])]) == 2
    err = capsys.readouterr().err
    client = joined["client"]
    assert f"call {joined['id']} came over the network from {client['address']}:{client['port']}" in err
    assert f"pid {joined['server']['pid']} thread {joined['server']['tid']}" in err
    local = next(c for c in calls if c["client"].get("pid") is not None and c["server"].get("pid") is not None)
    script = tmp_path / "w.txt"
    assert main(["windbg", str(etl), str(cap), "--call", str(local["id"]), "-o", str(script)]) == 0
    assert f"{local['client']['tid']:x}" in script.read_text(encoding="utf-8").lower()
    capsys.readouterr()
    assert main(["windbg", str(cap), "--call", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the inputs show no server process either" in err
