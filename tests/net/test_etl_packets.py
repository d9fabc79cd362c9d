"""Packets inside an .etl (netsh trace: NDIS-PacketCapture; pktmon: PktMon) through the ETL reader.

The writer (rpctrace.synth.remote, packets="ndis" / "pktmon") puts the frames of its remote pair
into the server's trace instead of a pcap, from the layouts in docs/packet-etl.md; the same seed
gives the same frames and calls as the pcap twin.  dissect.etl (AGPL, a test oracle only) reads
the written packet events back independently: headers, keywords and payloads.
"""

from __future__ import annotations

import collections
import datetime as dt
import struct
import uuid

import dpkt
import pytest

from rpctrace.correlate.remote import CONFIDENCE_JOINED, wire_calls
from rpctrace.knowledge.interfaces import lookup
from rpctrace.model import Event
from rpctrace.pipeline import correlate_files, source_warnings
from rpctrace.sources.net import EtlPacketReader, NetReader
from rpctrace.sources.net.etw import EtwFrames
from rpctrace.synth import pcapfile as W
from rpctrace.synth.etlfile import Clock, EtlWriter, event_record
from rpctrace.synth.packetetw import (KW_ETHERNET, KW_PACKET_END, KW_PACKET_START, KW_RECEIVE, NDIS_PROVIDER,
                                      NdisPackets)
from rpctrace.synth.payloads import guid_le
from rpctrace.synth.remote import synthesize_remote

IFACE = "12345678-1234-abcd-ef00-01234567cffb"


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """The same remote pair four ways: pcap + server trace, and packets inside the trace."""
    d = tmp_path_factory.mktemp("twins")
    out = {"pcap": (d / "p.pcap", d / "p.etl", synthesize_remote(d / "p.pcap", d / "p.etl", calls=120))}
    for mode, kw in (("ndis", {}), ("pktmon", {}), ("ndis-split", {"fragment": 300})):
        etl = d / f"{mode}.etl"
        truth = synthesize_remote(None, etl, calls=120, packets=mode.split("-")[0], **kw)
        out[mode] = (None, etl, truth)
    return out


def _wire(calls):
    return sorted((c.wire.client_address, c.wire.client_port, c.wire.server_port, c.wire.call_id, c.interface,
                   c.opnum, c.status, c.wire.pipe, c.auth_level) for c in calls)


@pytest.mark.parametrize("mode", ["ndis", "pktmon", "ndis-split"])
def test_packets_in_the_trace_give_the_same_calls_as_the_pcap_twin(twins, mode):
    cap, _etl, truth_pcap = twins["pcap"]
    _none, etl, truth = twins[mode]
    with NetReader(cap) as reader:
        from_pcap, _ = wire_calls(reader.events())
    with EtlPacketReader(etl) as reader:
        from_etl, _ = wire_calls(reader.events())
        assert reader.summary() is None  # clean
        assert reader.etw.packets == (truth_pcap["frames"] * (2 if mode == "pktmon" else 1))
        assert (reader.etw.joined > 0) == (mode == "ndis-split")  # packets in several events
    assert len(from_etl) == len(from_pcap) > 120
    assert _wire(from_etl) == _wire(from_pcap)
    # round trips: the pcap keeps microseconds, the trace 100 ns ticks
    rtt_pcap = {(c.wire.client_port, c.wire.call_id): c.end - c.start for c in from_pcap if c.end is not None}
    rtt_etl = {(c.wire.client_port, c.wire.call_id): c.end - c.start for c in from_etl if c.end is not None}
    assert rtt_pcap.keys() == rtt_etl.keys()
    assert all(abs(rtt_etl[k] - rtt_pcap[k]) <= 10 for k in rtt_pcap)
    # and the request times are the truth's, in the trace's clock
    want = {(t["client"]["port"], t["call_id"]): t for t in truth["calls"]}
    for c in from_etl:
        t = want.get((c.wire.client_port, c.wire.call_id))
        if t is not None:
            assert (c.start, c.end) == (t["request_ts"], t["response_ts"])


@pytest.mark.parametrize("mode", ["ndis", "pktmon"])
def test_the_join_carries_the_server_thread_and_the_failure(twins, mode):
    _none, etl, truth = twins[mode]
    trace, result = correlate_files([etl])
    join = next(s["join"] for s in trace.sources if "join" in s)
    assert join.offset == 0 and join.joined == len(truth["calls"])  # one file, one clock
    info = next(s for s in trace.sources if s.get("format") == "etl packets")
    assert info["frames"] > 0 and info["summary"] is None and "etl packets" in trace.formats
    assert trace.kinds["net.rpc_request"] > len(truth["calls"])  # (endpoint-mapper lookups too)
    story = next(t for t in truth["calls"] if t["story"])
    call = next(c for c in result.calls if c.wire is not None and c.wire.client_port == 52311 and c.opnum == 26)
    assert (call.wire.client_address, call.wire.server_port) == ("10.0.0.5", 49676)
    assert lookup(call.interface, call.opnum) == ("netlogon", "NetrServerAuthenticate3")
    assert (call.server_pid, call.server_tid, call.server_start) == (story["server_pid"], story["server_tid"],
                                                                      story["server_start"])
    assert call.status == 5 and call.confidence == CONFIDENCE_JOINED
    (failure,) = call.failures
    assert failure.kind == "registry.open" and failure.fields["status"] == 0xC0000022
    # every call of the truth is joined with its own server thread
    got = {(c.wire.client_port, c.wire.call_id): c for c in result.calls if c.wire is not None}
    for t in truth["calls"]:
        c = got[(t["client"]["port"], t["call_id"])]
        assert (c.server_tid, c.server_start, c.server_end) == (t["server_tid"], t["server_start"], t["server_end"])


def test_explain_names_the_remote_client_from_one_etl(twins, capsys):
    from rpctrace.cli import main

    _none, etl, truth = twins["ndis"]
    assert main(["explain", str(etl)]) == 0
    out = capsys.readouterr().out
    assert "10.0.0.5:52311 -> " in out and "lsass.exe" in out and "NetrServerAuthenticate3" in out


def test_several_files_estimate_the_offset(twins, tmp_path):
    """Several inputs are merged first; the packets are joined with an estimated offset."""
    from pathlib import Path

    _none, etl, truth = twins["ndis"]
    other = Path(__file__).resolve().parents[1] / "data" / "smallEtlFile.etl"
    trace, result = correlate_files([etl, other])
    join = next(s["join"] for s in trace.sources if "join" in s)
    assert join.joined == len(truth["calls"]) and abs(join.offset) < 1000


# ---------------------------------------------------------------------- the independent reader

_NDIS_LE = uuid.UUID(NDIS_PROVIDER).bytes_le
_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)


def test_written_packet_events_read_by_dissect(twins):
    """dissect.etl reads the NDIS events' headers and payloads; the frames joined from them by the
    manifest's layout (not rpctrace's) are the pcap twin's frames, at the twin's times + offset."""
    from dissect.etl.etl import ETL
    from dissect.etl.headers.event import EventHeader

    cap, _etl, truth_pcap = twins["pcap"]
    _none, etl, _truth = twins["ndis-split"]
    frames, pending, attach = [], {}, []
    with open(etl, "rb") as fh:
        for rec in ETL(fh):
            h = rec.header
            if not isinstance(h, EventHeader) or bytes(h.header.ProviderId) != _NDIS_LE:
                continue
            payload, hh = bytes(h.payload), h.header
            assert hh.Version == 0
            if hh.Id == 1014:
                attach.append(struct.unpack("<IIII", payload))
                continue
            assert hh.Id == 1001 and hh.Level == 4 and hh.Keywords & KW_ETHERNET
            miniport, lower, size = struct.unpack_from("<III", payload)
            assert len(payload) == 12 + size + 16  # Fragment, GftFlowEntryId, GftOffloadInformation
            key = (lower, h.header.ThreadId)
            if hh.Keywords & KW_PACKET_START:
                pending[key] = b""
            pending[key] += payload[12:12 + size]
            if hh.Keywords & KW_PACKET_END:
                ticks = (h.timestamp - _EPOCH) // dt.timedelta(microseconds=1) * 10
                frames.append((ticks, pending.pop(key)))
    assert attach == [(12, 12, 0, 1)] and not pending
    with open(cap, "rb") as fh:
        twin = [(int(round(ts * 1e6)) * 10 + W.EPOCH_1970_TICKS, bytes(buf)) for ts, buf in dpkt.pcap.Reader(fh)]
    assert collections.Counter(b for _t, b in frames) == collections.Counter(b for _t, b in twin)
    offset = truth_pcap["offset"]
    by_frame = collections.defaultdict(list)
    for t, b in twin:
        by_frame[b].append(t + offset)
    for t, b in frames:
        assert min(abs(t - u) for u in by_frame[b]) <= 20  # both sides keep microseconds here


# ---------------------------------------------------------------------- a real pktmon trace

DATA = __import__("pathlib").Path(__file__).resolve().parents[1] / "data" / "net"


def test_real_pktmon_trace_gives_pktmons_own_conversion():
    """microsoft/demikernel's PktMon.etl (Windows Server 2022, MIT) and the pcapng pktmon made of it:
    the frames rpctrace takes from the 160 events are that capture's, frame for frame and to the
    microsecond (pings: no TCP, so no calls, and nothing called damage)."""
    from rpctrace.sources.etl.reader import EtlReader

    frames = EtwFrames(lambda n, t, m: pytest.fail(m))
    got, components = [], {}
    with EtlReader(DATA / "demikernel-PktMon.etl") as reader:
        for ev in reader.events():
            if ev.kind == "pktmon.component":
                components[ev.fields["id"]] = ev.fields["name"]
            elif ev.kind == "pktmon.packet":
                assert ev.fields["logged_payload_size"] == ev.fields["original_payload_size"] == 98
                assert ev.fields["component_id"] in (48, 50, 59, 61) and ev.fields["direction"] in (3, 4)
                frame = frames.event(ev)
                got.append((frame[1], frame[2], frame[3]))
    assert len(components) == 44 and components[75] == "http.sys"
    with open(DATA / "demikernel-PktMon.cap", "rb") as fh:
        want = [(round(ts * 1e6) * 10 + W.EPOCH_1970_TICKS, 1, bytes(buf)) for ts, buf in dpkt.pcapng.Reader(fh)]
    assert len(got) == len(want) == 114
    assert [(t - t % 10, lt, b) for t, lt, b in got] == want
    with EtlPacketReader(DATA / "demikernel-PktMon.etl") as reader:
        assert list(reader.events()) == []
        assert (reader.stats.frames, reader.stats.not_tcp, reader.summary()) == (114, 114, None)
    trace, result = correlate_files([DATA / "demikernel-PktMon.etl"])
    info = next(s for s in trace.sources if s.get("format") == "etl packets")
    assert info["frames"] == 114 and info["summary"] is None and result.calls == []


# ---------------------------------------------------------------------- damage

T0 = 5 * 10**7


def _conversation(calls: int = 3):
    flow = W.TcpFlow(("10.0.0.5", 52311), ("10.0.0.1", 49676), 1000, 2000)
    frames = flow.handshake()
    frames += flow.send(0, W.dcerpc_bind(1, [(0, IFACE, 1, 0)]))
    frames += flow.send(1, W.dcerpc_bind_ack(1, "49676", 1))
    for n in range(calls):
        frames += flow.send(0, W.dcerpc_request(2 + n, 0, 26, bytes(200)))
        frames += flow.send(1, W.dcerpc_response(2 + n, 0, bytes(200)))
    return frames + flow.close()


def _ndis_record(writer, ts, keyword, body):
    return event_record(writer.types, guid_le(NDIS_PROVIDER), 1001, 0, 0, 4, 0, 0, keyword, 8, 4, ts, bytes(16), body)


def test_truncated_fragments_and_hostile_sizes(tmp_path, capsys):
    """A fragment whose FragmentSize overruns its event, a packet restarted before its end, an end
    without its start, a packet left open: one line naming the file, the good calls still decoded."""
    from rpctrace.cli import main

    path = tmp_path / "bad.etl"
    writer = EtlWriter(path, clock=Clock(132_000_000_000_000_000, T0), cpus=2, buffer_size=0x10000)
    ndis = NdisPackets(writer, 2)
    ts = T0 + 100
    frames = _conversation()
    for i, fr in enumerate(frames):
        ndis.frame(ts + i * 50, fr, send=fr[26:30] == bytes([10, 0, 0, 1]))
    bad = ts + len(frames) * 50
    whole = KW_PACKET_START | KW_PACKET_END | KW_RECEIVE | KW_ETHERNET
    hostile = struct.pack("<III", 12, 12, 4_000_000) + bytes(100)  # claims 4 MB, holds 100 bytes
    writer.add(0, bad, _ndis_record(writer, bad, whole, hostile))
    start = KW_PACKET_START | KW_RECEIVE | KW_ETHERNET
    part = struct.pack("<III", 12, 12, 40) + bytes(40) + bytes(16)
    writer.add(0, bad + 10, _ndis_record(writer, bad + 10, start, part))  # restarted by the next one
    writer.add(0, bad + 20, _ndis_record(writer, bad + 20, start, part))
    end_only = KW_PACKET_END | KW_RECEIVE | KW_ETHERNET
    writer.add(1, bad + 30, _ndis_record(writer, bad + 30, end_only, part))  # no start on CPU 1
    writer.add(1, bad + 40, _ndis_record(writer, bad + 40, start, part))  # never ends
    writer.close(bad + 100)

    with EtlPacketReader(path) as reader:
        events = list(reader.events())
        calls, _ = wire_calls(events)
        line = reader.summary()
    assert [(c.wire.call_id, c.opnum, c.end is not None) for c in calls] == [(2, 26, True), (3, 26, True),
                                                                            (4, 26, True)]
    assert reader.etw.not_decoded == 1 and reader.stats.damage == 5  # the restarted packet never ends either
    damage = [e.fields["message"] for e in events if e.kind == "net.damage"]
    assert "NDIS-PacketCapture event 1001" in damage[0] and "4000000 bytes overrun" in damage[0]
    assert any("restarted before its end" in m for m in damage)
    assert any("end of a packet whose start was not captured" in m for m in damage)
    assert any("never ended" in m for m in damage)
    assert line.startswith(f"{path}: packets: 1 packet events did not decode; 5 damaged messages skipped")
    assert "\n" not in line

    trace, result = correlate_files([path])
    assert source_warnings(trace) == [line]
    assert main(["calls", str(path), "--format", "json"]) == 0
    err = capsys.readouterr().err
    # the packets' line once; and, as every answering command does, what packets alone cannot show
    lines = err.splitlines()
    assert len(lines) == 2 and "packets: 1 packet events did not decode" in lines[1]
    assert lines[0].startswith("rpctrace: a network capture alone: ")


def test_hostile_pktmon_payload_size(tmp_path):
    """A PktMon packet event whose LoggedPayloadSize overruns it: one line, the rest decoded."""
    from rpctrace.synth.packetetw import PKTMON_HEAD, PKTMON_PROVIDER, PktmonPackets

    path = tmp_path / "pktmon.etl"
    writer = EtlWriter(path, clock=Clock(132_000_000_000_000_000, T0), cpus=1, buffer_size=0x10000)
    pk = PktmonPackets(writer, 1, appearances=1)
    frames = _conversation()
    for i, fr in enumerate(frames[:5]):
        pk.frame(T0 + 100 + i * 50, fr, send=False)
    t = T0 + 400
    body = PKTMON_HEAD.pack(99, 1, 1, 3, 1, 1, 1, 0, 0, 0, 60000, 60000) + bytes(10)
    writer.add(0, t, event_record(writer.types, guid_le(PKTMON_PROVIDER), 160, 0, 0, 4, 0, 0, 0x10, 8, 4, t,
                                  bytes(16), body))
    for i, fr in enumerate(frames[5:]):
        pk.frame(t + 100 + i * 50, fr, send=False)
    writer.close(t + 10_000)
    with EtlPacketReader(path) as reader:
        calls, _ = wire_calls(reader.events())
        line = reader.summary()
    assert len(calls) == 3 and all(c.end is not None for c in calls)
    assert line.startswith(f"{path}: packets: 1 packet events did not decode; 1 damaged messages skipped "
                           "(first: frame 6: PktMon event 160 at ")
    assert "payload: 60000 bytes overrun the payload" in line


def _ev(kind, keyword=None, cpu=0, ts=1, provider=NDIS_PROVIDER, eid=1001, **fields):
    f = dict(fields)
    if keyword is not None:
        f["keyword"] = keyword
    return Event(ts, 4, 8, cpu, provider, eid, 0, 0, kind, f)


def _seg(linktype, data):
    from rpctrace.sources.net.link import segment_of

    return segment_of(linktype, data)


def test_link_types_from_keywords_and_media():
    """802.11 (Native802.11 keyword), raw IP (WirelessWAN keyword, or an interface whose 1014
    attach event said NdisMediumIP), Ethernet otherwise; an LSOv2 IPv4 length of 0 is mended."""
    damage = []
    frames = EtwFrames(lambda n, t, m: damage.append(m))
    eth = _conversation(0)[0]
    ip = eth[14:]
    whole = KW_PACKET_START | KW_PACKET_END
    wifi = bytes([0x88, 0x02]) + bytes(22) + bytes(2) + b"\xaa\xaa\x03\x00\x00\x00\x08\x00" + ip
    got = frames.event(_ev("ndis.packet_fragment", whole | 0x10000, miniport_if_index=3, lower_if_index=3,
                           fragment=wifi))
    assert got[2] == 105 and _seg(105, got[3]).dport == 49676
    got = frames.event(_ev("ndis.packet_fragment", whole | 0x200, miniport_if_index=4, lower_if_index=4, fragment=ip))
    assert got[2] == 101 and _seg(101, got[3]).sport == 52311
    frames.event(_ev("ndis.layer_attach", 0, miniport_if_index=5, lower_if_index=7, media_type=19,
                     reference_context=1, eid=1014))
    got = frames.event(_ev("ndis.packet_fragment", whole, miniport_if_index=5, lower_if_index=7, fragment=ip))
    assert got[2] == 101
    lso = eth[:16] + b"\x00\x00" + eth[18:]  # IPv4 total length 0
    got = frames.event(_ev("ndis.packet_fragment", whole, miniport_if_index=1, lower_if_index=1, fragment=lso))
    assert got[2] == 1 and got[3] == eth and _seg(1, got[3]).dport == 49676
    # PktMon: one event per packet, its type in the payload; drops and unknown types are counted
    for ptype, lt, data in ((1, 1, eth), (3, 101, ip), (2, 105, wifi)):
        got = frames.event(_ev("pktmon.packet", provider="4d4f80d9-c8bd-4d73-bb5b-19c90402c5ac", eid=160,
                               packet_type=ptype, payload=data))
        assert got[2] == lt
    assert frames.event(_ev("pktmon.packet", eid=160, packet_type=7, payload=eth)) is None
    assert frames.event(_ev("pktmon.packet_drop", eid=170, packet_type=1, payload=eth)) is None
    assert frames.stats.unsupported_types == {7} and frames.stats.pktmon_drops == 1 and not damage


def test_fragments_join_per_interface_and_processor():
    """Fragments of two packets interleaved on two processors join each with its own."""
    frames = EtwFrames(lambda n, t, m: None)
    a, b = _conversation(0)[:2]
    start, mid, end = KW_PACKET_START, 0, KW_PACKET_END
    out = []
    for cpu, kw, frag in ((0, start, a[:20]), (1, start, b[:10]), (0, mid, a[20:30]), (1, end, b[10:]),
                          (0, end, a[30:])):
        got = frames.event(_ev("ndis.packet_fragment", kw, cpu=cpu, miniport_if_index=2, lower_if_index=2,
                               fragment=frag))
        if got is not None:
            out.append(got[3])
    assert out == [b, a] and frames.stats.joined == 2


def test_a_packet_cannot_grow_without_bound(monkeypatch):
    from rpctrace.sources.net import etw

    monkeypatch.setattr(etw, "MAX_PACKET", 1000)
    damage = []
    frames = etw.EtwFrames(lambda n, t, m: damage.append(m))
    frames.event(_ev("ndis.packet_fragment", KW_PACKET_START, miniport_if_index=2, lower_if_index=2,
                     fragment=bytes(600)))
    assert frames.event(_ev("ndis.packet_fragment", 0, miniport_if_index=2, lower_if_index=2,
                            fragment=bytes(600))) is None
    assert len(damage) == 1 and "grows past 1000 bytes" in damage[0] and not frames._pending
