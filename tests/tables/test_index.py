"""`rpctrace index` and `rpctrace query` on writer traces: counts agree with `rpctrace calls`, bad
inputs are listed with their errors, interrupted and repeated runs give the same tables, compressed
inputs and directories are read, and `report`/`explain` find a call of the index."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("pyarrow", reason="rpctrace[index] (pyarrow) is not installed")
pytest.importorskip("duckdb", reason="rpctrace[index] (duckdb) is not installed")

from rpctrace import synth
from rpctrace.cli import main
from tables_helpers import read_index

#: (scenario, seed): small writer traces, every scenario
TRACES = [("audiosrv-access-denied", 1), ("busy-server", 2), ("nested", 3), ("lost-events", 4), ("async", 5),
          ("busy-server", 6)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A directory of writer traces in sub-folders, with a damaged trace and a file of no format."""
    root = tmp_path_factory.mktemp("corpus")
    for i, (scenario, seed) in enumerate(TRACES):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        synth.synthesize(scenario, sub / f"{scenario}-{seed}.etl", seed=seed, calls=12)
    whole = (root / "a" / "busy-server-2.etl").read_bytes()
    (root / "b" / "cut.etl").write_bytes(whole[:100_000])  # ends inside a buffer
    (root / "notes.txt").write_text("not a trace\n")
    return root


def _index(capsys, *args) -> tuple[int, dict]:
    code = main(["index", *map(str, args), "--format", "json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def _query(capsys, on, *args) -> list[dict]:
    assert main(["query", "--on", str(on), "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def clean_index(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "idx"
    assert main(["index", str(corpus), "-o", str(out), "--jobs", "2", "--format", "json"]) == 2
    return out


def test_calls_per_trace_equal_calls_json(clean_index, corpus, capsys):
    capsys.readouterr()
    rows = _query(capsys, clean_index, "SELECT t.path, count(c.call_id) AS n FROM traces t "
                                       "LEFT JOIN calls c USING (trace_id) GROUP BY t.path")
    counted = {Path(r["path"]).name: r["n"] for r in rows}
    assert set(counted) == {f"{s}-{seed}.etl" for s, seed in TRACES} | {"cut.etl"}
    total = 0
    for path in sorted(corpus.rglob("*.etl")):
        code = main(["calls", str(path), "--format", "json"])
        listed = json.loads(capsys.readouterr().out)
        assert counted[path.name] == len(listed), path.name
        assert code == (2 if path.name == "cut.etl" else 0)
        total += len(listed)
    assert total > 60
    # the failures of calls are those `calls --format json` lists
    path = corpus / "b" / "audiosrv-access-denied-1.etl"
    main(["calls", str(path), "--format", "json"])
    listed = json.loads(capsys.readouterr().out)
    rows = _query(capsys, clean_index, "SELECT f.call_id, f.kind, f.path, f.status FROM failures f JOIN traces t "
                                       f"USING (trace_id) WHERE t.path = '{path}' AND f.call_id IS NOT NULL "
                                       "ORDER BY f.call_id, f.ts")
    expected = [{"call_id": c["id"], "kind": f["kind"], "path": f["path"], "status": f["status"]}
                for c in listed for f in c["failures"]]
    assert rows == expected and rows


def test_bad_inputs_listed_and_the_rest_indexed(corpus, tmp_path, capsys):
    empty = tmp_path / "empty.etl"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 5000)
    half_gz = tmp_path / "half.etl.gz"
    half_gz.write_bytes(gzip.compress((corpus / "b" / "nested-3.etl").read_bytes())[:3000])
    code, summary = _index(capsys, corpus / "a", empty, junk, tmp_path / "missing.etl", half_gz, "-o",
                           tmp_path / "idx", "--jobs", "1")
    assert code == 2
    errors = {Path(b["input"]).name: b["error"] for b in summary["bad_inputs"]}
    assert set(errors) == {"empty.etl", "junk.bin", "missing.etl", "half.etl.gz"}
    assert "empty" in errors["empty.etl"] and "byte offset 0" in errors["empty.etl"]
    assert "unknown file format" in errors["junk.bin"]
    assert "no such file" in errors["missing.etl"]
    assert "truncated gzip stream" in errors["half.etl.gz"]
    assert all("\n" not in e for e in errors.values())
    assert summary["traces"] == 4 and summary["calls"] > 0  # a/ holds three traces; half.etl.gz's start is one
    rows = _query(capsys, tmp_path / "idx", "SELECT path, error FROM traces WHERE error IS NOT NULL")
    assert [Path(r["path"]).name for r in rows] == ["half.etl.gz"]
    # the text summary names them too
    assert main(["index", str(junk), "-o", str(tmp_path / "idx")]) == 2
    text = capsys.readouterr().out
    assert "1 bad input(s)" in text and "junk.bin" in text and "unknown file format" in text


def test_directories_and_compressed_inputs(corpus, tmp_path, capsys):
    plain = corpus / "b" / "nested-3.etl"
    data = plain.read_bytes()
    (tmp_path / "in" / "deep").mkdir(parents=True)
    (tmp_path / "in" / "deep" / "n.etl.xz").write_bytes(lzma.compress(data))
    (tmp_path / "in" / "n.bz2").write_bytes(bz2.compress((corpus / "a" / "busy-server-2.etl").read_bytes()))
    with zipfile.ZipFile(tmp_path / "in" / "two.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(corpus / "a" / "lost-events-4.etl", "traces/lost.etl")
        zf.writestr("readme.txt", "not a trace")
        zf.write(corpus / "b" / "async-5.etl", "async.etl")
    (tmp_path / "in" / "skip.gz").write_bytes(gzip.compress(b"plain text, no trace"))
    code, summary = _index(capsys, tmp_path / "in", "-o", tmp_path / "idx", "--jobs", "2")
    assert code == 0, summary
    assert summary["traces"] == 4 and summary["skipped_files"] == 2  # readme.txt in the zip, skip.gz
    rows = _query(capsys, tmp_path / "idx", "SELECT path, member, compression, input_bytes, calls FROM traces "
                                            "ORDER BY compression, member")
    assert [(Path(r["path"]).name, r["member"], r["compression"]) for r in rows] == [
        ("n.bz2", None, "bzip2"), ("n.etl.xz", None, "xz"), ("two.zip", "async.etl", "zip"),
        ("two.zip", "traces/lost.etl", "zip")]
    assert rows[1]["input_bytes"] == len(data)
    # the same trace, plain: the same trace id as its xz copy, so its rows replace those (no duplicate)
    code, summary = _index(capsys, plain, "-o", tmp_path / "idx", "--force")
    assert code == 0 and summary["traces"] == 1
    rows = _query(capsys, tmp_path / "idx", "SELECT count(*) AS n, count(DISTINCT trace_id) AS t FROM traces")
    assert rows == [{"n": 4, "t": 4}]
    # a bound on what a compressed input may become
    code, summary = _index(capsys, tmp_path / "in" / "deep" / "n.etl.xz", "-o", tmp_path / "idx2", "--max-unpacked",
                           "100K")
    assert code == 2 and "--max-unpacked" in summary["bad_inputs"][0]["error"]


def test_rerun_replaces_and_never_duplicates(corpus, clean_index, tmp_path, capsys):
    out = tmp_path / "idx"
    shutil.copytree(clean_index, out)
    before = read_index(out)
    code, summary = _index(capsys, corpus, "-o", out)
    assert code == 2 and summary["indexed_now"] == 0 and summary["already_indexed"] == len(TRACES) + 1
    assert [b["input"] for b in summary["bad_inputs"]] == [str(corpus / "b" / "cut.etl")]  # still listed
    code, summary = _index(capsys, corpus, "-o", out, "--force", "--jobs", "2")
    assert summary["indexed_now"] == len(TRACES) + 1
    assert read_index(out) == before
    assert before["calls"]["rows"] and len(before["traces"]["rows"]) == len(TRACES) + 1


def test_interrupted_run_resumes_to_the_same_tables(corpus, clean_index, tmp_path, capsys):
    """What a killed run leaves (committed file sets, files of a set not yet committed, temporary
    files) is resumed into exactly the tables of an uninterrupted run."""
    out = tmp_path / "idx"
    shutil.copytree(clean_index, out)
    manifests = sorted((out / "_manifests").iterdir())
    # killed before committing two traces: their files are written, their manifests are not
    for m in manifests[:2]:
        m.unlink()
    # ... and while writing a third: a temporary file half-written
    calls_file = next((out / "calls").rglob("*.parquet"))
    stale = calls_file.parent / f".{calls_file.name}.tmp-99999-abcd"
    stale.write_bytes(calls_file.read_bytes()[:100])
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    # meanwhile a query sees only committed file sets, never a partial one
    n = _query(capsys, out, "SELECT count(*) AS n FROM traces")[0]["n"]
    assert n == len(manifests) - 2
    code, summary = _index(capsys, corpus, "-o", out, "--jobs", "2")
    assert summary["indexed_now"] == 2
    assert read_index(out) == read_index(clean_index)
    assert not stale.exists()


def test_killed_process_resumes(corpus, clean_index, tmp_path):
    """A real kill: `rpctrace index` is killed (SIGKILL) after its first trace is committed."""
    out = tmp_path / "idx"
    proc = subprocess.Popen([sys.executable, "-m", "rpctrace", "index", str(corpus), "-o", str(out), "--jobs", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "_manifests").is_dir() and any((out / "_manifests").glob("*.json")):
                break
            time.sleep(0.01)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL  # killed mid-run, not finished
    committed = len(list((out / "_manifests").glob("*.json")))
    assert 1 <= committed < len(TRACES) + 1
    done = subprocess.run([sys.executable, "-m", "rpctrace", "index", str(corpus), "-o", str(out), "--format",
                           "json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    summary = json.loads(done.stdout)
    assert summary["already_indexed"] == committed and summary["traces"] == len(TRACES) + 1
    assert read_index(out) == read_index(clean_index)


def test_named_queries_and_formats(clean_index, capsys):
    rows = _query(capsys, clean_index, "--denied-key", "hklm\\software\\microsoft\\windows\\currentversion\\mmdevices\\*")
    assert len(rows) == 1 and rows[0]["service"] == "Audiosrv" and rows[0]["status_name"] == "STATUS_ACCESS_DENIED"
    assert rows[0]["host"].startswith("unnamed-")
    rows = _query(capsys, clean_index, "--procedure", "policyconfigsetdefaultendpoint")
    assert rows and rows[0]["client_image"] == "rundll32.exe" and rows[0]["failed"] == 1
    by_service = _query(capsys, clean_index, "--failed-by-service")
    total = _query(capsys, clean_index, "SELECT count(*) AS n FROM calls WHERE failed")[0]["n"]
    assert sum(r["failed_calls"] for r in by_service) == total > 0
    findings = _query(capsys, clean_index, "--findings")
    assert any(r["identity_service"] == "Audiosrv" for r in findings)
    lacking = _query(capsys, clean_index, "--lacking")
    lost = [r for r in lacking if "lost-events" in r["path"]]
    assert lost and any("the logger lost" in line for line in lost[0]["lacks"])
    assert _query(capsys, clean_index, "--hosts")
    # csv and table
    assert main(["query", "--on", str(clean_index), "--format", "csv", "SELECT trace_id, calls FROM traces"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "trace_id,calls" and len(lines) == len(TRACES) + 2
    assert main(["query", "--on", str(clean_index), "SELECT host, day, start FROM traces LIMIT 1"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split() == ["host", "day", "start"] and "(1 row)" in text and "Z" in text


def test_query_errors_are_one_line(clean_index, tmp_path, capsys):
    assert main(["query", "--on", str(clean_index), "SELEC nonsense"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rpctrace: error: query: ") and err.count("\n") == 1
    assert main(["query", "--on", str(tmp_path), "SELECT 1"]) == 2
    assert "not an index" in capsys.readouterr().err
    assert main(["query", "--on", str(clean_index)]) == 2
    assert "give either SQL or one named query" in capsys.readouterr().err
    assert main(["query", "--on", str(clean_index), "SELECT 1", "--hosts"]) == 2
    capsys.readouterr()


def test_empty_index_has_every_table(tmp_path, capsys):
    code, summary = _index(capsys, tmp_path / "nothing.etl", "-o", tmp_path / "idx")
    assert code == 2 and summary["traces"] == 0
    for table in ("calls", "failures", "processes", "traces"):
        assert _query(capsys, tmp_path / "idx", f"SELECT count(*) AS n, count(host) AS h FROM {table}") == [
            {"n": 0, "h": 0}]


def test_report_and_explain_take_a_call_from_the_index(clean_index, corpus, tmp_path, capsys):
    row = _query(capsys, clean_index, "SELECT trace_id, finding_call_id FROM failures WHERE finding AND "
                                      "identity_service = 'Audiosrv'")[0]
    spec = f"{row['trace_id'][:8]}:{row['finding_call_id']}"
    assert main(["explain", "--on", str(clean_index), "--call", spec, "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [f["call"] for f in found] == [row["finding_call_id"]]
    direct = corpus / "b" / "audiosrv-access-denied-1.etl"
    assert main(["explain", str(direct), "--call", str(row["finding_call_id"]), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == found
    page = tmp_path / "call.html"
    assert main(["report", "--on", str(clean_index), "--call", f"audiosrv-access-denied-1.etl:{row['finding_call_id']}",
                 "-o", str(page)]) == 0
    assert "PolicyConfigSetDefaultEndpoint" in page.read_text()
    capsys.readouterr()
    assert main(["explain", "--on", str(clean_index), "--call", "0000000000:1"]) == 2
    assert "no trace 0000000000" in capsys.readouterr().err
    assert main(["explain", "--on", str(clean_index), "--call", "7"]) == 2
    assert "TRACE:ID" in capsys.readouterr().err
    assert main(["explain", str(direct), "--on", str(clean_index), "--call", spec]) == 2
    assert "give no FILE" in capsys.readouterr().err


def test_changed_input_is_refused(corpus, tmp_path, capsys):
    trace = tmp_path / "t.etl"
    shutil.copy(corpus / "b" / "nested-3.etl", trace)
    code, summary = _index(capsys, trace, "-o", tmp_path / "idx")
    assert code == 0
    shutil.copy(corpus / "a" / "busy-server-2.etl", trace)
    assert main(["explain", "--on", str(tmp_path / "idx"), "--call", "t.etl:1"]) == 2
    assert "changed since it was indexed" in capsys.readouterr().err


def test_an_unwritable_index_is_one_line(corpus, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["index", str(corpus / "a"), "-o", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rpctrace: error: cannot write {blocker}") and err.count("\n") == 1
    # the index cannot take a table's folder: found by a worker process, reported once, no traceback
    out = tmp_path / "idx"
    out.mkdir()
    (out / "calls").write_text("not a folder")
    assert main(["index", str(corpus / "a"), "-o", str(out), "--jobs", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rpctrace: error: cannot write") and "Traceback" not in err and err.count("\n") == 1
