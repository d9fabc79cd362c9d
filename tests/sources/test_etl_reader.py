"""The ETL reader on real traces, checked against dissect.etl's header pass and payload decode."""

from __future__ import annotations

import collections
import struct
import uuid

import pytest

import oracle
from conftest import ETL_SAMPLES
from rpctrace.knowledge import providers as P
from rpctrace.sources.etl.reader import EtlReader, read_etl

# dissect.etl computes wall time in floating point from a base of StartTime - scale * QPC(header):
# at FILETIME magnitudes (~1.3e17) a double keeps ~16-32 ticks, so its times wander by up to a
# few microseconds.  rpctrace converts with integers; the comparison allows dissect's error.
DISSECT_FLOAT_TICKS = 40


def _ours(path):
    counts = collections.Counter()
    n = 0
    lo = hi = None
    eh_providers = set()
    with EtlReader(path) as reader:
        for ev in reader.events():
            n += 1
            manifest_like = ev.id != 0 or (ev.kind != "raw" and ev.provider in (P.RPC, P.KERNEL_REGISTRY))
            key = (ev.provider, "op", ev.opcode)
            counts[key] += 1
            if manifest_like:
                eh_providers.add(ev.provider)
            lo = ev.ts if lo is None or ev.ts < lo else lo
            hi = ev.ts if hi is None or ev.ts > hi else hi
        stats = reader.stats
    return n, lo, hi, counts, stats


@pytest.mark.parametrize("name", ETL_SAMPLES)
def test_matches_dissect_header_pass(samples, name):
    path = str(samples[name])
    expected = oracle.header_pass(path)
    n, lo, hi, _counts, stats = _ours(path)
    assert n == expected["count"]
    assert stats.damage == []
    assert abs(lo - expected["first"]) <= DISSECT_FLOAT_TICKS
    assert abs(hi - expected["last"]) <= DISSECT_FLOAT_TICKS

    # per (provider, id) for EVENT_HEADER records, per (provider, opcode) for the others
    ours = collections.Counter()
    with EtlReader(path) as reader:
        for ev in reader.events():
            fixed = ev.provider in expected["swapped"]
            ours[(ev.provider, "id", ev.id) if fixed and ev.kind != "trace.header" else (ev.provider, "op", ev.opcode)] += 1
    assert ours == expected["counts"]


@pytest.mark.parametrize("name", ["diaghub.user_paged.1.etl", "net.4.5.2.x64.etl", "AMSITrace.etl"])
def test_dissect_defect_byte_swapped_manifest_guids(samples, name):
    """dissect.etl defect: it builds EVENT_HEADER provider GUIDs with UUID(bytes=...) instead of
    bytes_le, so the GUID it prints is byte-swapped in its first three groups."""
    expected = oracle.header_pass(str(samples[name]))
    assert expected["swapped"], "sample has EVENT_HEADER records"
    for fixed, printed in expected["swapped"].items():
        assert str(uuid.UUID(bytes=uuid.UUID(fixed).bytes_le)) == printed
        if fixed != printed:
            break
    else:
        pytest.fail("expected at least one provider GUID that swapping changes")
    # rpctrace reports the Windows GUID: the CLR provider is known by its documented GUID
    providers = {ev.provider for ev in read_etl(samples[name])}
    assert set(expected["swapped"]) <= providers


def test_32bit_logger_with_compressed_buffer(samples):
    with EtlReader(samples["smallEtlFile.etl"]) as reader:
        events = list(reader.events())
        assert reader.pointer_size == 4
        assert reader.stats.compressed_buffers == 1
    assert [e.kind for e in events] == ["trace.header", "raw"]
    header, clr = events
    assert header.fields["logger_name"] == "PerfWatsonGCHeapETLSession688"
    assert header.fields["perf_freq"] == 3117777  # not 10 MHz: exercises the scaled clock
    # Microsoft-Windows-DotNETRuntimeRundown ModuleDCEnd (id 154), process 688
    assert clr.provider == "a669021c-c450-4609-a035-5af59af4df18"
    assert (clr.id, clr.pid, clr.tid, clr.version) == (154, 688, 4336, 2)
    assert "Microsoft.VisualStudio.Services.Client.dll" in clr.fields["data"].decode("utf-16-le", "replace")
    assert header.ts <= clr.ts <= header.fields["end_time"]


def test_net_sample_compressed_and_time_ordered(samples):
    path = samples["net.4.5.2.x64.etl"]
    with EtlReader(path) as reader:
        events = list(reader.events())
        stats = reader.stats
    assert stats.compressed_buffers == 359
    assert len(events) == 179474
    assert all(a.ts <= b.ts for a, b in zip(events, events[1:]))
    # the file itself is not in time order: raw file order goes back in time between buffers
    expected = oracle.header_pass(str(path))
    assert expected["count"] == len(events)


def test_file_order_is_not_time_order_in_real_files(samples):
    """The premise of the merge: consecutive buffers in a real file go back in time."""
    data = samples["ShutdownPerfDiagLogger.etl"].read_bytes()
    firsts = []
    offset = 0
    while offset < len(data):
        size = struct.unpack_from("<I", data, offset)[0]
        rec = offset + 0x48
        marker = struct.unpack_from("<I", data, rec)[0]
        htype = (marker >> 16) & 0xFF
        if offset and marker != 0xFFFFFFFF:
            firsts.append(struct.unpack_from("<Q", data, rec + (8 if htype in (0x10, 0x11) else 16))[0])
        offset += size
    assert any(b < a for a, b in zip(firsts, firsts[1:]))


def test_process_thread_image_fields_shutdown(samples):
    path = str(samples["ShutdownPerfDiagLogger.etl"])
    events = list(read_etl(path))
    rundown = [e for e in events if e.kind == "process.rundown"]
    by_pid = {e.pid: e for e in rundown}
    assert by_pid[4].fields["image"] == "System"
    assert by_pid[348].fields["image"] == "smss.exe"
    assert by_pid[348].fields["parent_pid"] == 4
    assert by_pid[348].fields["command_line"] == "\\SystemRoot\\System32\\smss.exe"
    assert by_pid[348].fields["user_sid"] == "S-1-5-18"
    assert by_pid[428].fields["command_line"].startswith("%SystemRoot%\\system32\\csrss.exe ObjectDirectory=\\Windows")
    # independent decode: dissect's Process_V4 structure for the same events, same order
    # (dissect yields file order, rpctrace time order: compare by process id)
    theirs = oracle.kernel_payloads(path, 3, {3}, limit=1000)
    ours = {e.pid: e for e in events if e.kind == "process.rundown" and e.opcode == 3}
    assert len(theirs) == len(ours) > 50
    for d in theirs:
        mine = ours[d["ProcessId"]]
        assert mine.fields["parent_pid"] == d["ParentId"]
        assert mine.fields["session_id"] == d["SessionId"]
        assert mine.fields["image"].encode("latin-1") == d["ImageFileName"]
        assert mine.fields["command_line"] == d["CommandLine"]
        assert mine.fields["process_key"] == d["UniqueProcessKey"]

    starts = [e for e in events if e.kind == "thread.start"]
    assert (starts[0].pid, starts[0].tid) == (504, 5060)
    assert starts[0].fields["win32_start_address"] == 0x7FF993BB3D60
    theirs = oracle.kernel_payloads(path, 5, {1}, limit=1000)
    by_tid = {e.tid: e for e in starts}
    assert len(theirs) == len(starts)
    for d in theirs:
        mine = by_tid[d["TThreadId"]]
        assert mine.pid == d["ProcessId"]
        assert mine.fields["win32_start_address"] == d["Win32StartAddr"]

    loads = [e for e in events if e.kind == "image.load"]
    assert loads[0].pid == 7064
    assert loads[0].fields["file_name"] == "\\Device\\HarddiskVolume3\\Windows\\SysWOW64\\coml2.dll"
    assert (loads[0].fields["image_base"], loads[0].fields["image_size"]) == (0x75610000, 385024)
    theirs = oracle.kernel_payloads(path, 0x03, {10}, limit=1000)  # hook 0x030A: Image Load under Process
    mine = collections.Counter((e.pid, e.fields["image_base"], e.fields["image_size"], e.fields["file_name"]) for e in loads)
    assert mine == collections.Counter((d["ProcessId"], d["ImageBase"], d["ImageSize"], d["FileName"]) for d in theirs)


def test_process_start_fields_diaghub(samples):
    events = list(read_etl(samples["diaghub.kernel.1.etl"]))
    starts = [e for e in events if e.kind == "process.start"]
    assert len(starts) == 18
    first = starts[0]
    assert (first.pid, first.fields["parent_pid"], first.fields["image"]) == (13540, 13160, "VsDebugConsole.exe")
    assert first.fields["user_sid"] == "S-1-5-21-2127521184-1604012920-1887927527-43956499"
    assert first.fields["session_id"] == 2
    assert first.tid is None  # the header holds the creator; TraceEvent reports -1 here too
    cmd = {e.fields["image"]: e.fields["command_line"] for e in starts}
    assert cmd["cmd.exe"] == "C:\\WINDOWS\\system32\\cmd.exe /c cls"
    assert cmd["conhost.exe"] == "\\??\\C:\\WINDOWS\\system32\\conhost.exe 0xffffffff -ForceV1"
    loads = [e for e in events if e.kind == "image.load"]
    assert loads[0].pid == 2140 and loads[0].fields["file_name"].endswith("\\locProject.exe")


def test_perfinfo_attribution_from_payload_and_thread_table(samples):
    """PERFINFO events carry no ids: SampledProfile takes its thread from the payload and its
    process from the thread table (here only End/DCEnd rundown names most threads: the
    look-ahead case); StackWalk from its own payload; nothing is made up."""
    from rpctrace.trace import load

    events = load([samples["net.4.5.2.x64.etl"]]).events
    threads = {}
    for e in events:
        if e.kind in ("thread.start", "thread.rundown", "thread.end"):
            threads.setdefault(e.tid, e.pid)
    assert len(threads) > 100
    samples_ = [e for e in events if e.kind == "sample"]
    assert len(samples_) > 1000
    for e in samples_:
        assert e.tid == e.fields["sampled_tid"]
        if e.tid in threads:
            assert e.pid == threads[e.tid]
        else:
            assert e.pid is None
    assert sum(e.pid is not None for e in samples_) > len(samples_) // 2
    stacks = [e for e in events if e.kind == "stack"]
    assert stacks and all((e.pid, e.tid) == (e.fields["stack_pid"], e.fields["stack_tid"]) for e in stacks)
    # image rundown of user processes (PERFINFO header, no thread in the payload): the process
    # comes from the payload, the thread stays unknown; kernel modules (pid 0) use a SYSTEM header
    rundown = [e for e in events if e.kind == "image.rundown"]
    assert all(e.pid is not None for e in rundown)
    assert sum(e.tid is None for e in rundown) > 3000


def test_stacks_attached_to_their_events(samples):
    from rpctrace.trace import load

    trace = load([samples["net.4.5.2.x64.etl"]])
    with_stack = [e for e in trace.events if e.stack]
    assert len(with_stack) > 1000
    # a StackWalk stack names its event by timestamp and thread: check the link holds for each
    # kernel event (manifest events such as the CLR's bring their stack in an extended data item)
    index = {(e.fields["event_ts"], e.fields["stack_tid"]) for e in trace.events if e.kind == "stack"}
    kernel_events = [e for e in with_stack if e.id == 0]
    assert len(kernel_events) > 1000
    assert all((e.ts, e.tid) in index for e in kernel_events)
    assert any(e.id != 0 for e in with_stack), "CLR events carry STACK_TRACE64 extended items"
    # frames resolve through the image tables to module+offset
    names = [trace.symbolize(e.pid, e.stack[-1]) for e in with_stack[:200]]
    assert sum("+0x" in n for n in names) > 100
