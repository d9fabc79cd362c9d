"""End-to-end cost of `rpctrace calls`: read + assemble + correlate, at several trace sizes.

    python benchmarks/correlate.py [--sizes 1000000,10000000] [--keep DIR]

For each size it writes a busy-server trace with the trace writer (not timed), then times, in a
fresh process each (so peak memory is that run's own), reading the trace, assembling it and
correlating it.  It prints events/s, calls/s, peak RSS and the cost per event relative to the
smallest size: linear cost shows as a ratio near 1.0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def measure(path: str) -> dict:
    from rpctrace.correlate import correlate
    from rpctrace.trace import load

    t0 = time.perf_counter()
    trace = load([path])
    t1 = time.perf_counter()
    result = correlate(trace)
    t2 = time.perf_counter()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"events": len(trace.events), "calls": len(result.calls), "read_s": t1 - t0, "correlate_s": t2 - t1,
            "total_s": t2 - t0, "peak_mb": peak_kb / 1024}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        print(json.dumps(measure(sys.argv[2])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--keep", help="folder for the generated traces (default: a temporary one)")
    args = parser.parse_args()
    from rpctrace.synth import synthesize

    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}, {platform.platform()}")
    tmp = args.keep or tempfile.mkdtemp(prefix="rpctrace-bench-")
    os.makedirs(tmp, exist_ok=True)
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        path = os.path.join(tmp, f"busy-{size}.etl")
        if not os.path.exists(path):
            t = time.perf_counter()
            synthesize("busy-server", path, None, seed=1, clients=256, events=size)
            print(f"wrote {path} ({size:,} events) in {time.perf_counter() - t:.1f} s", flush=True)
        out = subprocess.run([sys.executable, __file__, "--measure", path], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout)
        rows.append(r)
        print(f"{r['events']:>12,} events {r['calls']:>10,} calls  read+assemble {r['read_s']:7.1f} s  "
              f"correlate {r['correlate_s']:6.1f} s  total {r['total_s']:7.1f} s  "
              f"{r['events'] / r['total_s']:>9,.0f} events/s {r['calls'] / r['total_s']:>8,.0f} calls/s  "
              f"peak {r['peak_mb']:,.0f} MB", flush=True)
    base = rows[0]["total_s"] / rows[0]["events"]
    for r in rows[1:]:
        print(f"cost per event at {r['events']:,} vs {rows[0]['events']:,}: {r['total_s'] / r['events'] / base:.2f}x")


if __name__ == "__main__":
    main()
