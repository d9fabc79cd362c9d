"""The network reader on damaged and awkward input: truncation, hostile lengths, TCP disorder."""

from __future__ import annotations

import io
import random
import struct

import pytest

from rpctrace.correlate.remote import wire_calls
from rpctrace.errors import InputError
from rpctrace.sources.net import NetReader
from rpctrace.sources.net.tcp import Limits
from rpctrace.synth import pcapfile as W

T0 = W.EPOCH_1970_TICKS + 1_700_000_000 * 10_000_000
IFACE = "12345678-1234-abcd-ef00-01234567cffb"


def _conversation(calls: int = 5, stub: int = 3000):
    """Frames of one TCP connection: bind, then ``calls`` calls with multi-segment PDUs."""
    flow = W.TcpFlow(("10.0.0.5", 52311), ("10.0.0.1", 49676), 1000, 2000)
    frames = flow.handshake()
    frames += flow.send(0, W.dcerpc_bind(1, [(0, IFACE, 1, 0)]))
    frames += flow.send(1, W.dcerpc_bind_ack(1, "49676", 1))
    for n in range(calls):
        frames += flow.send(0, W.dcerpc_request(2 + n, 0, 26, bytes(stub)))
        frames += flow.send(1, W.dcerpc_response(2 + n, 0, bytes(stub)))
    return frames + flow.close()


def _write(path, frames):
    with open(path, "wb") as fh:
        pw = W.PcapWriter(fh)
        for i, fr in enumerate(frames):
            pw.frame(T0 + i * 100, fr)


def _read(path, **kw):
    with NetReader(path, **kw) as reader:
        events = list(reader.events())
        calls, _ = wire_calls(events)
    return events, calls, reader.stats


def _pairs(calls):
    return [(c.wire.call_id, c.opnum, c.interface, c.end is not None) for c in calls]


WANT = [(2 + n, 26, IFACE, True) for n in range(5)]


def test_in_order(tmp_path):
    _write(tmp_path / "a.pcap", _conversation())
    assert _pairs(_read(tmp_path / "a.pcap")[1]) == WANT


def test_out_of_order_retransmitted_and_overlapping_segments(tmp_path):
    frames = _conversation()
    rng = random.Random(7)
    body = frames[3:-3]
    # swap neighbours, duplicate some segments (retransmissions)
    for i in range(0, len(body) - 1, 3):
        body[i], body[i + 1] = body[i + 1], body[i]
    body = [f for fr in body for f in ([fr, fr] if rng.random() < 0.3 else [fr])]
    _write(tmp_path / "b.pcap", frames[:3] + body + frames[-3:])
    events, calls, stats = _read(tmp_path / "b.pcap")
    assert _pairs(calls) == WANT
    assert stats.retransmitted > 0 and stats.gaps == 0


def test_overlapping_resend_with_more_data(tmp_path):
    """A segment re-sent as part of a longer one: the overlap is trimmed, nothing doubled."""
    flow = W.TcpFlow(("10.0.0.5", 52311), ("10.0.0.1", 49676), 1000, 2000)
    frames = flow.handshake() + flow.send(0, W.dcerpc_bind(1, [(0, IFACE, 1, 0)]))
    frames += flow.send(1, W.dcerpc_bind_ack(1, "49676", 1))
    req = W.dcerpc_request(2, 0, 4, bytes(100))
    seq = flow.seq[0]
    first = W.ethernet_ipv4_tcp("10.0.0.5", 52311, "10.0.0.1", 49676, seq, flow.seq[1], 0x18, req[:50])
    whole = W.ethernet_ipv4_tcp("10.0.0.5", 52311, "10.0.0.1", 49676, seq, flow.seq[1], 0x18, req)
    flow.seq[0] += len(req)
    frames += [first, whole] + flow.send(1, W.dcerpc_response(2, 0, bytes(8)))
    _write(tmp_path / "o.pcap", frames)
    assert _pairs(_read(tmp_path / "o.pcap")[1]) == [(2, 4, IFACE, True)]


def test_lost_segment_gives_a_gap_and_decoding_resumes(tmp_path):
    frames = _conversation(stub=100)
    # drop the request of call 3 (one segment): its response is orphaned, the rest decodes
    lost = next(i for i, f in enumerate(frames) if struct.pack("<I", 4) in f[54 + 12:54 + 16] and f[54 + 2] == 0)
    del frames[lost]
    _write(tmp_path / "c.pcap", frames)
    _events, calls, stats = _read(tmp_path / "c.pcap", limits=Limits(stream_buffer=64))
    assert [c.wire.call_id for c in calls] == [2, 3, 5, 6]
    assert stats.gaps >= 1


def test_truncated_capture_keeps_what_was_read(tmp_path):
    _write(tmp_path / "d.pcap", _conversation())
    data = (tmp_path / "d.pcap").read_bytes()
    cut = len(data) - 300
    (tmp_path / "t.pcap").write_bytes(data[:cut])
    with NetReader(tmp_path / "t.pcap") as reader:
        events = []
        with pytest.raises(InputError) as err:
            for ev in reader.events():
                events.append(ev)
    assert "frame" in str(err.value) and "byte offset" in str(err.value) and "t.pcap" in str(err.value)
    calls, _ = wire_calls(events)
    assert len(calls) >= 4  # everything before the damage
    _e, calls2, stats = _read(tmp_path / "t.pcap", keep_going=True)
    assert len(calls2) == len(calls) and stats.stopped


def test_hostile_record_length(tmp_path):
    _write(tmp_path / "e.pcap", _conversation(calls=1))
    data = bytearray((tmp_path / "e.pcap").read_bytes())
    struct.pack_into("<I", data, 24 + 8, 0xFFFFFFF0)  # first record's caplen
    (tmp_path / "e.pcap").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"byte offset 24 .*frame 1: record claims 4294967280 bytes"):
        _read(tmp_path / "e.pcap")


def test_giant_and_bogus_fragment_lengths(tmp_path):
    flow = W.TcpFlow(("10.0.0.5", 52311), ("10.0.0.1", 49676), 1000, 2000)
    frames = flow.handshake() + flow.send(0, W.dcerpc_bind(1, [(0, IFACE, 1, 0)]))
    frames += flow.send(1, W.dcerpc_bind_ack(1, "49676", 1))
    bad = bytearray(W.dcerpc_request(2, 0, 4, bytes(16)))
    struct.pack_into("<H", bad, 8, 8)  # fragment length shorter than the header
    frames += flow.send(0, bytes(bad))
    giant = bytearray(W.dcerpc_request(3, 0, 4, bytes(16)))
    struct.pack_into("<H", giant, 8, 0xFFFF)  # claims 64 KiB that never come
    frames += flow.send(0, bytes(giant))
    frames += flow.send(0, W.dcerpc_request(4, 0, 5, bytes(16)))
    frames += flow.close()
    _write(tmp_path / "g.pcap", frames)
    events, calls, stats = _read(tmp_path / "g.pcap")
    assert stats.damage >= 1 and "fragment length 8" in stats.damage_examples[0]
    assert any(e.kind == "net.damage" for e in events)
    assert stats.summary("g.pcap").startswith("g.pcap: ")


def test_pcapng_with_two_interfaces_and_resolutions(tmp_path):
    frames = _conversation(calls=2)

    def block(btype, body):
        body += b"\0" * ((-len(body)) & 3)
        n = len(body) + 12
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

    out = io.BytesIO()
    out.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
    out.write(block(1, struct.pack("<HHI", 147, 0, 0)))  # an interface of another link type
    tsresol = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)  # nanoseconds
    out.write(block(1, struct.pack("<HHI", 1, 0, 0) + tsresol))
    for i, fr in enumerate(frames):
        ns = (1_700_000_000 * 10**9) + i * 1000
        out.write(block(6, struct.pack("<IIIII", 1, ns >> 32, ns & 0xFFFFFFFF, len(fr), len(fr)) + fr))
    (tmp_path / "n.pcapng").write_bytes(out.getvalue())
    _e, calls, _s = _read(tmp_path / "n.pcapng")
    assert [c.wire.call_id for c in calls] == [2, 3]
    assert calls[0].start == T0 + calls[0].wire.request_frame * 10 - 10  # 1 us per frame, exact ticks
