"""Print what `rpctrace index` did: a few lines for people, or the summary as JSON."""

from __future__ import annotations

import json
from typing import IO

from rpctrace.errors import printable


def write_summary(summary: dict, fmt: str, out: IO[str]) -> None:
    if fmt == "json":
        json.dump(summary, out, indent=2)
        out.write("\n")
        return
    seconds = summary["seconds"]
    traces = summary["traces"]
    rate = f"; {traces / seconds:,.1f} traces/s" if seconds > 0 and traces else ""
    same = f", {summary['same_content']} with the same content as another" if summary["same_content"] else ""
    out.write(f"indexed {traces} trace(s) into {printable(summary['index'], 200)} ({summary['indexed_now']} now, "
              f"{summary['already_indexed']} already indexed{same}): {summary['calls']:,} calls, "
              f"{summary['failures']:,} failures ({seconds:.1f} s{rate})\n")
    if summary["skipped_files"]:
        out.write(f"skipped {summary['skipped_files']} file(s) in no format rpctrace reads\n")
    bad = summary["bad_inputs"]
    if bad:
        out.write(f"{len(bad)} bad input(s) (what was read before damage is indexed):\n")
        for b in bad:
            out.write(f"  {printable(b['error'] or b['input'], 600)}\n")
    if traces:
        out.write(f"query: rpctrace query \"SELECT ...\" --on {printable(summary['index'], 200)} "
                  "(tables: calls, failures, processes, traces)\n")
