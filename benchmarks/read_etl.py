"""Reading speed: rpctrace against dissect.etl on the same file, in one run.

    python benchmarks/read_etl.py [FILE.etl ...] [--repeat N]

With no file it uses net.4.5.2.x64.etl (unpacked from tests/data).  For each file it times:

* rpctrace: the whole analysis as `rpctrace explain FILE` runs it (streamed read and assembly,
  calls, findings: the C engine, and all in pure Python), every record decoded into Event records
  (reader only, with the optional C record loop and with the pure-Python loop), and the full
  trace assembly that `rpctrace events` does (attribution, registry paths, stacks, every event
  kept);
* dissect.etl: its header pass (records and headers only) and its payload decode.

and prints events per second and the ratios rpctrace / dissect.  dissect.etl (AGPL) is a
benchmark and test oracle only: install it with `pip install -e '.[test]'`.
Runs are interleaved and the best of N is kept, so background load hurts both sides alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def default_file(tmp: str) -> str:
    with zipfile.ZipFile(ROOT / "tests" / "data" / "net.4.5.2.x64.etl.zip") as zf:
        name = next(n for n in zf.namelist() if n.endswith(".etl"))
        zf.extract(name, tmp)
        return os.path.join(tmp, name)


def rpctrace_reader(path: str) -> int:
    from rpctrace.sources.etl.reader import EtlReader

    n = 0
    with EtlReader(path) as reader:
        for _ in reader.events():
            n += 1
    return n


def rpctrace_reader_pure(path: str) -> int:
    from rpctrace.sources.etl import records

    was = records.PURE
    records.PURE = True  # the record loop in Python, as where the C loop could not be built
    try:
        return rpctrace_reader(path)
    finally:
        records.PURE = was


def rpctrace_analysis(path: str) -> int:
    """The whole analysis, as ``rpctrace explain FILE`` runs it: the file read and assembled as a
    stream, calls rebuilt, findings made (rpctrace.pipeline.explain)."""
    from rpctrace import pipeline

    return pipeline.explain([path]).trace.records


def rpctrace_analysis_pure(path: str) -> int:
    from rpctrace.sources.etl import records

    was = records.PURE
    records.PURE = True  # no C at all: the reference the C engine is tested against
    try:
        return rpctrace_analysis(path)
    finally:
        records.PURE = was


def rpctrace_trace(path: str) -> int:
    from rpctrace.trace import load

    return len(load([path]).events)


def dissect_headers(path: str) -> int:
    from dissect.etl.etl import ETL

    n = 0
    with open(path, "rb") as fh:
        for record in ETL(fh):
            record.header.timestamp  # noqa: B018 - what a header pass reads: the header and its time
            n += 1
    return n


def dissect_payload(path: str) -> int:
    from dissect.etl.etl import ETL

    n = 0
    with open(path, "rb") as fh:
        for record in ETL(fh):
            record.header.timestamp  # noqa: B018 - the read is the point
            try:
                record.event  # noqa: B018 - parse the payload with dissect's manifests
            except Exception:
                pass
            n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-payload", action="store_true", help="skip dissect's (slow) payload decode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = args.files or [default_file(tmp)]
        print(f"machine: {platform.machine()} {os.cpu_count()} cpus, {platform.python_implementation()} {platform.python_version()}, {platform.platform()}")
        from rpctrace.sources.etl import records

        print(f"C record loop built: {records._fastrecords is not None}")
        runs = [("rpctrace whole analysis (explain)", rpctrace_analysis),
                ("rpctrace whole analysis, pure Python", rpctrace_analysis_pure),
                ("rpctrace reader (all events decoded)", rpctrace_reader),
                ("rpctrace reader, pure Python loop", rpctrace_reader_pure),
                ("rpctrace trace (+attribution, paths, stacks)", rpctrace_trace),
                ("dissect.etl header pass", dissect_headers)]
        if not args.no_payload:
            runs.append(("dissect.etl header + payload", dissect_payload))
        for path in files:
            best: dict[str, float] = {}
            cpu: dict[str, float] = {}
            counts: dict[str, int] = {}
            loads = []
            for _ in range(args.repeat):
                loads.append(os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"))
                for name, fn in runs:
                    t0, c0 = time.perf_counter(), time.process_time()
                    counts[name] = fn(path)
                    dt, dc = time.perf_counter() - t0, time.process_time() - c0
                    best[name] = min(best.get(name, dt), dt)
                    cpu[name] = min(cpu.get(name, dc), dc)
            print(f"\n{os.path.basename(path)} ({os.path.getsize(path):,} bytes); load average (1 min) before each "
                  f"round: {', '.join(f'{x:.2f}' for x in loads)}")
            rates = {name: counts[name] / best[name] for name in best}
            for name in best:
                print(f"  {name:<46} {counts[name]:>10,} events {best[name]:8.3f} s {rates[name]:>12,.0f} events/s"
                      f"  (cpu of this process {cpu[name]:.3f} s)")
            base = rates["dissect.etl header pass"]
            for name in ("rpctrace whole analysis (explain)", "rpctrace whole analysis, pure Python",
                         "rpctrace reader (all events decoded)", "rpctrace reader, pure Python loop",
                         "rpctrace trace (+attribution, paths, stacks)"):
                print(f"  ratio {name} / dissect header pass: {rates[name] / base:.2f}x")
            print(f"  (by cpu time: whole analysis / dissect header pass "
                  f"{cpu['dissect.etl header pass'] / cpu['rpctrace whole analysis (explain)']:.2f}x; issue 19 target >= 10x)")
            if "dissect.etl header + payload" in rates:
                print(f"  ratio rpctrace reader / dissect header + payload: "
                      f"{rates['rpctrace reader (all events decoded)'] / rates['dissect.etl header + payload']:.2f}x")


if __name__ == "__main__":
    main()
