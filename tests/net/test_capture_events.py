"""A capture read as a trace (``rpctrace events``, ``trace.load``): its reader's counts are a
source's like any other's (``NetStats.summary()`` without a path).  Before, the loader's
``stats.summary()`` call ended in a TypeError traceback for every pcap."""

from __future__ import annotations

import json
from pathlib import Path

from rpctrace.cli import main
from rpctrace.sources.net import NetReader
from rpctrace.trace import load

CAPTURE = Path(__file__).resolve().parent.parent / "data" / "net" / "dcerpc_synthetic.pcap"


def test_capture_loads_as_a_trace() -> None:
    trace = load([CAPTURE])
    assert trace.error is None
    (info,) = trace.sources
    assert info["path"] == str(CAPTURE) and info["format"] == "pcap" and info["frames"] > 0
    # the capture's one damaged message, said as the pipeline says it of a capture
    assert info["summary"].startswith(f"{CAPTURE}: 1 damaged messages skipped (first: frame 7: ")
    assert sum(ev.kind == "net.rpc_request" for ev in trace.events) == 16


def test_stats_summary_line_and_counts() -> None:
    with NetReader(CAPTURE) as reader:
        for _ in reader.events():
            pass
        stats = reader.stats
        line = stats.summary("g.pcap")
        assert line is not None and line.startswith("g.pcap: 1 damaged messages skipped")
        assert stats.summary() == {"format": "pcap", "frames": stats.frames,
                                   "summary": line.replace("g.pcap", str(CAPTURE), 1)}


def test_events_command_on_a_capture(capsys) -> None:
    assert main(["events", str(CAPTURE), "--format", "jsonl"]) == 0
    kinds = [json.loads(line)["kind"] for line in capsys.readouterr().out.splitlines()]
    assert kinds.count("net.rpc_request") == 16
