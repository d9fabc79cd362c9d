"""Nothing read from an .etl file is lost without a word.

* A file cut anywhere (at a buffer boundary, inside a buffer's header or its records) prints
  every event before the cut, then one line naming the file, the offset and what is missing, and
  exits 2.  The events expected are counted here by walking the whole file's buffers and records
  by their sizes, not by rpctrace's reader.
* Losses the logger recorded are told as Windows counts them, and agree with what the writer
  says it dropped: events discarded (EventsLost), buffers lost (BuffersLost, and the gaps they
  leave in the buffers' sequence numbers).
* Log file modes whose header does not count the buffers a file holds (circular, real-time,
  buffering, append, new-file) are not taken for damage.
"""

from __future__ import annotations

import io
import json
import struct
from contextlib import redirect_stderr, redirect_stdout

import pytest

from rpctrace.cli import main
from rpctrace.sources.etl.reader import EtlReader
from rpctrace.synth import synthesize

BUFFER = 0x10000


def _run(path) -> tuple[int, list[str], list[str]]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["events", str(path), "--format", "jsonl"])
    return rc, out.getvalue().splitlines(), err.getvalue().splitlines()


def _record_ends(data: bytes) -> list[list[int]]:
    """Per buffer, the file offsets where its records end (the writer's header types only:
    SYSTEM/COMPACT/PERFINFO carry their size at +4; EVENT_HEADER (0x12, 0x13) and the classic
    full and instance headers (0x0A, 0x0B, 0x14, 0x15: KernelTraceControl's ImageID/DbgID) in
    the marker's low half)."""
    out = []
    for start in range(0, len(data), BUFFER):
        filled = struct.unpack_from("<I", data, start + 0x30)[0]
        pos, ends = start + 0x48, []
        while pos < start + filled:
            marker = struct.unpack_from("<I", data, pos)[0]
            htype = (marker >> 16) & 0xFF
            size = marker & 0xFFFF if htype in (0x0A, 0x0B, 0x12, 0x13, 0x14, 0x15) else \
                struct.unpack_from("<H", data, pos + 4)[0]
            assert size > 0, f"record of header type {htype:#x} at {pos:#x}: not a type this walk knows"
            ends.append(pos + size)
            pos += (size + 7) & ~7
        out.append(ends)
    return out


def _plain(line: str) -> str:
    ev = json.loads(line)
    for key in ("stack", "stack_kernel", "stack_user", "stack_addresses"):
        ev.pop(key, None)
    return json.dumps(ev, sort_keys=True)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    path = tmp_path_factory.mktemp("cut") / "n.etl"
    synthesize("nested", path, None, seed=1, calls=60)
    data = path.read_bytes()
    assert len(data) % BUFFER == 0 and len(data) >= 6 * BUFFER  # the cuts below fall in buffers 0..5
    rc, lines, err = _run(path)
    assert rc == 0 and err == []
    return data, lines, _record_ends(data)


def _cuts():
    for k in range(1, 6):
        yield k * BUFFER  # a boundary: buffers 0..k-1 whole
        yield k * BUFFER + 0x20  # inside buffer k's header
        for frac in (0.1, 0.5, 0.97):
            yield k * BUFFER + 0x48 + int((BUFFER - 0x48) * frac)


@pytest.mark.parametrize("cut", list(_cuts()))
def test_cut_file_prints_what_was_read_and_names_the_damage(whole, tmp_path, cut):
    data, full, ends = whole
    path = tmp_path / "cut.etl"
    path.write_bytes(data[:cut])
    rc, lines, err = _run(path)
    assert rc == 2
    # every complete record before the cut, and the logfile header (record 1 of buffer 0)
    want = 1 + sum(sum(1 for e in buffer_ends if e <= cut) for buffer_ends in ends[1:])
    assert len(lines) == want
    remaining = [_plain(line) for line in full]
    for line in lines:  # the same events the whole file gives (a stack walk after the cut is not there)
        remaining.remove(_plain(line))
    assert len(err) == 1 and err[0].startswith(f"rpctrace: error: {path} at byte offset ")
    n = len(data) // BUFFER
    assert f"{n} its header says were written" in err[0] or f"of the {n} buffers" in err[0]
    assert f"({want - 1} events read)" in err[0] or f"({want} events read)" in err[0]


def test_cut_inside_the_logfile_header_buffer(whole, tmp_path):
    path = tmp_path / "cut.etl"
    path.write_bytes(whole[0][: BUFFER // 2])
    rc, lines, err = _run(path)
    assert rc == 2 and lines == [] and len(err) == 1 and str(path) in err[0]


def test_losses_agree_with_what_the_writer_dropped(tmp_path):
    etl, truth_path = tmp_path / "l.etl", tmp_path / "l.json"
    summary = synthesize("lost-events", etl, truth_path, seed=4, calls=600)
    dropped = json.loads(truth_path.read_text())["dropped"]
    assert dropped["buffers"] > 3 and dropped["events"] > 0 and dropped["buffer_records"] > 0
    with EtlReader(etl) as reader:
        n = sum(1 for _ in reader.events())
        stats = reader.stats
    assert n == summary["record_count"]  # everything the file holds is read
    assert stats.damage == [] and stats.buffers_missing == 0  # the file is whole
    assert stats.events_lost == dropped["events"]  # the header's EventsLost
    assert stats.buffers_lost == dropped["buffers"] == stats.buffers_lost_in_sequence  # header, per buffer
    assert stats.buffers_flagged_events_lost >= 1 and stats.buffers_flagged_lost >= 1
    rc, lines, err = _run(etl)
    assert rc == 0 and len(lines) == n
    assert err == [f"rpctrace: {etl}: the logger lost {dropped['events']} events and {dropped['buffers']} buffers"]


def _with_mode(data: bytes, mode: int) -> bytes:
    """The file with LogFileMode (logfile header payload +0x20, behind the buffer header and the
    0x20-byte SYSTEM record header) set to ``mode``."""
    at = 0x48 + 0x20 + 0x20
    return data[:at] + struct.pack("<I", mode) + data[at + 4:]


@pytest.mark.parametrize("mode,counted", [(0x1, True), (0x10001, True), (0x2, False), (0x101, False),
                                          (0x400, False), (0x9, False), (0x5, False)])
def test_log_file_modes(whole, tmp_path, mode, counted):
    data = whole[0]
    path = tmp_path / "m.etl"
    path.write_bytes(_with_mode(data, mode)[: 3 * BUFFER])
    rc, lines, err = _run(path)
    assert len(lines) == 1 + sum(len(e) for e in whole[2][1:3])
    if counted:
        assert rc == 2 and f"3 of the {len(data) // BUFFER} buffers" in err[0]
    else:  # BuffersWritten counts buffers such a file never kept: nothing to say
        assert rc == 0 and err == []
