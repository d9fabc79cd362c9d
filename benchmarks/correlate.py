"""End-to-end cost of `rpctrace calls` at several trace sizes: time, peak memory, cost per event.

    python benchmarks/correlate.py [--sizes 1000000,10000000] [--keep DIR] [--repeat N] [--pure] [--format table]

For each size it writes a busy-server trace with the trace writer (not timed; 256 client
processes, seed 1), then runs the real command, ``rpctrace calls FILE`` with its output going to
a file, in a fresh process, and reports its wall time, its peak resident memory (the child's
``ru_maxrss``), events/s, calls/s and the cost per event relative to the smallest size (linear
cost shows as a ratio near 1.00).  With ``--repeat N`` each run is made N times and the fastest
kept (the figures of one run move by ~20 % on a shared machine).  ``--pure`` also runs each size with ``RPCTRACE_PURE=1`` (the
record loop in Python instead of the optional C loop), side by side.
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


def run_calls(path: str, out: str, fmt: str, pure: bool) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    if pure:
        env["RPCTRACE_PURE"] = "1"
    cmd = [sys.executable, "-m", "rpctrace.cli", "calls", "--format", fmt, path]
    t0 = time.perf_counter()
    with open(out, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.PIPE, env=env)
        _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode not in (0,):
        raise SystemExit(f"rpctrace calls failed ({proc.returncode}): {err[-2000:]}")
    with open(out, "rb") as fh:
        lines = sum(1 for _ in fh)
    calls = lines - 1 if fmt == "table" else lines
    return {"wall_s": wall, "peak_mb": usage.ru_maxrss / 1024, "calls": calls, "cpu_s": usage.ru_utime + usage.ru_stime}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--keep", help="folder for the generated traces (default: a temporary one)")
    parser.add_argument("--pure", action="store_true", help="also run with the record loop in pure Python")
    parser.add_argument("--format", default="table", choices=("table", "jsonl", "json"))
    parser.add_argument("--repeat", type=int, default=1, help="runs per size and variant; the fastest is kept")
    args = parser.parse_args()
    from rpctrace.sources.etl import records
    from rpctrace.synth import synthesize

    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}, {platform.platform()}")
    print(f"C record loop built: {records._fastrecords is not None}")
    tmp = args.keep or tempfile.mkdtemp(prefix="rpctrace-bench-")
    os.makedirs(tmp, exist_ok=True)
    variants = [("C loop", False)] + ([("pure Python", True)] if args.pure else [])
    rows: dict[str, list] = {name: [] for name, _ in variants}
    for size in [int(s) for s in args.sizes.split(",")]:
        path = os.path.join(tmp, f"busy-{size}.etl")
        if not os.path.exists(path):
            t = time.perf_counter()
            synthesize("busy-server", path, None, seed=1, clients=256, events=size)
            print(f"wrote {path} ({size:,} events) in {time.perf_counter() - t:.1f} s", flush=True)
        for name, pure in variants:
            runs = [run_calls(path, os.path.join(tmp, "calls.out"), args.format, pure) for _ in range(max(1, args.repeat))]
            r = min(runs, key=lambda x: x["wall_s"])
            r["peak_mb"] = max(x["peak_mb"] for x in runs)
            r["events"] = size
            rows[name].append(r)
            print(f"{name:<12} {size:>12,} events {r['calls']:>9,} calls  rpctrace calls {r['wall_s']:7.1f} s "
                  f"(cpu {r['cpu_s']:6.1f} s)  {size / r['wall_s']:>9,.0f} events/s {r['calls'] / r['wall_s']:>8,.0f} calls/s  "
                  f"peak {r['peak_mb']:,.0f} MB", flush=True)
    for name, rs in rows.items():
        base = rs[0]["wall_s"] / rs[0]["events"]
        for r in rs[1:]:
            print(f"{name}: cost per event at {r['events']:,} vs {rs[0]['events']:,}: {r['wall_s'] / r['events'] / base:.2f}x")
    if args.pure:
        for c, p in zip(rows["C loop"], rows["pure Python"]):
            print(f"{c['events']:,} events: pure Python / C loop time {p['wall_s'] / c['wall_s']:.2f}x")


if __name__ == "__main__":
    main()
