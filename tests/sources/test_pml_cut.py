"""A Process Monitor log cut anywhere still gives every event before the cut.

Procmon writes the events first and its tables after them (event offsets, processes, strings,
icons, hosts and ports).  A log cut at ten offsets, from inside the events to just its last
byte, must print each event that lies whole before the cut (what the lost tables would have given
stays unknown), then one line naming the damage, and exit 2.  Which events lie before a cut is
worked out here from the intact log's offsets array and each record's sizes.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from rpctrace.cli import main

DATA = Path(__file__).resolve().parents[1] / "data"
HEADER = struct.Struct("<IIIHHIQQIHHII")


def _run(path):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["events", str(path), "--format", "jsonl"])
    return rc, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue().splitlines()


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    data = zlib.decompress((DATA / "CompressedLogFileUTC64ProcessPML").read_bytes())
    count = struct.unpack_from("<I", data, 0x234)[0]
    events_at, array_at, process_at, strings_at, icons_at = struct.unpack_from("<5Q", data, 0x240)
    hosts_at = struct.unpack_from("<Q", data, 0x3A0)[0]
    offsets = [struct.unpack_from("<I", data, array_at + 5 * i)[0] for i in range(count)]
    ends = []
    for off in offsets:  # header, stack (8-byte pointers), details, and the extra details after them
        fields = HEADER.unpack_from(data, off)
        end = off + HEADER.size + 8 * fields[9] + fields[11]
        if fields[12]:
            end = off + fields[12] + 2 + struct.unpack_from("<H", data, off + fields[12])[0]
        ends.append((end, fields[7]))  # (end of the record, its FILETIME)
    path = tmp_path_factory.mktemp("pml") / "whole.pml"
    path.write_bytes(data)
    rc, whole, err = _run(path)
    assert rc == 0 and err == [] and len(whole) == count
    tables = {"events": events_at, "array": array_at, "process": process_at, "strings": strings_at,
              "icons": icons_at, "hosts": hosts_at}
    return data, ends, whole, tables


def _cuts(tables, size):
    ev = tables["events"]
    span = tables["array"] - ev
    return {
        "events 10%": ev + span // 10,
        "events 50%": ev + span // 2,
        "events 99%": ev + span * 99 // 100,
        "end of the events": tables["array"],
        "offsets array": tables["array"] + 100,
        "process table": tables["process"] + 1000,
        "strings table": tables["strings"] + 5000,
        "icon table": tables["icons"] + 100,
        "hosts table": tables["hosts"] + 3,
        "last byte": size - 1,
    }


@pytest.mark.parametrize("where", ["events 10%", "events 50%", "events 99%", "end of the events", "offsets array",
                                   "process table", "strings table", "icon table", "hosts table", "last byte"])
def test_cut_log_prints_the_events_before_the_cut(log, tmp_path, where):
    data, ends, whole, tables = log
    cut = _cuts(tables, len(data))[where]
    path = tmp_path / "cut.pml"
    path.write_bytes(data[:cut])
    rc, got, err = _run(path)
    assert rc == 2
    want = sorted(ts for end, ts in ends if end <= cut)
    assert [e["ts"] for e in got] == [e["ts"] for e in whole][: len(want)]
    assert len(got) == len(want) > 300
    assert len(err) == 1 and err[0].startswith(f"rpctrace: error: {path} at byte offset ")
    assert f"({len(want)} events read)" in err[0]
    if cut > tables["strings"]:  # the process table and the strings it names are there
        assert all(e["pid"] is not None for e in got)
        assert [(e["pid"], e["kind"]) for e in got] == [(e["pid"], e["kind"]) for e in whole]
    elif cut <= tables["process"]:  # no process table: what it would give is unknown, not made up
        assert all(e["pid"] is None for e in got)
        assert all(e["fields"].get("process_name") is None for e in got)


@pytest.mark.parametrize("where", ["events 50%", "end of the events", "process table"])
def test_streamed_reading_of_a_cut_log_counts_every_event_before_the_cut(log, tmp_path, where):
    """`check` reads the log as a stream (lists of events): the list that was being filled when the
    damage came is counted too, as many events as the error line says were read (it once lost up
    to 4,095 of them)."""
    data, ends, _whole, tables = log
    cut = _cuts(tables, len(data))[where]
    path = tmp_path / "cut.pml"
    path.write_bytes(data[:cut])
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["check", str(path), "--format", "json"])
    assert rc == 2
    want = sum(1 for end, _ts in ends if end <= cut)
    assert sum(json.loads(out.getvalue())["events"].values()) == want
    assert f"({want} events read)" in err.getvalue()
