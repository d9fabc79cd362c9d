"""What a person reads at a terminal: the calls table (durations with units, cuts marked), the
tree (process -> thread -> call -> operations), events text (ISO times, hex addresses), the
WinDbg script of an ordinary call, Perfetto's names, and the call mode of async and one-way calls."""

from __future__ import annotations

import json
import re

import pytest

from rpctrace import synth
from rpctrace.cli import main
from rpctrace.render.calls import TABLE_HEAD, duration_text, fit


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    d = tmp_path_factory.mktemp("terminal")
    out = {}
    for name in ("audiosrv-access-denied", "async", "nested"):
        etl, truth = d / f"{name}.etl", d / f"{name}.json"
        synth.synthesize(name, etl, truth, seed=7)
        out[name] = (etl, json.loads(truth.read_text()))
    return out


def test_duration_units():
    assert duration_text(None) == "-"
    assert duration_text(7.5) == "7.5 µs"
    assert duration_text(75.0) == "75 µs"
    assert duration_text(1250.0) == "1.25 ms"
    assert duration_text(43_210.0) == "43.2 ms"
    assert duration_text(3_200_000.0) == "3.20 s"
    assert duration_text(float("nan")) == "-"


def test_fit_marks_every_cut():
    assert fit("short", 10) == "short"
    assert fit("a" * 11, 10) == "a" * 9 + "…" and len(fit("a" * 11, 10)) == 10


def test_calls_table(traces, capsys):
    etl, _ = traces["audiosrv-access-denied"]
    assert main(["calls", str(etl)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == TABLE_HEAD and "duration" in lines[0] and "mode" in lines[0]
    rows = lines[1:]
    assert rows and all(re.search(r" \d+(\.\d+)? (µs|ms|s) ", r) or " - " in r for r in rows)
    # a name too long for its column ends with an ellipsis, never a silent cut
    assert main(["calls", str(etl), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    for rec, row in zip(records, rows):
        what = f"{rec['interface']['name'] or rec['interface']['uuid']}!{rec['procedure']}" if rec["procedure"] else None
        if what and len(what) > 60:
            assert what[:59] + "…" in row
        elif what:
            assert what in row
    with pytest.raises(SystemExit):
        main(["calls", "--help"])
    helptext = capsys.readouterr().out
    for column in ("duration", "mode", "status", "conf", "failures"):
        assert re.search(rf"^  {column}\s", helptext, re.M), column


def test_tree_is_process_thread_call_operations(traces, capsys):
    etl, truth = traces["audiosrv-access-denied"]
    assert main(["tree", str(etl), "--client", "rundll32"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("rundll32.exe pid ")
    assert re.fullmatch(r"  thread \d+", out[1])
    assert all(re.match(r"    call \d+  \S+!\S+  sync  LRPC \S+  \d+ µs  rpc status 0, result not in the trace  confidence \d\.\d\d$", line)
               for line in out if line.startswith("    call "))
    at = next(i for i, line in enumerate(out) if "!PolicyConfigSetDefaultEndpoint  sync  LRPC AudioClientRpc  " in line)
    assert out[at + 1].startswith("      -> server svchost.exe (Audiosrv) pid ")
    assert any(line.startswith("      FAILED registry.open ") and "STATUS_ACCESS_DENIED" in line for line in out)


def test_events_text_has_iso_times_and_hex_addresses(traces, capsys):
    etl, _ = traces["audiosrv-access-denied"]
    assert main(["events", str(etl)]) == 0
    text = capsys.readouterr().out.splitlines()
    header = text[0]
    assert re.search(r"end_time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", header)
    image = next(line for line in text if "image.rundown" in line)
    assert re.search(r"image_base=0x[0-9a-f]+ ", image) and re.search(r"default_base=0x[0-9a-f]+", image)
    stacked = next(line for line in text if "[stack " in line)
    assert re.search(r"\[stack \d+ frames: \w+\+0x[0-9a-f]+", stacked)
    assert main(["events", str(etl), "--format", "jsonl"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["fields"]["end_time"] in header  # the same ISO text in both forms


def test_windbg_script_of_an_ordinary_call_says_nothing_of_audiosrv(traces, capsys):
    etl, truth = traces["audiosrv-access-denied"]
    assert main(["calls", str(etl), "--format", "json"]) == 0
    calls = json.loads(capsys.readouterr().out)
    other = next(c for c in calls if c["procedure"] and c["server"]["service"] not in (None, "Audiosrv")
                 and c["client"]["image"] != "rundll32.exe")
    assert main(["windbg", str(etl), "--call", str(other["id"])]) == 0
    script = capsys.readouterr().out
    assert other["procedure"] in script and other["client"]["image"] in script and other["server"]["image"] in script
    for article_only in ("audiosrv!", "PolicyConfigSetDefaultEndpoint", "MMDevAPI", "0x80070005, E_ACCESSDENIED)"):
        assert article_only not in script, article_only
    incident = next(c for c in calls if c["procedure"] == "PolicyConfigSetDefaultEndpoint")
    assert main(["windbg", str(etl), "--call", str(incident["id"])]) == 0
    script = capsys.readouterr().out
    assert "the article:" in script and "audiosrv!PolicyConfigSetDefaultEndpoint" in script


def test_perfetto_names_procedures_and_services(traces, tmp_path, capsys):
    etl, _ = traces["audiosrv-access-denied"]
    out = tmp_path / "p.json"
    assert main(["export", str(etl), "-o", str(out)]) == 0
    capsys.readouterr()
    doc = json.loads(out.read_text())
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"}
    assert "svchost.exe (Audiosrv)" in names
    slices = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    target = [e for e in slices if e["args"]["procedure"] == "PolicyConfigSetDefaultEndpoint"]
    assert {e["name"].split(": ", 1)[1] for e in target} == {"PolicyConfigSetDefaultEndpoint"}


def test_async_and_one_way_calls_say_so_everywhere(traces, tmp_path, capsys):
    etl, truth = traces["async"]
    assert main(["calls", str(etl), "--format", "json"]) == 0
    calls = json.loads(capsys.readouterr().out)
    by_message = {(c["client"]["pid"], c["alpc_message_id"], c["start"]): c for c in calls}
    checked = {"sync": 0, "async": 0, "datagram": 0}
    for t in truth["calls"]:
        rec = by_message.get((t["client"]["pid"], t.get("alpc_message_id"), t["start"]))
        if rec is None:
            continue
        assert rec["mode"] == t["mode"], (t, rec)
        if t["mode"] == "async":
            assert rec["completion_tid"] == t["completion_tid"]
        checked[t["mode"]] += 1
    assert all(n >= 10 for n in checked.values()), checked
    assert main(["calls", str(etl)]) == 0
    table = capsys.readouterr().out
    assert re.search(r" async@\d+ ", table) and " datagram " in table and " sync " in table
    assert main(["tree", str(etl)]) == 0
    assert re.search(r"  async@\d+  ", capsys.readouterr().out)
    out = tmp_path / "a.json"
    assert main(["export", str(etl), "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert any(e["name"].startswith("completes call ") for e in doc["traceEvents"] if e["ph"] == "X")
    assert any(e["args"].get("mode") == "datagram" for e in doc["traceEvents"] if e["ph"] == "X")
    page = tmp_path / "a.html"
    assert main(["report", str(etl), "-o", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert "(completed on thread " in html and "one-way" in html
    capsys.readouterr()
