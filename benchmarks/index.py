"""`rpctrace index` over a thousand writer traces: throughput, agreement, damage, interruption.

    python benchmarks/index.py [--traces 1000] [--calls 12] [--jobs 2] [--keep DIR] [--format table|json]

1. Writes ``--traces`` inputs with the trace writer (not timed): every scenario in turn, seeds
   1.., ``--calls`` background calls each (small traces, so the whole run takes minutes), five of
   them damaged in five different ways (truncated inside a buffer, a buffer header with an
   impossible size, a zeroed buffer header, a gzip copy cut short, a file cut inside its
   logfile header buffer).
2. Runs ``rpctrace index DIR -o IDX --jobs N`` in a fresh process and times it: traces/s and
   calls/s, and reads the summary it prints (``--format json``).
3. Checks that a query counting calls per trace (``rpctrace query``) equals, trace by trace and
   in sum, the count of ``rpctrace calls FILE --format json`` (run in-process on every input, on
   ``--jobs`` processes).
4. Checks that the five damaged files, and only they, are listed as bad with their errors.
5. Interrupts a second run into a fresh directory (SIGKILL once a third of the traces are
   committed), runs it again, and checks that the tables are identical to those of step 2.

Exit status 1 when a check fails.  The figures go to docs/performance.md with the command and
the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

SCENARIOS = ("audiosrv-access-denied", "busy-server", "nested", "lost-events", "async")
BUFFER = 65536  # the writer's buffer size


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["RPCTRACE_PROGRESS"] = "0"
    return env


def _write_one(job: tuple[int, str, int, str]) -> str:
    from rpctrace import synth

    i, scenario, calls, folder = job
    path = Path(folder) / f"{i // 100:02d}" / f"{i:04d}-{scenario}.etl"
    path.parent.mkdir(parents=True, exist_ok=True)
    synth.synthesize(scenario, path, seed=i + 1, calls=calls)
    return str(path)


def _damage(paths: list[str]) -> dict[str, str]:
    """Damage five traces in five ways; name -> how."""
    chosen = [paths[len(paths) * k // 5 + 7 + k] for k in range(5)]  # five scenarios
    how = {}
    p = Path(chosen[0])  # cut inside the third buffer
    p.write_bytes(p.read_bytes()[: 2 * BUFFER + 5000])
    how[p.name] = "truncated inside a buffer"
    p = Path(chosen[1])  # buffer 2 claims an impossible size
    data = bytearray(p.read_bytes())
    data[2 * BUFFER: 2 * BUFFER + 4] = (0x7FFFFFF0).to_bytes(4, "little")
    p.write_bytes(bytes(data))
    how[p.name] = "a buffer header with an impossible size"
    p = Path(chosen[2])  # buffer 1's header zeroed
    data = bytearray(p.read_bytes())
    data[BUFFER: BUFFER + 0x48] = bytes(0x48)
    p.write_bytes(bytes(data))
    how[p.name] = "a zeroed buffer header"
    p = Path(chosen[3])  # gzip copy, cut short
    gz = p.with_suffix(".etl.gz")
    gz.write_bytes(gzip.compress(p.read_bytes())[:20_000])
    p.unlink()
    how[gz.name] = "a gzip copy cut short"
    p = Path(chosen[4])  # cut inside the first (logfile header) buffer
    p.write_bytes(p.read_bytes()[:3000])
    how[p.name] = "cut inside its logfile header buffer"
    return how


def _calls_json_count(path: str) -> tuple[str, int, int]:
    """``rpctrace calls PATH --format json``, in this process: (path, calls listed, exit status)."""
    from rpctrace.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["calls", path, "--format", "json"])
    return path, len(json.loads(out.getvalue() or "[]")), code


def _index(folder: str, out: str, jobs: int) -> tuple[dict, float]:
    cmd = [sys.executable, "-m", "rpctrace", "index", folder, "-o", out, "--jobs", str(jobs), "--format", "json"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    wall = time.perf_counter() - t0
    if done.returncode not in (0, 2):
        raise SystemExit(f"rpctrace index failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout), wall


def _query(out: str, sql: str) -> list[dict]:
    cmd = [sys.executable, "-m", "rpctrace", "query", sql, "--on", out, "--format", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    if done.returncode:
        raise SystemExit(f"rpctrace query failed: {done.stderr}")
    return json.loads(done.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", type=int, default=1000, help="inputs to write (five of them damaged)")
    ap.add_argument("--calls", type=int, default=12, help="background calls per trace")
    ap.add_argument("--jobs", type=int, default=2, help="rpctrace index --jobs")
    ap.add_argument("--keep", metavar="DIR", help="write the inputs and indexes here (kept; inputs reused)")
    ap.add_argument("--format", choices=("table", "json"), default="table")
    args = ap.parse_args()
    from tables_helpers import read_index

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="rpctrace-index-bench-"))
    inputs = work / "inputs"
    marker = inputs / ".damage.json"
    if marker.exists():
        damaged = json.loads(marker.read_text())
    else:
        t0 = time.perf_counter()
        jobs = [(i, SCENARIOS[i % len(SCENARIOS)], args.calls, str(inputs)) for i in range(args.traces)]
        with ProcessPoolExecutor(args.jobs) as pool:
            paths = sorted(pool.map(_write_one, jobs, chunksize=16))
        damaged = _damage(paths)
        marker.write_text(json.dumps(damaged))
        print(f"wrote {args.traces} inputs in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    files = sorted(str(p) for p in inputs.rglob("*") if p.is_file() and not p.name.startswith("."))
    size = sum(os.path.getsize(f) for f in files)

    # 2. the timed run
    full = work / "index-full"
    if full.exists():
        import shutil

        shutil.rmtree(full)
    load_before = os.getloadavg()[0]
    summary, wall = _index(str(inputs), str(full), args.jobs)
    load_after = os.getloadavg()[0]
    failures: list[str] = []

    # 3. calls per trace: the index against `rpctrace calls --format json`
    rows = _query(str(full), "SELECT t.path, count(c.call_id) AS n FROM traces t LEFT JOIN calls c USING (trace_id) "
                             "GROUP BY t.path")
    indexed = {r["path"]: r["n"] for r in rows}
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        listed = list(pool.map(_calls_json_count, [f for f in files if not f.endswith(".gz")], chunksize=8))
    check_s = time.perf_counter() - t0
    listed_total = 0
    for path, n, _code in listed:
        listed_total += n
        if indexed.get(os.path.abspath(path), 0) != n:
            failures.append(f"{path}: index has {indexed.get(os.path.abspath(path))} calls, calls --format json {n}")
    query_total = _query(str(full), "SELECT count(*) AS n FROM calls")[0]["n"]
    if query_total != listed_total:
        failures.append(f"calls in the index {query_total} != sum of calls --format json {listed_total}")

    # 4. the damaged files, listed with their errors
    bad = {Path(b["input"]).name: b["error"] for b in summary["bad_inputs"]}
    if set(bad) != set(damaged):
        failures.append(f"bad inputs {sorted(bad)} != damaged {sorted(damaged)}")

    # 5. interrupted, then run again: the same tables
    cut = work / "index-interrupted"
    if cut.exists():
        import shutil

        shutil.rmtree(cut)
    proc = subprocess.Popen([sys.executable, "-m", "rpctrace", "index", str(inputs), "-o", str(cut), "--jobs",
                             str(args.jobs)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                            start_new_session=True)
    target = summary["traces"] // 3
    while proc.poll() is None:
        folder = cut / "_manifests"
        if folder.is_dir() and len(os.listdir(folder)) >= target:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    committed = len(list((cut / "_manifests").glob("*.json")))
    resumed, resumed_wall = _index(str(inputs), str(cut), args.jobs)
    same = read_index(cut) == read_index(full)
    if not same:
        failures.append("the interrupted and resumed index differs from the uninterrupted one")
    if resumed["already_indexed"] != committed:
        failures.append(f"resumed run skipped {resumed['already_indexed']} traces, {committed} were committed")

    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                   f"{platform.system()} {platform.release()}",
        "command": f"rpctrace index {inputs} -o {full} --jobs {args.jobs}",
        "inputs": len(files), "input_mb": round(size / 1e6, 1), "traces": summary["traces"],
        "calls": summary["calls"], "failures": summary["failures"], "wall_s": round(wall, 2),
        "load_average_before_after": [round(load_before, 2), round(load_after, 2)],
        "traces_per_s": round(summary["traces"] / wall, 1), "calls_per_s": round(summary["calls"] / wall),
        "calls_json_sum": listed_total, "calls_json_check_s": round(check_s, 1),
        "bad_inputs": summary["bad_inputs"], "damage": damaged,
        "interrupted_after": committed, "resumed_wall_s": round(resumed_wall, 2), "resumed_identical": same,
        "failures_of_checks": failures,
    }
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        print(f"machine: {result['machine']}")
        print(f"command: {result['command']}")
        print(f"inputs: {result['inputs']} ({result['input_mb']} MB), traces indexed: {result['traces']}, "
              f"calls: {result['calls']:,}, failures: {result['failures']:,}")
        print(f"wall: {result['wall_s']} s -> {result['traces_per_s']} traces/s, {result['calls_per_s']:,} calls/s "
              f"(1-minute load average {load_before:.1f} before, {load_after:.1f} after: the machine is shared)")
        print(f"calls per trace = calls --format json: {'yes' if not any('calls' in f for f in failures) else 'NO'} "
              f"(sum {listed_total:,}, query {query_total:,})")
        print("bad inputs:")
        for b in summary["bad_inputs"]:
            print(f"  [{damaged.get(Path(b['input']).name, 'NOT DAMAGED BY US')}] {b['error']}")
        print(f"interrupted after {committed} committed traces; resumed in {resumed_wall:.1f} s; tables identical: "
              f"{'yes' if same else 'NO'}")
        for f in failures:
            print(f"CHECK FAILED: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
