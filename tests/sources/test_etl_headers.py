"""Every record header form and the payloads the real samples lack, on hand-built files.

The builder here writes records from the documented layouts
(../shared/reference/etl-container-and-thread-ids.md §5) with struct, independently of the
reader; it covers what neither the real samples nor the trace writer produce: COMPACT headers,
classic full/instance headers, WPP message records, CSwitch, FileIo create + operation end,
Kernel-Registry 1/2/5, RPC 1/9/15, unknown event versions.
"""

from __future__ import annotations

import struct
import uuid

import pytest

from rpctrace.knowledge import providers as P
from rpctrace.sources.etl.reader import EtlReader
from rpctrace.trace import load

QPC0 = 10_000_000_000
START = 132_000_000_000_000_000  # a FILETIME
BUF = 0x1000


def sys_record(group, opcode, payload, tid, pid, ts, version=2, htype=0x02):
    size = 0x20 + len(payload)
    return struct.pack("<HBBHBBIIQII", version, htype, 0xC0, size, opcode, group, tid, pid, ts, 0, 0) + payload


def compact_record(group, opcode, payload, tid, pid, ts, version=2):
    size = 0x18 + len(payload)
    return struct.pack("<HBBHBBIIQ", version, 0x04, 0xC0, size, opcode, group, tid, pid, ts) + payload


def perf_record(group, opcode, payload, ts, version=2):
    size = 0x10 + len(payload)
    return struct.pack("<HBBHBBQ", version, 0x11, 0xC0, size, opcode, group, ts) + payload


def event_record(provider, eid, version, opcode, payload, tid, pid, ts, activity=b"\0" * 16, ext=b""):
    flags = 1 if ext else 0
    size = 0x50 + len(ext) + len(payload)
    head = struct.pack("<HBBHHIIQ16sHBBBBHQQ16s", size, 0x13, 0xC0, flags, 0, tid, pid, ts,
                       uuid.UUID(provider).bytes_le, eid, version, 0, 4, opcode, 0, 0, 0, activity)
    return head + ext + payload


def ext_item(ext_type, data, last=True):
    padded = data + b"\0" * (-len(data) % 8)
    return struct.pack("<HHHH", 8 + len(padded), ext_type, 0 if last else 1, len(data)) + padded


def classic_record(guid, opcode, payload, tid, pid, ts, instance=False):
    hsize = 0x48 if instance else 0x30
    size = hsize + len(payload)
    head = struct.pack("<HBBBBHIIQ16sII", size, 0x15 if instance else 0x14, 0xC0, opcode, 4, 1, tid, pid, ts,
                       uuid.UUID(guid).bytes_le, 0, 0)
    if instance:
        head += struct.pack("<II16s", 7, 3, uuid.UUID(guid).bytes_le)
    return head + payload


def message_record(payload):
    # WPP message: u16 size, u16 marker (0x90 flags), u16 id, u16 properties, then the payload
    size = 8 + len(payload)
    return struct.pack("<HHHH", size, 0x9000, 12, 0) + payload


def utf16z(text):
    return text.encode("utf-16-le") + b"\0\0"


def buffer(records, cpu, first=False):
    body = b"".join(r + b"\0" * (-len(r) % 8) for r in records)
    filled = 0x48 + len(body)
    assert filled <= BUF
    head = struct.pack("<IIIiQqQHHIIHH", BUF, filled, filled, 0, 0, 0, 0, cpu, 0, 3, filled,
                       0x01 if first else 0x20, 4 if first else 0) + b"\0" * 16
    return head + body + b"\xff" * (BUF - filled)


def logfile_header(buffers):
    p = struct.pack("<IIIIQIIIIIII I", BUF, 0x0501000A, 19041, 2, START + 10**8, 156250, 0, 1, buffers, 1, 8, 0, 3000)
    p += b"\0" * 16 + b"\0" * 0xAC  # two name pointers, TIME_ZONE_INFORMATION
    p += b"\0" * 4  # pad to 8
    p += struct.pack("<QQQII", START - 10**9, 10_000_000, START, 1, 0)
    p += utf16z("test logger") + utf16z("test.etl")
    return sys_record(0, 0, p, 1, 4, QPC0)


def write(tmp_path, cpu_records):
    bufs = [buffer([logfile_header(1 + len(cpu_records))], 0, first=True)]
    for cpu, records in cpu_records:
        bufs.append(buffer(records, cpu))
    path = tmp_path / "t.etl"
    path.write_bytes(b"".join(bufs))
    return path


def test_every_header_form(tmp_path):
    guid = "11111111-2222-3333-4444-555555555555"
    records = [
        compact_record(0x1A, 33, struct.pack("<I", 77), 100, 10, QPC0 + 10),  # ALPC send, compact header
        classic_record(guid, 5, b"abc", 101, 11, QPC0 + 20),
        classic_record(guid, 6, b"xyz", 102, 12, QPC0 + 30, instance=True),
        message_record(b"hello wpp"),
        sys_record(0x1A, 38, b"\1\2\3\4\5\6", 103, 13, QPC0 + 40),  # ALPC connect request: raw with length
    ]
    with EtlReader(write(tmp_path, [(1, records)])) as r:
        events = list(r.events())
        assert r.stats.damage == []
    kinds = [(e.kind, e.provider) for e in events]
    assert kinds[0] == ("trace.header", P.EVENT_TRACE)
    send = events[1]
    assert (send.kind, send.pid, send.tid, send.fields["message_id"], send.cpu) == ("alpc.send", 10, 100, 77, 1)
    classic, instance = events[2], events[3]
    assert (classic.provider, classic.opcode, classic.version, classic.fields["data"]) == (guid, 5, 1, b"abc")
    assert (instance.fields["instance_id"], instance.fields["parent_instance_id"]) == (7, 3)
    wpp = events[4]
    assert wpp.kind == "raw" and wpp.fields["header_type"] == 0x0F and b"hello wpp" in wpp.fields["data"]
    connect = events[5]
    assert connect.kind == "raw" and connect.fields["length"] == 6 and "error" not in connect.fields
    assert events[1].ts == START + 10  # 10 QPC ticks at 10 MHz after the header record


def test_clock_conversion_is_integer_exact(tmp_path):
    with EtlReader(write(tmp_path, [(0, [compact_record(0x1A, 33, struct.pack("<I", 1), 1, 1, QPC0 + 12345)])])) as r:
        ev = list(r.events())[1]
    assert ev.ts == START + 12345  # PerfFreq 10 MHz: one QPC tick is one 100 ns tick


def test_cswitch_and_perfinfo_attribution(tmp_path):
    thread_start = sys_record(5, 1, struct.pack("<II", 500, 600) + b"\0" * 64, 1, 4, QPC0 + 5, version=3)
    cswitch = perf_record(5, 36, struct.pack("<IIbbBbbbbbII", 600, 601, 8, 9, 0, 0, 5, 1, 5, 0, 42, 0), QPC0 + 6)
    with EtlReader(write(tmp_path, [(0, [thread_start, cswitch])])) as r:
        r.events()
    trace = load([tmp_path / "t.etl"])
    cs = [e for e in trace.events if e.kind == "thread.cswitch"][0]
    assert (cs.tid, cs.pid) == (600, 500)  # thread from the payload, process from the thread table
    assert (cs.fields["old_tid"], cs.fields["old_wait_reason"], cs.fields["new_wait_time"]) == (601, 5, 42)


def test_fileio_create_gets_its_status_from_operation_end(tmp_path):
    irp, fobj = 0xFFFF8000AAAA0000, 0xFFFF8000BBBB0000
    create = perf_record(4, 64, struct.pack("<QQIIII", irp, fobj, 700, 0x60, 0x80, 7) + utf16z("\\Device\\X\\a.txt"),
                         QPC0 + 10, version=3)
    op_end = perf_record(4, 76, struct.pack("<QQI", irp, 0, 0xC0000022), QPC0 + 11, version=3)
    trace = load([write(tmp_path, [(0, [create, op_end])])])
    (ev,) = [e for e in trace.events if e.kind == "file.create"]
    assert ev.tid == 700 and ev.fields["open_path"] == "\\Device\\X\\a.txt"
    assert ev.fields["status"] == 0xC0000022


def test_kernel_registry_manifest_events(tmp_path):
    kr = "70eb4f03-c1de-4f73-a051-33d13d5413bd"
    base = utf16z("\\REGISTRY\\MACHINE\\SOFTWARE")
    create = struct.pack("<QQII", 1, 2, 0xC0000022, 0) + base + utf16z("Contoso\\Key")
    setv = struct.pack("<QIII", 2, 0, 1, 4) + utf16z("\\REGISTRY\\MACHINE\\SOFTWARE\\Contoso\\Key") + utf16z("Val") + struct.pack("<H", 2) + b"\1\2"
    newer = struct.pack("<QQII", 1, 2, 0, 0) + base + utf16z("X")
    recs = [event_record(kr, 1, 0, 32, create, 9, 8, QPC0 + 1), event_record(kr, 5, 0, 36, setv, 9, 8, QPC0 + 2),
            event_record(kr, 2, 7, 33, newer, 9, 8, QPC0 + 3)]
    trace = load([write(tmp_path, [(0, recs)])])
    c, s, unknown = trace.events[1:]
    assert (c.kind, c.fields["status"], c.fields["path"]) == ("registry.create", 0xC0000022, "HKLM\\SOFTWARE\\Contoso\\Key")
    assert (s.kind, s.fields["value_name"], s.fields["captured_data"], s.fields["path"]) == (
        "registry.set_value", "Val", b"\1\2", "HKLM\\SOFTWARE\\Contoso\\Key")
    assert unknown.kind == "raw" and "version 7" in unknown.fields["note"]


def test_rpc_eeinfo_raise_unregister_and_extended_items(tmp_path):
    rpc = P.RPC
    eeinfo = (utf16z("svchost.exe") + utf16z("PC") + struct.pack("<I", 1234) + struct.pack("<8H", 2024, 1, 1, 2, 3, 4, 5, 6)
              + struct.pack("<IIHHH", 2, 1753, 500, 0, 2) + struct.pack("<QQ", 7, 8))
    iface = uuid.UUID("35464382-ad29-4881-9392-b43e55b8f7ac")
    unreg = iface.bytes_le + b"\0" * 16 + struct.pack("<II", 0x29, 1234)
    related = uuid.UUID("aaaaaaaa-0000-0000-0000-000000000001")
    ext = ext_item(1, related.bytes_le, last=False) + ext_item(6, struct.pack("<QQQ", 0, 0x7FF800001000, 0x7FF800002000))
    act = uuid.UUID("bbbbbbbb-0000-0000-0000-000000000002").bytes_le
    recs = [event_record(rpc, 1, 1, 2, eeinfo, 5, 6, QPC0 + 1),
            event_record(rpc, 9, 1, 0, struct.pack("<I", 5), 5, 6, QPC0 + 2, activity=act, ext=ext),
            event_record(rpc, 15, 1, 2, unreg, 5, 6, QPC0 + 3)]
    events = list(EtlReader(write(tmp_path, [(0, recs)])).events())
    ee, raise_, unregister = events[1:]
    assert ee.kind == "rpc.eeinfo" and ee.fields["status"] == 1753 and ee.fields["params"] == [7, 8]
    assert ee.fields["timestamp"] == "2024-01-02T03:04:05.006Z" and ee.fields["process_id"] == 1234
    assert raise_.kind == "rpc.raise" and raise_.fields["status"] == 5
    assert raise_.fields["related_activity_id"] == str(related)
    assert raise_.fields["activity_id"] == "bbbbbbbb-0000-0000-0000-000000000002"
    assert raise_.stack == (0x7FF800001000, 0x7FF800002000)
    assert unregister.kind == "rpc.interface_unregister" and unregister.fields["interface_uuid"] == str(iface)


@pytest.mark.parametrize("bad", [b"\xff" * 4, b"\x00" * 10])
def test_short_payloads_become_raw_with_the_error(tmp_path, bad):
    rec = sys_record(3, 1, bad, 1, 4, QPC0 + 1, version=4)  # a Process Start too short for its layout
    with EtlReader(write(tmp_path, [(0, [rec])])) as r:
        ev = list(r.events())[1]
        assert ev.kind == "raw" and ev.fields["error"] and r.stats.payload_errors == 1
