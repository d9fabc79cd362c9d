"""Print the rows of a query: an aligned table for people, JSON or CSV for programs.

Values come from traces of compromised machines: in the table every cell is one printable
line (control characters escaped, long text cut with an ellipsis); JSON and CSV keep values
whole.  Times are ISO 8601 UTC with a ``Z``; lists are JSON arrays in the table and in CSV.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
from typing import IO, Any, Sequence

from rpctrace.errors import printable
from rpctrace.render.calls import fit

__all__ = ["write_rows"]

#: widest cell of the table (the JSON and CSV forms keep everything)
CELL = 80


def _plain(value: Any) -> Any:
    """A JSON-ready value."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="microseconds") + "Z"
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)  # DECIMAL, UUID, INTERVAL...


def _text(value: Any) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, out: IO[str]) -> None:
    if fmt == "json":
        json.dump([{c: _plain(v) for c, v in zip(columns, row)} for row in rows], out, indent=2, ensure_ascii=False)
        out.write("\n")
        return
    if fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(columns)
        for row in rows:
            w.writerow([_text(v) for v in row])
        return
    cells = [[fit(printable(_text(v), 10 * CELL), CELL) for v in row] for row in rows]
    heads = [fit(printable(c, CELL), CELL) for c in columns]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(heads)]
    numeric = [bool(rows) and all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) or r[i] is None
                                  for r in rows) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out.write(line(heads) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in cells:
        out.write(line(r) + "\n")
    out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")
