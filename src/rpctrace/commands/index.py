"""`rpctrace index`: many traces -> Parquet tables (calls, failures, processes, traces)."""

from __future__ import annotations

import sys

from rpctrace.commands import EXIT_INPUT, EXIT_OK, progress_for
from rpctrace.commands.options import add_command, add_format, add_output


def cmd_index(args) -> int:
    from rpctrace import pipeline
    from rpctrace.render.index import write_summary

    with progress_for(args, "indexing") as bar:
        summary = pipeline.index(args.inputs, args.output, jobs=args.jobs or 0, cluster=args.cluster,
                                 keep_going=args.keep_going, force=args.force, max_unpacked=args.max_unpacked,
                                 on_progress=bar)
    write_summary(summary, args.format, sys.stdout)
    sys.stdout.flush()
    return EXIT_INPUT if summary["bad_inputs"] else EXIT_OK


def register(sub) -> None:
    p = add_command(sub, "index", "write the calls, failures, processes and coverage of many traces as Parquet tables",
                    description="Write the calls, failures, processes and coverage of many traces as Parquet tables, "
                                "partitioned by host and day, one file set per trace (an interrupted run resumes, a "
                                "re-run replaces a trace's rows). Query them with `rpctrace query`, DuckDB or Spark "
                                "(docs/scale.md). Needs pyarrow: pip install 'rpctrace[index]'.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="trace files (.etl, .pml, .evtx, event XML, pcap: sniffed from the bytes), directories (every "
                        "such file inside, recursively) and compressed files (.gz, .xz, .bz2, .zip: every trace inside)")
    add_output(p, "DIR", "the index directory (created if missing; runs into the same one add to it)", required=True)
    p.add_argument("--jobs", type=int, metavar="N", help="processes to index with (default: every core)")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="send one task per trace to this Dask distributed scheduler (tcp://HOST:8786); its workers "
                        "need rpctrace[cluster] and must see the inputs and DIR at the same paths (docs/scale.md)")
    p.add_argument("--force", action="store_true",
                   help="index again the traces already in DIR (their rows are replaced; default: skip them)")
    p.add_argument("--max-unpacked", default="32G", metavar="SIZE",
                   help="largest size a compressed input may decompress to (default 32G); larger ones are bad inputs")
    add_format(p, ("text", "json"), "the summary: text for people, json for programs")
    p.set_defaults(func=cmd_index)
