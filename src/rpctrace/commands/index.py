"""`rpctrace index`: many traces -> Parquet tables (calls, failures, processes, traces)."""

from __future__ import annotations

import json
import os
import re
import sys
import time

from rpctrace.commands import EXIT_INPUT, EXIT_OK, RpctraceError, progress_for
from rpctrace.commands.options import add_command, add_format, add_output
from rpctrace.errors import printable

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)i?b?\s*$", re.I)


def parse_size(text: str) -> int:
    """``123``, ``64M``, ``32G``, ``1TiB`` -> bytes."""
    m = _SIZE.match(text)
    if not m:
        raise RpctraceError(f"--max-unpacked: not a size: {printable(text, 40)} (say e.g. 64G)")
    return int(m.group(1)) << (10 * " kmgt".index(m.group(2).lower() or " "))


def _require(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise RpctraceError(f"rpctrace index needs {module}: pip install 'rpctrace[{extra}]'")


def cmd_index(args) -> int:
    from rpctrace.tables import store
    from rpctrace.tables.inputs import expand
    from rpctrace.tables.run import IndexOptions, run_cluster, run_local

    _require("pyarrow", "index")
    if args.jobs is not None and args.jobs < 0:
        raise RpctraceError("--jobs: give a number of processes, 1 or more (0: every core)")
    options = IndexOptions(out=args.output, keep_going=args.keep_going, force=args.force,
                           max_unpacked=parse_size(args.max_unpacked))
    store.prepare(args.output)
    store.sweep_temporary(args.output)
    started = time.perf_counter()
    found = expand(args.inputs, exclude=[args.output])
    with progress_for(args, "indexing") as bar:
        if args.cluster:
            outcomes = run_cluster(args.cluster, found.tasks, options, on_progress=bar)
        else:
            outcomes = run_local(found.tasks, options, jobs=args.jobs or 0, on_progress=bar)
    seconds = time.perf_counter() - started
    traces = [o for o in outcomes if o.status != "bad"]
    unique = {o.trace_id: o for o in traces}  # the same content given twice is one trace
    distinct = len(unique)
    bad = [(b.display, b.error) for b in found.bad] + [(o.display, o.error) for o in outcomes if o.bad]
    summary = {
        "index": args.output,
        "inputs": len(found.tasks) + len(found.bad),
        "traces": distinct,
        "indexed_now": sum(o.status == "indexed" for o in outcomes),
        "already_indexed": sum(o.status == "already" for o in outcomes),
        "calls": sum(o.calls for o in unique.values()),
        "failures": sum(o.failures for o in unique.values()),
        "skipped_files": found.skipped,
        "bad_inputs": [{"input": d, "error": e} for d, e in bad],
        "seconds": round(seconds, 3),
        "where": args.cluster or f"{args.jobs or os.cpu_count() or 1} local process(es)",
    }
    if args.format == "json":
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        rate = f"; {len(traces) / seconds:,.1f} traces/s" if seconds > 0 and traces else ""
        same = f", {len(traces) - distinct} with the same content as another" if len(traces) > distinct else ""
        print(f"indexed {distinct} trace(s) into {printable(args.output, 200)} ({summary['indexed_now']} now, "
              f"{summary['already_indexed']} already indexed{same}): {summary['calls']:,} calls, "
              f"{summary['failures']:,} failures ({seconds:.1f} s{rate})")
        if found.skipped:
            print(f"skipped {found.skipped} file(s) in no format rpctrace reads")
        if bad:
            print(f"{len(bad)} bad input(s) (what was read before damage is indexed):")
            for _display, error in bad:
                print(f"  {printable(error or '', 600)}")
        print(f"query: rpctrace query \"SELECT ...\" --on {printable(args.output, 200)} "
              "(tables: calls, failures, processes, traces)")
    sys.stdout.flush()
    return EXIT_INPUT if bad else EXIT_OK


def register(sub) -> None:
    p = add_command(sub, "index", "write the calls, failures, processes and coverage of many traces as Parquet tables",
                    description="Write the calls, failures, processes and coverage of many traces as Parquet tables, "
                                "partitioned by host and day, one file set per trace (an interrupted run resumes, a "
                                "re-run replaces a trace's rows). Query them with `rpctrace query`, DuckDB or Spark "
                                "(docs/scale.md). Needs pyarrow: pip install 'rpctrace[index]'.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="trace files (.etl, .pml, .evtx, event XML: sniffed from the bytes), directories (every such "
                        "file inside, recursively) and compressed files (.gz, .xz, .bz2, .zip: every trace inside)")
    add_output(p, "DIR", "the index directory (created if missing; runs into the same one add to it)", required=True)
    p.add_argument("--jobs", type=int, metavar="N", help="processes to index with (default: every core)")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="send one task per trace to this Dask distributed scheduler (tcp://HOST:8786); its workers "
                        "need rpctrace[index] and must see the inputs and DIR at the same paths (docs/scale.md)")
    p.add_argument("--force", action="store_true",
                   help="index again the traces already in DIR (their rows are replaced; default: skip them)")
    p.add_argument("--max-unpacked", default="32G", metavar="SIZE",
                   help="largest size a compressed input may decompress to (default 32G); larger ones are bad inputs")
    add_format(p, ("text", "json"), "the summary: text for people, json for programs")
    p.set_defaults(func=cmd_index)
