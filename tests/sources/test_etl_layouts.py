"""The ETL layout tables (rpctrace.sources.etl.layouts): their offsets are the documented ones, and
the C module's header _layouts.h is what tools/gen_c_layouts.py writes from them.

Documented offsets: ../shared/reference/etl-container-and-thread-ids.md §4 (CSwitch), §5.1
(WMI_BUFFER_HEADER), §5.2 (record headers, extended data items), §5.3 (TRACE_LOGFILE_HEADER,
64-bit offsets); etw-and-alpc-facts.md §3a (Registry v2).  The offsets are written out below so the
check runs on a clone with nothing beside it; where the reference file is present its tables are
also read and compared field by field.
"""

from __future__ import annotations

import importlib.util
import re
import struct
from pathlib import Path

import pytest

from rpctrace.knowledge import providers as P
from rpctrace.sources.etl import layouts as L
from rpctrace.sources.etl import manifest as M
from rpctrace.sources.layout import Layout

ROOT = Path(__file__).resolve().parents[2]
ETL_DIR = ROOT / "src" / "rpctrace" / "sources" / "etl"
REFERENCE = ROOT / ".." / "shared" / "reference" / "etl-container-and-thread-ids.md"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_c_layouts", ROOT / "tools" / "gen_c_layouts.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_c_header_is_generated_from_the_tables():
    gen = _generator()
    assert (ETL_DIR / "_layouts.h").read_text(encoding="utf-8") == gen.render(), (
        f"src/rpctrace/sources/etl/_layouts.h is out of date: run {gen.COMMAND} (then rebuild the C module)"
    )


def test_c_code_takes_header_offsets_from_the_macros():
    """No header field is read at a number written by hand: ``d + pos + 0x2E`` style reads of the
    record headers are what the generated macros replaced."""
    for name in ("_fastrecords.c", "_fastcalls.c"):
        text = (ETL_DIR / name).read_text(encoding="utf-8")
        assert '#include "_layouts.h"' in (ETL_DIR / "_fastrecords.h").read_text(encoding="utf-8")
        hand = re.findall(r"d \+ (?:pos|off|body) \+ (?:0x[0-9A-Fa-f]+|\d+)\b|d\[pos \+ (?:0x[0-9A-Fa-f]+|\d+)\]", text)
        assert not hand, f"{name} reads header or payload fields at hand-written offsets: {hand}"


def _fixed_runs(template: list) -> list[list[tuple[str, int]]]:
    """The runs of fixed-size fields of a manifest template, as (name, size) in order."""
    runs: list[list[tuple[str, int]]] = [[]]
    for name, ftype in template:
        size = M._SIZES.get(ftype) if not isinstance(ftype, tuple) else None
        if size is None:  # a string, an array: the run ends
            runs.append([])
        else:
            runs[-1].append((name, size))
    return [r for r in runs if r]


def _fields(layout: Layout) -> list[tuple[str, int]]:
    return [(name, struct.calcsize("<" + code)) for name, code in layout.fields if not code.endswith("x")]


@pytest.mark.parametrize("event_id", [5, 6, 7, 8])
def test_rpc_payload_layouts_are_the_manifest_templates_runs(event_id: int):
    """What the C code reads of RPC call events at fixed offsets (layouts.RPC_CALL_*) is what the
    Python decoder's manifest template says: the same fields, sizes and order."""
    _kind, _version, template = M.TEMPLATES[(P.RPC, event_id)]
    runs = _fixed_runs(template)
    if event_id in (5, 6):
        assert runs == [_fields(L.RPC_CALL_START), _fields(L.RPC_CALL_START_TAIL)]
        assert [name for name, _ in template][3:6] == ["network_address", "endpoint", "options"]
    else:
        assert runs == [_fields(L.RPC_CALL_STOP)]


# (layout, {field: documented offset}, documented size)
DOCUMENTED = [
    # §5.1: WMI_BUFFER_HEADER, 0x48 bytes
    (L.WMI_BUFFER_HEADER, {"buffer_size": 0x00, "saved_offset": 0x04, "current_offset": 0x08, "reference_count": 0x0C,
                           "time_stamp": 0x10, "sequence_number": 0x18, "clock_info": 0x20, "processor_index": 0x28,
                           "logger_id": 0x2A, "state": 0x2C, "offset": 0x30, "buffer_flag": 0x34,
                           "buffer_type": 0x36}, 0x48),
    # §5.2: SYSTEM64 (payload @0x20), COMPACT64 (@0x18), PERFINFO64 (@0x10)
    (L.SYSTEM_TRACE_HEADER, {"version": 0, "size": 4, "opcode": 6, "group": 7, "thread_id": 8, "process_id": 0x0C,
                             "time_stamp": 0x10, "kernel_time": 0x18, "user_time": 0x1C}, 0x20),
    (L.COMPACT_TRACE_HEADER, {"thread_id": 8, "process_id": 0x0C, "time_stamp": 0x10}, 0x18),
    (L.PERFINFO_TRACE_HEADER, {"version": 0, "size": 4, "opcode": 6, "group": 7, "time_stamp": 8}, 0x10),
    # §5.2: EVENT_HEADER64, user data (or extended items) @0x50
    (L.EVENT_HEADER, {"size": 0, "flags": 4, "event_property": 6, "thread_id": 8, "process_id": 0x0C,
                      "time_stamp": 0x10, "provider_id": 0x18, "id": 0x28, "version": 0x2A, "channel": 0x2B,
                      "level": 0x2C, "opcode": 0x2D, "task": 0x2E, "keyword": 0x30, "processor_time": 0x38,
                      "activity_id": 0x40}, 0x50),
    (L.EVENT_HEADER_EXTENDED_DATA_ITEM, {"item_size": 0, "ext_type": 2, "linkage": 4, "data_size": 6}, 8),
    # §5.3: TRACE_LOGFILE_HEADER up to CpuSpeedInMHz (then LoggerName at 0x38)
    (L.TRACE_LOGFILE_HEADER, {"buffer_size": 0, "version": 4, "provider_version": 8, "number_of_processors": 0x0C,
                              "end_time": 0x10, "timer_resolution": 0x18, "maximum_file_size": 0x1C,
                              "log_file_mode": 0x20, "buffers_written": 0x24, "start_buffers": 0x28,
                              "pointer_size": 0x2C, "events_lost": 0x30, "cpu_speed_in_mhz": 0x34}, 0x38),
    # §5.3: BootTime 0xF8 .. BuffersLost 0x114, names at 0x118 (64-bit), relative to BootTime
    (L.TRACE_LOGFILE_CLOCK, {"boot_time": 0, "perf_freq": 8, "start_time": 0x10, "reserved_flags": 0x18,
                             "buffers_lost": 0x1C}, 0x20),
    # §4: CSwitch (the 20 bytes read; Reserved at 20 is not)
    (L.CSWITCH, {"new_thread_id": 0, "old_thread_id": 4, "new_thread_priority": 8, "old_thread_priority": 9,
                 "previous_c_state": 10, "spare_byte": 11, "old_thread_wait_reason": 12, "old_thread_wait_mode": 13,
                 "old_thread_state": 14, "old_thread_wait_ideal_processor": 15, "new_thread_wait_time": 16}, 20),
    # etl-container-and-thread-ids.md §3: Registry v2: InitialTime @0, Status @8, Index @12, KeyHandle @16
    (L.REGISTRY, {"initial_time": 0, "status": 8, "index": 12}, 16),
]


@pytest.mark.parametrize("layout,offsets,size", DOCUMENTED, ids=[d[0].name for d in DOCUMENTED])
def test_layout_offsets_are_the_documented_ones(layout: Layout, offsets: dict[str, int], size: int):
    assert layout.size == size
    for field, at in offsets.items():
        assert layout.offset(field) == at, f"{layout.name}.{field}"


def test_logfile_clock_follows_the_time_zone_as_documented():
    # 64-bit: LoggerName 0x38, LogFileName 0x40, TIME_ZONE_INFORMATION 0x48 (0xAC bytes), 4 pad, BootTime 0xF8
    after_tz = L.TRACE_LOGFILE_HEADER.size + 2 * 8 + L.TIME_ZONE_INFORMATION_SIZE
    assert after_tz + (-after_tz) % 8 == 0xF8
    assert after_tz + (-after_tz) % 8 + L.TRACE_LOGFILE_CLOCK.size == 0x118  # LoggerName text (§5.3)


def test_system_and_compact_headers_share_their_head():
    """The record loops unpack COMPACT_TRACE_HEADER for SYSTEM records too (and the C walk reads
    the PERFINFO head at the SYSTEM offsets): the shared fields must sit at the same offsets."""
    for field, _code in L.COMPACT_TRACE_HEADER.fields:
        assert L.SYSTEM_TRACE_HEADER.offset(field) == L.COMPACT_TRACE_HEADER.offset(field)
    for field in ("version", "size", "opcode", "group"):
        assert L.PERFINFO_TRACE_HEADER.offset(field) == L.SYSTEM_TRACE_HEADER.offset(field)
    for field, _code in L.EVENT_TRACE_HEADER.fields:
        assert L.EVENT_INSTANCE_GUID_HEADER.offset(field) == L.EVENT_TRACE_HEADER.offset(field)


def test_layout_reads_and_builds_named_fields():
    head = L.WMI_BUFFER_HEADER.build(buffer_size=0x10000, saved_offset=0x1234, processor_index=3, buffer_flag=0x20)
    assert len(head) == 0x48
    fields = L.WMI_BUFFER_HEADER.read(head)
    assert (fields["buffer_size"], fields["saved_offset"], fields["processor_index"], fields["buffer_flag"]) == (
        0x10000, 0x1234, 3, 0x20)
    assert "reserved" not in fields  # padding: an offset, no value
    assert struct.unpack_from("<H", head, L.WMI_BUFFER_HEADER.offset("processor_index"))[0] == 3


# ---------------------------------------------------------------- against the reference file itself

def _snake(name: str) -> str:
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    nxt = text.find("\n### ", start + len(heading))
    return text[start: nxt if nxt >= 0 else len(text)]


def _reference() -> str:
    if not REFERENCE.exists():
        pytest.skip(f"reference file not present: {REFERENCE}")
    return REFERENCE.read_text(encoding="utf-8")


def test_buffer_and_logfile_headers_match_the_reference_tables():
    text = _reference()
    checked = 0
    # §5.1 rows: | 0x28 | u16 ProcessorIndex, u16 LoggerId | ...
    for off, cell in re.findall(r"^\| (0x[0-9A-F]+) \| ([^|]+)\|", _section(text, "### 5.1"), re.M):
        at = int(off, 16)
        for part in cell.split(","):
            m = re.match(r"\s*[ui](\d+) (\w+)", part)
            if not m or _snake(m[2]) not in L.WMI_BUFFER_HEADER.offsets:
                continue
            assert L.WMI_BUFFER_HEADER.offset(_snake(m[2])) == at, m[2]
            at += int(m[1]) // 8
            checked += 1
    # §5.3 rows (64-bit offsets): | 0x34 | u32 CpuSpeedInMHz | ... and | 0xF8 | u64 BootTime | ...
    for off, name in re.findall(r"^\| \**(0x[0-9A-F]+)\** \| [ui]\d+ (\w+) \|", _section(text, "### 5.3"), re.M):
        field = _snake(name)
        if field in L.TRACE_LOGFILE_HEADER.offsets:
            assert L.TRACE_LOGFILE_HEADER.offset(field) == int(off, 16), name
        elif field in L.TRACE_LOGFILE_CLOCK.offsets:
            assert 0xF8 + L.TRACE_LOGFILE_CLOCK.offset(field) == int(off, 16), name
        else:
            continue
        checked += 1
    assert checked >= 12 + 13 + 5


def test_record_headers_match_the_reference_table():
    text = _reference()
    rows = dict(re.findall(r"^\| (SYSTEM64|COMPACT64|PERFINFO64|EVENT_HEADER64)[^|]*\| ([^\n]+)\|$",
                           _section(text, "### 5.2"), re.M))
    alias = {"TID": "thread_id", "PID": "process_id", "Type": "header_type"}
    for key, layout in (("SYSTEM64", L.SYSTEM_TRACE_HEADER), ("COMPACT64", L.COMPACT_TRACE_HEADER),
                        ("PERFINFO64", L.PERFINFO_TRACE_HEADER), ("EVENT_HEADER64", L.EVENT_HEADER)):
        row = rows[key]
        assert int(re.search(r"@(0x[0-9A-F]+)", row)[1], 16) == layout.size, key  # where the payload starts
        fields = 0
        for part in row.split(";"):
            m = re.match(r"\s*(0x[0-9A-Fa-f]+|\d+) (?:(?:u8|u16|u32|u64|GUID) )?([A-Z][A-Za-z]+)", part)
            if not m:
                continue
            field = alias.get(m[2], _snake(m[2]))
            assert layout.offset(field) == int(m[1], 0), f"{key} {m[2]}"
            fields += 1
        assert fields >= {"COMPACT64": 0, "PERFINFO64": 1}.get(key, 8), key
