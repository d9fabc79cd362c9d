"""End-to-end cost of `rpctrace calls` (and `rpctrace report`) on busy-server traces: time, peak
memory, cost per event, against the targets of issues 12 and 19.

    python benchmarks/correlate.py [--sizes 1000000,10000000] [--keep DIR] [--repeat N] [--python] [--pure]
                                   [--format table] [--report] [--report-calls 150000] [--no-calls]

For each size it writes a busy-server trace with the trace writer (not timed; ``rpctrace synth
busy-server --clients 256 --events N --seed 1``), then runs the real command, ``rpctrace calls
FILE`` with its output going to a file, in a fresh process, and reports its wall time, its CPU
time, its peak resident memory (the child's ``ru_maxrss``), events/s, calls/s and the cost per
event relative to the smallest size (linear cost shows as a ratio near 1.00).  With ``--repeat
N`` each run is made N times and the fastest kept (the figures of one run move by ~20 % on a
shared machine); the load average before each run is printed, so a figure can be read with the
load it was measured under.

Variants, side by side: the C engine (the default build: decoding, merge, assembly and
correlation in one C pass, rpctrace/correlate/fast.py); ``--python`` the Python stream and
correlator over the C record loop (``RPCTRACE_ENGINE=0``); ``--pure`` everything in Python
(``RPCTRACE_PURE=1``).

``--report`` also times ``rpctrace report FILE -o OUT.html`` on a trace of ``--report-calls``
calls (``rpctrace synth busy-server --calls 150000 --clients 256 --seed 1``, about 2 million
events), the same way.  Targets (docs/performance.md): calls on 10M events <= 12 s and 600 MB;
report of 150,000 calls < 5 s and 400 MB.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


CALLS_TARGET = (12.0, 600.0)  # issue 19: rpctrace calls on 10M events, seconds and MB
REPORT_TARGET = (5.0, 400.0)  # issue 12: rpctrace report of 150,000 calls


def _load() -> str:
    try:
        return "load %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "load ?"


def run(command: list[str], out: str | None, env_extra: dict[str, str]) -> dict:
    """Run ``rpctrace COMMAND`` in a fresh process (stdout to ``out``): wall and CPU time, peak RSS."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra)
    cmd = [sys.executable, "-m", "rpctrace.cli", *command]
    load = _load()
    t0 = time.perf_counter()
    with open(out or os.devnull, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.PIPE, env=env)
        _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode not in (0,):
        raise SystemExit(f"rpctrace {command[0]} failed ({proc.returncode}): {err[-2000:]}")
    return {"wall_s": wall, "peak_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime,
            "load": load}


def run_calls(path: str, out: str, fmt: str, env_extra: dict[str, str]) -> dict:
    r = run(["calls", "--format", fmt, path], out, env_extra)
    with open(out, "rb") as fh:
        lines = sum(1 for _ in fh)
    r["calls"] = lines - 1 if fmt == "table" else lines
    return r


def best(runs: list[dict]) -> dict:
    r = dict(min(runs, key=lambda x: x["wall_s"]))
    r["peak_mb"] = max(x["peak_mb"] for x in runs)
    r["cpu_min_s"] = min(x["cpu_s"] for x in runs)
    return r


def verdict(r: dict, target: tuple[float, float]) -> str:
    ok = r["wall_s"] <= target[0] and r["peak_mb"] <= target[1]
    return f"target <= {target[0]:g} s and <= {target[1]:g} MB: {'met' if ok else 'NOT met'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--keep", help="folder for the generated traces (default: a temporary one)")
    parser.add_argument("--python", action="store_true", help="also run the Python stream over the C record loop")
    parser.add_argument("--pure", action="store_true", help="also run everything in pure Python")
    parser.add_argument("--format", default="table", choices=("table", "jsonl", "json"))
    parser.add_argument("--repeat", type=int, default=1, help="runs per size and variant; the fastest is kept")
    parser.add_argument("--report", action="store_true", help="also time rpctrace report (issue 12)")
    parser.add_argument("--report-calls", type=int, default=150_000)
    parser.add_argument("--no-calls", action="store_true", help="only the report")
    args = parser.parse_args()
    from rpctrace.correlate import fast
    from rpctrace.sources.etl import records
    from rpctrace.synth import synthesize

    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}, {platform.platform()}")
    print(f"C record loop built: {records._fastrecords is not None}; C engine: {fast.available()}; {_load()}")
    tmp = args.keep or tempfile.mkdtemp(prefix="rpctrace-bench-")
    os.makedirs(tmp, exist_ok=True)
    variants = [("C engine", {})]
    if args.python:
        variants.append(("Python stream", {"RPCTRACE_ENGINE": "0"}))
    if args.pure:
        variants.append(("pure Python", {"RPCTRACE_PURE": "1"}))
    rows: dict[str, list] = {name: [] for name, _ in variants}
    sizes = [] if args.no_calls else [int(s) for s in args.sizes.split(",")]
    for size in sizes:
        path = os.path.join(tmp, f"busy-{size}.etl")
        if not os.path.exists(path):
            t = time.perf_counter()
            synthesize("busy-server", path, None, seed=1, clients=256, events=size)
            print(f"wrote {path} ({size:,} events) in {time.perf_counter() - t:.1f} s", flush=True)
        for name, env in variants:
            runs = []
            for _ in range(max(1, args.repeat)):
                runs.append(run_calls(path, os.path.join(tmp, "calls.out"), args.format, env))
                print(f"  {name:<14} {size:>12,} events: {runs[-1]['wall_s']:6.1f} s wall, {runs[-1]['cpu_s']:6.1f} s cpu, "
                      f"peak {runs[-1]['peak_mb']:,.0f} MB ({runs[-1]['load']})", flush=True)
            r = best(runs)
            r["events"] = size
            rows[name].append(r)
            print(f"{name:<14} {size:>12,} events {r['calls']:>9,} calls  rpctrace calls {r['wall_s']:7.1f} s "
                  f"(cpu {r['cpu_s']:6.1f} s)  {size / r['wall_s']:>9,.0f} events/s {r['calls'] / r['wall_s']:>8,.0f} calls/s  "
                  f"peak {r['peak_mb']:,.0f} MB", flush=True)
            if size == 10_000_000:
                print(f"  {verdict(r, CALLS_TARGET)}")
    for name, rs in rows.items():
        if not rs:
            continue
        base = rs[0]["wall_s"] / rs[0]["events"]
        for r in rs[1:]:
            print(f"{name}: cost per event at {r['events']:,} vs {rs[0]['events']:,}: {r['wall_s'] / r['events'] / base:.2f}x")
    for name, rs in rows.items():
        if name != "C engine" and rs:
            for c, p in zip(rows["C engine"], rs):
                print(f"{c['events']:,} events: {name} / C engine time {p['wall_s'] / c['wall_s']:.2f}x")
    if args.report:
        path = os.path.join(tmp, f"busy-report-{args.report_calls}.etl")
        if not os.path.exists(path):
            t = time.perf_counter()
            summary = synthesize("busy-server", path, None, seed=1, clients=256, calls=args.report_calls)
            print(f"wrote {path} ({summary['record_count']:,} events, {args.report_calls:,} calls) in "
                  f"{time.perf_counter() - t:.1f} s", flush=True)
        html = os.path.join(tmp, "report.html")
        for name, env in variants:
            runs = []
            for _ in range(max(1, args.repeat)):
                runs.append(run(["report", path, "-o", html], None, env))
                print(f"  {name:<14} report: {runs[-1]['wall_s']:6.1f} s wall, {runs[-1]['cpu_s']:6.1f} s cpu, "
                      f"peak {runs[-1]['peak_mb']:,.0f} MB ({runs[-1]['load']})", flush=True)
            r = best(runs)
            print(f"{name:<14} rpctrace report of {args.report_calls:,} calls: {r['wall_s']:.1f} s (cpu {r['cpu_s']:.1f} s), "
                  f"peak {r['peak_mb']:,.0f} MB, {os.path.getsize(html):,} bytes", flush=True)
            if args.report_calls == 150_000:
                print(f"  {verdict(r, REPORT_TARGET)}")


if __name__ == "__main__":
    main()
