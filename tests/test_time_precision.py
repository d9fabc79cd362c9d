"""Times keep their 100 ns digit in every output, for every source.

A time is an integer count of 100 ns ticks from the reader to the printer; nothing may pass it
through a microsecond type.  For each source (ETL, XML export, Procmon PML, EVTX) the times in the
text and JSONL event listings, the calls JSON and the HTML report are compared with the source's
own 100 ns value, taken independently of rpctrace's reader: the writer's ground truth, the XML
text, Procmon's own CSV export, and the EVTX record bytes.  (Perfetto's JSON is in microsecond
floats by its format and is not checked.)
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import lzma
import re
import struct
import zlib
from pathlib import Path

import pytest

from rpctrace.cli import main
from rpctrace.model import iso_to_ticks, ticks_to_iso

DATA = Path(__file__).parent / "data"
SHARED_EVTX = Path(__file__).resolve().parents[1] / ".." / "shared" / "samples" / "evtx"
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def outputs(path: Path, tmp_path: Path, capsys) -> dict[str, str]:
    """What each command prints for ``path``: events text, events JSONL, calls JSON, the report."""
    out = {}
    for name, argv in (("text", ["events", str(path)]), ("jsonl", ["events", str(path), "--format", "jsonl"]),
                       ("json", ["calls", str(path), "--format", "json"])):
        assert main(argv) == 0, name
        out[name] = capsys.readouterr().out
    html = tmp_path / "r.html"
    assert main(["report", str(path), "-o", str(html)]) == 0
    capsys.readouterr()
    out["html"] = html.read_text(encoding="utf-8")
    return out


def no_short_times(out: dict[str, str]) -> None:
    """Every ISO time printed anywhere has all seven fractional digits."""
    for name, text in out.items():
        for m in ISO.finditer(text):
            assert m.group(1) is not None and len(m.group(1)) == 8, (name, m.group(0))


def listed(out: dict[str, str]) -> list[int]:
    """The event times of the JSONL listing, in order, and check the text listing has the same."""
    times = [json.loads(line)["ts"] for line in out["jsonl"].splitlines()]
    text = [line.split(" ", 1)[0] for line in out["text"].splitlines()]
    assert text == times
    return [iso_to_ticks(t) for t in times]


# --------------------------------------------------------------------------- ETL


def test_etl(tmp_path, capsys):
    from rpctrace.synth import synthesize

    etl, truth_path = tmp_path / "t.etl", tmp_path / "t.json"
    synthesize("audiosrv-access-denied", etl, truth_path, seed=2, calls=40)
    truth = json.loads(truth_path.read_text())
    out = outputs(etl, tmp_path, capsys)
    no_short_times(out)
    # the writer states each record's time to the tick (its clock is integer QPC at 10 MHz)
    want = sorted(e["ts"] for e in truth["events"])
    got = [json.loads(line)["ts"] for line in out["jsonl"].splitlines()]
    assert sorted(got) == want
    assert sum(iso_to_ticks(t) % 10 != 0 for t in got) > len(got) // 2
    listed(out)
    calls = json.loads(out["json"])
    truth_calls = {(c["client"]["tid"], c["start"]): c for c in truth["calls"]}
    matched = [c for c in calls if (c["client"]["tid"], c["start"]) in truth_calls]
    assert len(matched) > 30
    assert all(c["end"] == truth_calls[(c["client"]["tid"], c["start"])]["end"] for c in matched)
    assert want[0] in out["html"] and want[-1] in out["html"]


# --------------------------------------------------------------------------- XML export


def test_xml_export(tmp_path, capsys):
    from tests.sources.test_evtx import one_call_events

    path = tmp_path / "rpc.xml"
    path.write_text("<Events>" + "".join(one_call_events()) + "</Events>", encoding="utf-8")
    stamps = re.findall(r'SystemTime="([^"]+)"', path.read_text())
    assert "2024-05-01T10:00:01.1234567Z" in stamps
    out = outputs(path, tmp_path, capsys)
    no_short_times(out)
    assert listed(out) == sorted(iso_to_ticks(s) for s in stamps)
    calls = json.loads(out["json"])
    assert calls[0]["start"] == "2024-05-01T10:00:01.1234567Z"
    assert "2024-05-01T10:00:00.0000001Z" in out["html"]


# --------------------------------------------------------------------------- Procmon


def test_pml(tmp_path, capsys):
    pml = tmp_path / "p.pml"
    pml.write_bytes(zlib.decompress((DATA / "CompressedLogFileUTC64ProcessPML").read_bytes()))
    rows = list(csv.DictReader(io.StringIO(zlib.decompress((DATA / "CompressedLogFileUTC64ProcessCSV").read_bytes())
                                           .decode("utf-8-sig"))))
    # Procmon's own export of the same capture (in UTC): date and time of day, 7 digits
    want = []
    for r in rows:
        day = dt.datetime.strptime(r["Date & Time"], "%m/%d/%Y %I:%M:%S %p").date()
        clock, ampm = r["Time of Day"].split(" ")
        h, m, s = clock.split(":")
        whole, frac = s.split(".")
        hour = int(h) % 12 + (12 if ampm == "PM" else 0)
        base = dt.datetime(day.year, day.month, day.day, hour, int(m), int(whole), tzinfo=dt.timezone.utc)
        want.append(iso_to_ticks(base.strftime("%Y-%m-%dT%H:%M:%S")) + int(frac))
    out = outputs(pml, tmp_path, capsys)
    no_short_times(out)
    assert listed(out) == sorted(want)
    assert sum(t % 10 != 0 for t in want) > len(want) // 2
    assert ticks_to_iso(min(want)) in out["html"] and ticks_to_iso(max(want)) in out["html"]


# --------------------------------------------------------------------------- EVTX


def _evtx_event_times(data: bytes, printed: dict[int, int]) -> dict[int, int]:
    """record id -> the FILETIME in the record's bytes that lies in the microsecond the evtx
    package printed for it (the event's own TimeCreated; read without parsing BinXML)."""
    out = {}
    off = 0x1000
    while off + 0x200 <= len(data):
        chunk = data[off:off + 0x10000]
        pos = 0x200
        while chunk[pos:pos + 4] == b"**\x00\x00":
            size, rid = struct.unpack_from("<IQ", chunk, pos + 4)
            body = chunk[pos + 24:pos + size]  # after the record header (its write time at +16)
            hits = {struct.unpack_from("<Q", body, i)[0] for i in range(len(body) - 7)}
            hits = [h for h in hits if h // 10 == printed[rid] // 10]
            if len(hits) == 1:
                out[rid] = hits[0]
            pos += size
        off += 0x10000
    return out


def _printed(path: Path) -> dict[int, int]:
    import evtx

    out = {}
    for rec in evtx.PyEvtxParser(str(path)).records():
        stamp = re.search(r'SystemTime="([^"]+)"', rec["data"]).group(1)
        out[rec["event_record_id"]] = iso_to_ticks(stamp)
    return out


def test_evtx(tmp_path, capsys):
    path = tmp_path / "lps.evtx"
    path.write_bytes(lzma.decompress((DATA / "LanguagePackSetup-Operational.evtx.xz").read_bytes()))
    printed = _printed(path)
    assert all(t % 10 == 0 for t in printed.values()), "the package prints microseconds"
    truth = _evtx_event_times(path.read_bytes(), printed)
    assert len(truth) == len(printed) == 17
    out = outputs(path, tmp_path, capsys)
    no_short_times(out)
    by_record = {json.loads(line)["fields"]["record_id"]: json.loads(line)["ts"] for line in out["jsonl"].splitlines()}
    assert {rid: iso_to_ticks(ts) for rid, ts in by_record.items()} == truth
    assert sum(t % 10 != 0 for t in truth.values()) > 10
    assert ticks_to_iso(max(truth.values())) in out["html"]


def test_evtx_keeps_the_event_time_not_the_write_time(tmp_path, capsys):
    """A record whose header (write) time shares the event's microsecond but not its last digit:
    the event's own System/TimeCreated value is printed."""
    data = bytearray(lzma.decompress((DATA / "LanguagePackSetup-Operational.evtx.xz").read_bytes()))
    pos = 0x1000 + 0x200
    written = struct.unpack_from("<Q", data, pos + 16)[0]
    struct.pack_into("<Q", data, pos + 16, written // 10 * 10 + (written % 10 + 5) % 10)
    path = tmp_path / "patched.evtx"
    path.write_bytes(bytes(data))
    assert main(["events", str(path), "--format", "jsonl"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["ts"] == ticks_to_iso(written) == "2018-07-09T20:49:14.0577461Z"


@pytest.mark.skipif(not (SHARED_EVTX / "Lateral_Movement_LM_Remote_Service01_5145_svcctl.evtx").exists(),
                    reason="../shared/samples/evtx/Lateral_Movement_LM_Remote_Service01_5145_svcctl.evtx is absent "
                           "(GPL-3.0, not copied into the project)")
def test_evtx_write_time_in_another_microsecond(capsys):
    path = SHARED_EVTX / "Lateral_Movement_LM_Remote_Service01_5145_svcctl.evtx"
    assert main(["events", str(path), "--format", "jsonl"]) == 0
    ts = json.loads(capsys.readouterr().out.splitlines()[0])["ts"]
    # the event's TimeCreated is 28.9616288; the record was written at 28.9779402
    assert ts == "2019-03-19T00:41:28.9616288Z"
