"""Correlation measured against the trace writer's ground truth, scenario by scenario."""

from __future__ import annotations

import json


from rpctrace.correlate import correlate
from rpctrace.synth import synthesize
from rpctrace.trace import load
from scoring import score


def run(tmp_path, scenario, **kw):
    etl, truth = tmp_path / f"{scenario}.etl", tmp_path / f"{scenario}.json"
    synthesize(scenario, etl, truth, **kw)
    trace = load([etl])
    result = correlate(trace)
    return trace, result, json.loads(truth.read_text())


def test_audiosrv_all_calls_right(tmp_path):
    trace, result, truth = run(tmp_path, "audiosrv-access-denied", seed=7)
    s = score(result.calls, trace, truth)
    assert s["wrong_examples"] == []
    assert s["right"] == s["truth"] == s["reported"]
    # the incident itself
    story = [t for t in truth["calls"] if t["opnum"] == 71]
    assert len(story) == 1
    r = s["records"][s["by_truth_id"][story[0]["id"]]]
    assert r["client"]["image"] == "rundll32.exe"
    assert r["server"]["image"] == "svchost.exe" and r["server"]["tid"] == story[0]["server"]["tid"]
    assert r["endpoint"] == "AudioClientRpc" and r["protocol"] == "LRPC"
    assert r["interface"]["uuid"] == "35464382-ad29-4881-9392-b43e55b8f7ac"
    assert r["confidence"] == 1.0
    (failure,) = [f for f in r["failures"] if f["status"] == 0xC0000022]
    assert failure["kind"] == "registry.open"
    assert failure["path"] == (
        "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\MMDevices\\Audio\\Render\\"
        "{34bb9f66-ad6b-4d17-b74b-7aace4320530}"
    )
    assert (failure["pid"], failure["tid"]) == (r["server"]["pid"], r["server"]["tid"])
    # every truth failure of every call is reported under that call
    for t in truth["calls"]:
        ours = s["records"][s["by_truth_id"][t["id"]]]
        assert sorted((f["kind"], f["path"], f["status"]) for f in ours["failures"]) == sorted(
            (f["kind"], f["path"], f["status"]) for f in t["failures"]
        )


def test_busy_server_256_clients(tmp_path):
    trace, result, truth = run(tmp_path, "busy-server", seed=3, clients=256, calls=4000)
    s = score(result.calls, trace, truth)
    assert s["truth"] >= 4000
    assert s["precision"] >= 0.999, s["wrong_examples"][:2]
    assert s["recall"] >= 0.999, (s["right"], s["truth"])
    # workers were reused and message ids repeat over time (the premise of the scenario)
    ids = [t["alpc_message_id"] for t in truth["calls"] if t["alpc_message_id"] is not None]
    assert len(ids) > len(set(ids))
    # ALPC exchanges with ports that are no RPC endpoint (csrss's ApiPort, lsass's
    # LsaAuthenticationPort) are no calls: every call has its interface, the exchanges are apart
    assert truth["alpc_exchanges"] > 0.2 * len(truth["calls"])
    assert all(c.interface is not None and c.protocol_name == "LRPC" for c in result.calls)
    assert len(result.alpc) == truth["alpc_exchanges"]
    assert {c.protocol_name for c in result.alpc} == {"ALPC"}
    assert {c.message.port_name for c in result.alpc} == {"\\Windows\\ApiPort", "\\LsaAuthenticationPort"}


def test_nested_parent_links(tmp_path):
    trace, result, truth = run(tmp_path, "nested", seed=5)
    s = score(result.calls, trace, truth)
    assert s["precision"] == 1.0 and s["recall"] == 1.0
    assert s["parent_links"] >= 2 and s["parents_right"] == s["parent_links"]


def test_lost_events_precision(tmp_path):
    trace, result, truth = run(tmp_path, "lost-events", seed=11, calls=3000)
    s = score(result.calls, trace, truth)
    assert s["precision"] >= 0.999, s["wrong_examples"][:2]
    assert s["recall"] > 0.5
    assert result.unpaired, "what could not be paired is reported"


def test_async_and_datagrams(tmp_path):
    trace, result, truth = run(tmp_path, "async", seed=2)
    s = score(result.calls, trace, truth)
    assert s["precision"] >= 0.999, s["wrong_examples"][:2]
    assert s["recall"] >= 0.999


def test_rpc_only_fallback_has_lower_confidence(tmp_path):
    etl, truth_path = tmp_path / "a.etl", tmp_path / "a.json"
    synthesize("audiosrv-access-denied", etl, truth_path, seed=7)
    from rpctrace.correlate import correlate_events

    trace = load([etl])
    no_alpc = [e for e in trace.events if not e.kind.startswith("alpc.")]
    result = correlate_events(no_alpc)
    truth = json.loads(truth_path.read_text())
    s = score(result.calls, trace, truth)
    assert s["recall"] > 0.8
    story = [c for c in result.calls if c.opnum == 71][0]
    assert story.confidence <= 0.5
    assert any("rpc-only" in e for e in story.evidence)
    assert story.failures and story.failures[0].fields["status"] == 0xC0000022


def test_alpc_only_gives_message_pairs_with_port_names(tmp_path):
    etl, truth_path = tmp_path / "a.etl", tmp_path / "a.json"
    synthesize("audiosrv-access-denied", etl, truth_path, seed=7)
    from rpctrace.correlate import correlate_events

    trace = load([etl])
    no_rpc = [e for e in trace.events if not e.kind.startswith("rpc.")]
    result = correlate_events(no_rpc)
    story = [c for c in result.calls if c.endpoint == "AudioClientRpc"
             and any(op.fields["status"] == 0xC0000022 for op in c.failures)]
    assert len(story) == 1
    assert story[0].interface is None and story[0].confidence == 0.6
    assert story[0].failures[0].fields["status"] == 0xC0000022


def test_alpc_only_trace_shows_message_pairs_marked_alpc(tmp_path):
    """With no RPC events at all, ALPC message pairs are what the trace shows: calls marked ALPC,
    the ports under \\RPC Control\\ said to be RPC endpoints'."""
    from rpctrace.correlate import correlate_events

    trace, result, truth = run(tmp_path, "audiosrv-access-denied", seed=7)
    alpc_only = correlate_events([ev for ev in trace.events if not ev.kind.startswith("rpc.")])
    assert not alpc_only.rpc_seen and not alpc_only.alpc
    assert alpc_only.calls and {c.protocol_name for c in alpc_only.calls} == {"ALPC"}
    rpc_ports = [c for c in alpc_only.calls if c.message.port_name.upper().startswith("\\RPC CONTROL\\")]
    assert rpc_ports and all("port under \\RPC Control\\: an RPC endpoint's" in c.evidence for c in rpc_ports)
    assert result.rpc_seen and all(c.protocol_name == "LRPC" for c in result.calls)
