"""Process, Thread and Image events with the classic header (EVENT_TRACE_HEADER), as Windows 7-era
traces hold them: the kernel provider GUIDs, MOF versions 0 to 4, 32- and 64-bit payloads.

Real files: google/syzygy's sawbuck test data (Windows 7 build 7600, Apache-2.0), Image versions
0-2 and Process versions 1-3, each in a 32-bit and a 64-bit payload layout, all in a logger
whose header says pointer size 4: the 64-bit files can only be read by checking the layout
against the payload length.  The expected values come from an independent decoding: dissect.etl
cuts the records (its own MOF decoding of these events fails), and the payloads are decoded here
from the MOF class layouts, written out per version below, not by rpctrace's code.

Thread events have no public Windows 7 file: they are tested on the writer's classic records in
every version, both pointer sizes, in loggers of both pointer sizes.
"""

from __future__ import annotations

import struct

import pytest

from conftest import CLASSIC_SAMPLES
from rpctrace.knowledge import providers as KP
from rpctrace.sources.etl.reader import EtlReader
from rpctrace.synth import payloads as P
from rpctrace.synth.etlfile import HDR_FULL32, HDR_FULL64, Clock, EtlWriter, classic_record
from rpctrace.trace import load


def _dissect_payloads(path):
    """(provider, opcode, version, pid, payload bytes) of every classic record, as dissect cuts them."""
    from dissect.etl.etl import ETL
    from dissect.etl.headers.headers import EventTraceHeader

    out = []
    with open(path, "rb") as fh:
        for record in ETL(fh):
            h = record.header
            if isinstance(h, EventTraceHeader):
                packed = h.header.Version  # Type, Level, Version as dissect packs them
                out.append((h.header.TimeDelta, str(h.provider_id), packed & 0xFF, packed >> 16, h.header.ProcessId,
                            bytes(h.payload)))
    out.sort(key=lambda r: r[0])  # rpctrace gives time order (stable: ties in file order)
    return [r[1:] for r in out]


def _utf16_until_end(payload: bytes, start: int) -> str:
    assert payload[-2:] == b"\x00\x00"
    return payload[start:-2].decode("utf-16-le")


def _image_by_hand(payload: bytes, version: int, ptr: int) -> dict:
    """Image_Load (V0), Image_V1, Image_V2 TypeGroup1 (MOF docs): the fields this test checks."""
    word = "<Q" if ptr == 8 else "<I"
    base = struct.unpack_from(word, payload, 0)[0]
    if version == 0:
        return {"image_base": base, "image_size": struct.unpack_from("<I", payload, ptr)[0],
                "file_name": _utf16_until_end(payload, ptr + 4)}
    out = {"image_base": base, "image_size": struct.unpack_from(word, payload, ptr)[0],
           "pid": struct.unpack_from("<I", payload, 2 * ptr)[0]}
    if version == 1:
        out["file_name"] = _utf16_until_end(payload, 2 * ptr + 4)
    else:
        out["checksum"], out["time_date_stamp"] = struct.unpack_from("<II", payload, 2 * ptr + 4)
        out["file_name"] = _utf16_until_end(payload, 3 * ptr + 32)
    return out


def _process_by_hand(payload: bytes, version: int, ptr: int) -> dict:
    """Process_V1..V3 TypeGroup1: key/page directory, ProcessId, ParentId, SessionId, ExitStatus,
    (V3: DirectoryTableBase), UserSID, ImageFileName, (V2+: CommandLine).  These files log
    UserSID as a TOKEN_USER whose SID pointer is 0, then the SID."""
    pid, ppid, session, status = struct.unpack_from("<IIIi", payload, ptr)
    at = ptr + 16 + (ptr if version >= 3 else 0)
    sid_at = at + 2 * ptr
    count = payload[sid_at + 1]
    subs = struct.unpack_from(f"<{count}I", payload, sid_at + 8)
    sid = f"S-{payload[sid_at]}-{int.from_bytes(payload[sid_at + 2:sid_at + 8], 'big')}" + "".join(
        f"-{s}" for s in subs)
    name_at = sid_at + 8 + 4 * count
    name_end = payload.index(b"\x00", name_at)
    out = {"pid": pid, "parent_pid": ppid, "session_id": session, "exit_status": status, "user_sid": sid,
           "image": payload[name_at:name_end].decode("ascii")}
    if version >= 2:
        out["command_line"] = _utf16_until_end(payload, name_end + 1)
    return out


@pytest.mark.parametrize("name", CLASSIC_SAMPLES)
def test_windows7_classic_kernel_events_decode(samples, name):
    path = samples[name]
    ptr = 8 if "_64_" in name else 4
    version = int(name.rsplit("_v", 1)[1][0])
    expected = [r for r in _dissect_payloads(path)]
    with EtlReader(path) as reader:
        assert reader.pointer_size == 4  # the logger's, whatever the payloads are
        events = [e for e in reader.events() if e.kind != "trace.header"]
        assert reader.stats.payload_errors == 0 and reader.stats.raw_records == 0
    assert len(events) == len(expected) > 0
    for ev, (provider, opcode, ver, header_pid, payload) in zip(events, expected):
        assert (ev.provider, ev.opcode, ev.version) == (provider, opcode, ver) and ver == version
        assert ev.fields["pointer_size"] == ptr
        if name.startswith("image"):
            assert ev.provider == KP.IMAGE and ev.kind in ("image.load", "image.unload", "image.rundown")
            want = _image_by_hand(payload, version, ptr)
            assert ev.pid == want.pop("pid", header_pid)  # V0 has no process id: the header's
            assert {k: ev.fields[k] for k in want} == want
        else:
            assert ev.provider == KP.PROCESS and ev.kind.startswith("process.")
            want = _process_by_hand(payload, version, ptr)
            assert ev.pid == want.pop("pid")
            assert {k: ev.fields[k] for k in want} == want


def test_names_reach_the_trace_tables(samples):
    """Image paths and process names appear where analyses look for them."""
    trace = load([samples["image_data_64_v1.etl"]])
    names = {img.file_name.rsplit("\\", 1)[-1] for img in trace.images[7644]}
    assert {"test_program.exe", "ntdll.dll", "kernel32.dll"} <= names
    base = next(i for i in trace.images[7644] if i.file_name.endswith("ntdll.dll"))
    assert (base.base, base.size) == (0x76E10000, 0x127000)  # read by hand: 00 00 e1 76, 00 70 12 00
    assert trace.symbolize(7644, 0x76E10000 + 0x1234) == "ntdll+0x1234"
    procs = load([samples["process_data_64_v3.etl"]]).processes
    assert procs[4].image == "System" and procs[0].image == "Idle"
    assert load([samples["process_data_32_v1.etl"]]).processes[1776].image == "notepad.exe"


def test_old_writer_layout_is_refused_not_misread(samples, tmp_path):
    """A payload that fits no documented layout (here: a 64-bit Image V1 whose size field was
    written 32 bits wide, as sawbuck's own writer did before 2011) stays raw with the reason."""
    path = tmp_path / "bad.etl"
    body = struct.pack("<QII", 0x1160000, 0x19E000, 4192) + "C:\\x\\test_program.exe\0".encode("utf-16-le")
    _write(path, 4, [(P.IMAGE_GUID, 3, 1, body)])
    ev = [e for e in load([path]).events if e.kind != "trace.header"][0]
    assert ev.kind == "raw" and "fits no layout" in ev.fields["error"]


# --------------------------------------------------------------------------- the writer's forms


def _write(path, logger_ptr, records, header=HDR_FULL32):
    clock = Clock(129488145994691628, 1_000_000)
    writer = EtlWriter(path, clock=clock, pointer_size=logger_ptr, cpus=1, buffer_size=0x2000,
                       os_build=7600, logger_name="Make Test Data Session")
    ts = clock.header_qpc + 10
    for guid, opcode, version, payload in records:
        writer.add(0, ts, classic_record(header, P.guid_le(guid), opcode, 4, version, 6452, 7644, ts, payload))
        ts += 10
    writer.close(ts + 10)


def _thread_case(enc, version, opcode):
    values = dict(pid=7644, tid=6452, stack_base=0xA000, stack_limit=0x9000, user_stack_base=0x7000,
                  user_stack_limit=0x6000, start_address=0x401000, win32_start_address=0x402000, teb_base=0x7FFD0000,
                  sub_process_tag=5, wait_mode=1, base_priority=8, page_priority=5, io_priority=2, thread_flags=0,
                  thread_name="worker" if version >= 4 else None)
    payload = enc.thread_version(version, opcode, **values)
    want = {}
    if version == 1 and opcode in (1, 3):
        want = {k: values[k] for k in ("stack_base", "stack_limit", "user_stack_base", "user_stack_limit",
                                       "start_address", "win32_start_address", "wait_mode")}
    elif version >= 2:
        want = {k: values[k] for k in ("stack_base", "stack_limit", "user_stack_base", "user_stack_limit",
                                       "win32_start_address", "teb_base", "sub_process_tag")}
        want["start_address" if version == 2 else "affinity"] = values["start_address"]
        if version >= 3:
            want.update({k: values[k] for k in ("base_priority", "page_priority", "io_priority", "thread_flags")})
        if version >= 4:
            want["thread_name"] = "worker"
    return payload, want


@pytest.mark.parametrize("logger_ptr", [4, 8])
@pytest.mark.parametrize("payload_ptr", [4, 8])
def test_writer_classic_forms_every_version(tmp_path, logger_ptr, payload_ptr):
    enc = P.PayloadEncoder(payload_ptr)
    records, wants = [], []
    for version in range(5):
        for opcode in (1, 2, 3, 4):
            payload, want = _thread_case(enc, version, opcode)
            records.append((P.THREAD_GUID, opcode, version, payload))
            wants.append(("thread", 7644, 6452, want))
            sid = "S-1-5-21-753675414-103939432-3550797041-1000"
            proc = dict(pid=1776, parent_pid=988, image="notepad.exe", user_sid=sid, psid_value=0x1000 * version,
                        process_key=0x8A001000, session_id=1, exit_status=259, directory_table_base=0x1AB000,
                        flags=2, command_line="notepad.exe C:\\a.txt", package_full_name="", application_id="")
            records.append((P.PROCESS_GUID, opcode, version, enc.process_version(version, **proc)))
            want = {"parent_pid": 988, "image": "notepad.exe", "user_sid": sid}
            if version >= 1:
                want.update(session_id=1, exit_status=259)
            if version == 1:
                want["directory_table_base"] = 0x1AB000
            if version >= 2:
                want.update(process_key=0x8A001000, command_line="notepad.exe C:\\a.txt")
            if version >= 3:
                want["directory_table_base"] = 0x1AB000
            wants.append(("process", 1776, None, want))
        if version <= 3:
            for opcode in (10, 2, 3, 4):
                img = dict(image_base=0x76E10000, image_size=0x127000, file_name="C:\\Windows\\system32\\ntdll.dll",
                           pid=7644, checksum=0x4791A7A6, time_date_stamp=0x4A5BDADB, default_base=0x76E10000,
                           signature_level=1 if version >= 3 else 0)
                records.append((P.IMAGE_GUID, opcode, version, enc.image_version(version, **img)))
                want = {"image_base": 0x76E10000, "image_size": 0x127000, "file_name": img["file_name"]}
                if version >= 2:
                    want.update(checksum=0x4791A7A6, time_date_stamp=0x4A5BDADB, default_base=0x76E10000)
                if version >= 3:
                    want["signature_level"] = 1
                wants.append(("image", 7644, 6452, want))
    path = tmp_path / "c.etl"
    _write(path, logger_ptr, records, HDR_FULL64 if payload_ptr == 8 else HDR_FULL32)
    events = [e for e in load([path]).events if e.kind != "trace.header"]
    assert len(events) == len(wants)
    for ev, (family, pid, tid, want) in zip(events, wants):
        assert ev.kind.startswith(family + "."), (ev.kind, ev.fields.get("error"))
        pointerless = family == "thread" and (ev.version == 0 or (ev.version == 1 and ev.opcode in (2, 4)))
        assert ev.fields["pointer_size"] == (logger_ptr if pointerless else payload_ptr), (family, ev.version, ev.opcode)
        assert (ev.pid, ev.tid) == (pid, tid)
        assert {k: ev.fields.get(k) for k in want} == want, (family, ev.version, ev.opcode)
    # dissect.etl cuts the writer's records the same way (an independent reader of the header)
    cut = _dissect_payloads(path)
    assert [(c[0], c[1], c[2]) for c in cut] == [(r[0], r[1], r[2]) for r in records]
    assert [c[4] for c in cut] == [r[3] for r in records]
