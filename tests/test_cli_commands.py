"""The commands people run, end to end through the CLI entry point."""

from __future__ import annotations

import json

from rpctrace.cli import main


def test_events_jsonl_shape(samples, capsys):
    assert main(["events", str(samples["diaghub.kernel.1.etl"]), "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 16335
    first = json.loads(lines[0])
    assert first["kind"] == "trace.header"
    assert set(first) >= {"ts", "pid", "tid", "cpu", "provider", "id", "opcode", "version", "kind", "fields"}
    assert len(first["ts"].split(".")[1]) == 8 and first["ts"].endswith("Z")  # 7 digits + Z
    assert first["provider"] == "68fdd900-4a3e-11d1-84f4-0000f80464e3"
    starts = [json.loads(l) for l in lines if '"process.start"' in l]
    assert starts[0]["fields"]["image"] == "VsDebugConsole.exe"


def test_events_text(samples, capsys):
    assert main(["events", str(samples["lxcore_kernel.etl"])]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and "trace.header" in out[0]


def test_synth_calls_tree_demo(tmp_path, capsys):
    etl, truth = tmp_path / "a.etl", tmp_path / "a.json"
    assert main(["synth", "audiosrv-access-denied", "-o", str(etl), "--truth", str(truth), "--seed", "4"]) == 0
    capsys.readouterr()
    assert main(["calls", str(etl), "--format", "json", "--failed", "--client", "rundll32.exe"]) == 0
    calls = json.loads(capsys.readouterr().out)
    assert len(calls) == 1
    call = calls[0]
    assert set(call) >= {"id", "client", "server", "interface", "opnum", "procedure", "endpoint", "protocol",
                         "alpc_message_id", "start", "end", "status", "confidence", "evidence", "parent",
                         "children", "failures"}
    assert call["opnum"] == 71 and call["endpoint"] == "AudioClientRpc"
    assert call["failures"][0]["status_name"] == "STATUS_ACCESS_DENIED"
    assert main(["calls", str(etl), "--interface", "{35464382-AD29-4881-9392-B43E55B8F7AC}".lower(), "--format", "jsonl"]) == 0
    assert all(json.loads(l)["interface"]["uuid"] == "35464382-ad29-4881-9392-b43e55b8f7ac"
               for l in capsys.readouterr().out.splitlines())
    assert main(["tree", str(etl), "--call", str(call["id"])]) == 0
    tree = capsys.readouterr().out
    assert "FAILED registry.open" in tree and "audiosrv+0x" in tree
    assert main(["tree", str(etl), "--call", "99999"]) == 2
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    demo = capsys.readouterr().out
    assert "rundll32.exe" in demo and "AudioClientRpc" in demo and "STATUS_ACCESS_DENIED" in demo
    assert "MMDevices\\Audio\\Render\\{34bb9f66-ad6b-4d17-b74b-7aace4320530}" in demo
