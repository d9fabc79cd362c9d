"""Bad input never produces a traceback: one line naming the file and where, and exit status 2.

With --keep-going the events before the damage are still printed and the damage is counted.
"""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpctrace.cli import main


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [l for l in err.splitlines() if l.startswith("rpctrace: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_empty_file(tmp_path, capsys):
    path = tmp_path / "empty.etl"
    path.write_bytes(b"")
    code, out, err = run(capsys, "events", str(path))
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert str(path) in line and "empty" in line and "byte offset 0" in line


def test_wrong_magic(tmp_path, capsys):
    path = tmp_path / "notes.etl"
    path.write_bytes(b"this is a text file, not a trace\n" * 10)
    code, out, err = run(capsys, "events", str(path))
    assert code == 2
    assert str(path) in one_error_line(err)


def test_missing_file(tmp_path, capsys):
    code, _, err = run(capsys, "events", str(tmp_path / "nope.etl"))
    assert code == 2 and "nope.etl" in one_error_line(err)


def _count(out: str) -> int:
    return sum(1 for line in out.splitlines() if line.strip())


def test_truncated_buffer_strict_and_keep_going(samples, tmp_path, capsys):
    data = samples["ShutdownPerfDiagLogger.etl"].read_bytes()
    cut = 0x10000 * 20 + 0x1234  # in the middle of buffer 20
    path = tmp_path / "truncated.etl"
    path.write_bytes(data[:cut])

    code, out, err = run(capsys, "events", str(path), "--format", "jsonl")
    assert code == 2
    line = one_error_line(err)
    assert str(path) in line and f"byte offset {0x10000 * 20}" in line and "truncated" in line
    strict_count = _count(out)
    assert strict_count > 1000  # what was read before the damage is not lost

    code, out, err = run(capsys, "events", str(path), "--format", "jsonl", "--keep-going")
    assert code == 0
    assert "damaged region" in err and "Traceback" not in err
    assert _count(out) == strict_count
    for line in out.splitlines()[:50]:
        json.loads(line)


def test_garbage_record_inside_a_buffer(samples, tmp_path, capsys):
    data = bytearray(samples["ShutdownPerfDiagLogger.etl"].read_bytes())
    at = 0x10000 * 5 + 0x48 + 0x200
    # find the record boundary at or after `at` by walking the buffer's records
    pos = 0x10000 * 5 + 0x48
    while pos < at:
        marker = struct.unpack_from("<I", data, pos)[0]
        size = struct.unpack_from("<H", data, pos + 4)[0] if (marker >> 16) & 0xFF in (0x02, 0x11) else marker & 0xFFFF
        pos += (size + 7) & ~7
    data[pos : pos + 4] = b"\x13\x37\x42\x42"
    path = tmp_path / "garbage.etl"
    path.write_bytes(bytes(data))
    code, out, err = run(capsys, "events", str(path), "--keep-going", "--format", "jsonl")
    assert code == 0 and "damaged region" in err
    full = 17078
    got = _count(out)
    assert 15000 < got < full  # the rest of that one buffer is skipped, everything else read
    code, out, err = run(capsys, "events", str(path))
    assert code == 2
    assert f"byte offset {pos}" in one_error_line(err)


@pytest.mark.parametrize("field_offset,value", [(0x00, 0xFFFFFFF0), (0x00, 0x10), (0x30, 0xFFFFFFFF)])
def test_hostile_buffer_sizes(samples, tmp_path, capsys, field_offset, value):
    data = bytearray(samples["ShutdownPerfDiagLogger.etl"].read_bytes())
    struct.pack_into("<I", data, 0x10000 * 3 + field_offset, value)
    path = tmp_path / "hostile.etl"
    path.write_bytes(bytes(data))
    code, out, err = run(capsys, "events", str(path), "--keep-going")
    assert "Traceback" not in err
    if field_offset == 0:
        assert code == 0 and "damaged region" in err
        code, _, err = run(capsys, "events", str(path))
        assert code == 2 and f"byte offset {0x10000 * 3}" in one_error_line(err)
    else:
        assert code == 0  # a junk Offset falls back to SavedOffset and the 0xFF fill


def test_hostile_record_size(samples, tmp_path, capsys):
    data = bytearray(samples["ShutdownPerfDiagLogger.etl"].read_bytes())
    rec = 0x10000 * 2 + 0x48
    struct.pack_into("<H", data, rec + 4, 0xFFF8)  # first record claims 64 KiB
    path = tmp_path / "size.etl"
    path.write_bytes(bytes(data))
    code, _, err = run(capsys, "events", str(path))
    assert code == 2 and "does not fit" in one_error_line(err)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_files_never_crash(samples, tmp_path, capsys, data):
    """A CI-sized fuzz run: random byte flips and cuts of a real trace give 0 or 2, never a crash."""
    base = samples["lxcore_kernel.etl"].read_bytes()
    blob = bytearray(base)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    path = tmp_path / "fuzz.etl"
    path.write_bytes(bytes(blob[:cut]))
    for extra in ([], ["--keep-going"]):
        code, _, err = run(capsys, "events", str(path), "--format", "jsonl", *extra)
        assert code in (0, 2)
        assert "Traceback" not in err
        if code == 2:
            one_error_line(err)
