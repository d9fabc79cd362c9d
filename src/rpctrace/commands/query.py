"""`rpctrace query`: SQL (DuckDB, in this process) over an index `rpctrace index` wrote."""

from __future__ import annotations

import argparse
import sys

from rpctrace.commands import EXIT_OK, RpctraceError
from rpctrace.commands.options import HELP, add_command, add_format


def cmd_query(args) -> int:
    from rpctrace import pipeline
    from rpctrace.render.rows import write_rows

    named = pipeline.named_queries()
    chosen = [(q, getattr(args, q.option[2:].replace("-", "_"))) for q in named]
    chosen = [(q, v) for q, v in chosen if v not in (None, False)]
    if len(chosen) + bool(args.sql) != 1:
        raise RpctraceError("query: give either SQL or one named query (" + ", ".join(q.option for q in named) + ")")
    if args.sql:
        columns, rows = pipeline.query(args.on, sql=args.sql)
    else:
        q, value = chosen[0]
        columns, rows = pipeline.query(args.on, named=q.option, value=None if value is True else value)
    write_rows(columns, rows, args.format, sys.stdout)
    sys.stdout.flush()
    return EXIT_OK


EPILOG = """tables (docs/scale.md lists every column):
  calls      one row per call: trace_id, call_id, client_*, server_*, interface_*, procedure, start, status, failed, ...
  failures   one row per failed registry or file operation: trace_id, call_id, kind, path, status_name, finding, ...
  processes  one row per process: trace_id, pid, image, command_line, user_sid, service, ...
  traces     one row per input: trace_id, path, events, calls, coverage counts, events_lost, lacks, error, ...
every table also has host and day (the partitions).

examples:
  rpctrace query --on IDX "SELECT host, count(*) FROM calls WHERE procedure = 'EfsRpcOpenFileRaw' GROUP BY host"
  rpctrace query --on IDX --denied-key 'HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\MMDevices\\*'
  rpctrace report --on IDX --call 3f2a9c01e4:23 -o call.html"""


def register(sub) -> None:
    from rpctrace.pipeline import named_queries

    p = add_command(sub, "query", "ask SQL questions across an index of many traces (DuckDB, in this process)",
                    description="Ask SQL questions across an index of many traces: DuckDB runs in this process,\n"
                                "with the tables calls, failures, processes and traces as views over the index's\n"
                                "Parquet files. Needs DuckDB: pip install 'rpctrace[index]'.",
                    epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sql", nargs="?", metavar="SQL", help="the query (DuckDB's SQL dialect); or one named query below")
    p.add_argument("--on", required=True, metavar="DIR", help=HELP["on"])
    add_format(p, ("table", "json", "csv"), "table for people; json (an array of objects) or csv for programs")
    g = p.add_argument_group("named queries (instead of SQL)")
    for q in named_queries():
        if q.metavar is None:
            g.add_argument(q.option, action="store_true", help=q.help)
        else:
            g.add_argument(q.option, metavar=q.metavar, help=q.help)
    p.set_defaults(func=cmd_query)
