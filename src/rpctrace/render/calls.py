"""Print reconstructed calls: a table for people, JSON/JSONL for programs, and the call tree."""

from __future__ import annotations

from typing import IO, Iterable

from rpctrace.model import ticks_to_iso
from rpctrace.render.recordjson import record_block, record_line


def write_json(records: Iterable[dict], out: IO[str]) -> None:
    """One JSON array: the text ``json.dump(list(records), out, indent=2, ensure_ascii=False)``
    writes, then a newline.  Written record by record, so a listing never sits in memory."""
    write = out.write
    sep = "[\n  "
    for r in records:
        write(sep)
        write(record_block(r))
        sep = ",\n  "
    write("[]\n" if sep == "[\n  " else "\n]\n")


def write_jsonl(records: Iterable[dict], out: IO[str]) -> None:
    """One ``json.dumps(record, ensure_ascii=False)`` line per record."""
    write = out.write
    for r in records:
        write(record_line(r) + "\n")


def _who(side: dict) -> str:
    image = side.get("image") or "?"
    pid = "-" if side.get("pid") is None else side["pid"]
    tid = "-" if side.get("tid") is None else side["tid"]
    return f"{image}({pid}:{tid})"


def _status(value) -> str:
    return "-" if value is None else f"0x{value:x}" if value else "0"


def _what(r: dict) -> str:
    iface = r["interface"]["name"] or r["interface"]["uuid"] or "?"
    what = f"{iface}/{r['opnum'] if r['opnum'] is not None else '?'}"
    if r.get("procedure"):
        what = f"{iface}!{r['procedure']}"
    return what


def _first_failure(r: dict) -> str:
    fails = len(r["failures"])
    first = r["failures"][0] if fails else None
    return f"{fails}: {first['kind']} {first['status_name'] or _status(first['status'])} {first['path']}" if first else ""


def _table_row_any(r: dict) -> str:
    """A table line for a record of any value types (the definition of the layout)."""
    return (
        f"{r['id']:>5}  {r['start'] or '-':<28} {_who(r['client'])[:28]:<28} {_who(r['server'])[:28]:<28} "
        f"{_what(r)[:60]:<60} {(r['endpoint'] or '-')[:18]:<18} {_status(r['status']):>6} {r['confidence']:>4.2f} "
        f"{_first_failure(r)}\n"
    )


#: :func:`_table_row_any` as one %-format, for cells of the usual types: ``format(x, "<28")``
#: is ``"%-28s" % x`` for a ``str``, ``format(i, ">5")`` is ``"%5s" % i`` for an ``int`` and
#: ``format(f, ">4.2f")`` is ``"%4.2f" % f`` for a ``float``; one %-format is ~30% faster than
#: an f-string of format specs, which matters at a million rows.
_ROW = "%5s  %-28s %-28s %-28s %-60s %-18s %6s %4.2f %s\n"


def _table_row(r: dict) -> str:
    id_ = r["id"]
    start = r["start"] or "-"
    endpoint = (r["endpoint"] or "-")[:18]
    confidence = r["confidence"]
    if type(id_) is not int or type(start) is not str or type(endpoint) is not str or type(confidence) is not float:
        return _table_row_any(r)
    return _ROW % (
        id_, start, _who(r["client"])[:28], _who(r["server"])[:28], _what(r)[:60], endpoint, _status(r["status"]),
        confidence, _first_failure(r),
    )  # fmt: skip


def write_table(records: Iterable[dict], out: IO[str]) -> None:
    head = f"{'id':>5}  {'start':<28} {'client':<28} {'server':<28} {'interface!procedure (or opnum)':<60} {'endpoint':<18} {'st':>6} {'conf':>4} failures"
    write = out.write
    write(head + "\n")
    for r in records:
        write(_table_row(r))


def write_tree(calls, trace, out: IO[str], record) -> None:
    """Indented view: client process/thread -> call -> server process/thread -> operations -> children."""

    def line(depth: int, text: str) -> None:
        out.write("  " * depth + text + "\n")

    def show(call, depth: int) -> None:
        r = record(call)
        iface = r["interface"]["name"] or r["interface"]["uuid"] or "?"
        proc = r["procedure"] or f"opnum {r['opnum']}"
        line(depth, f"call {r['id']}  {iface} {proc}  endpoint {r['endpoint'] or '-'}  status {_status(r['status'])}  "
                    f"[{r['start']} .. {r['end']}] confidence {r['confidence']:.2f}")
        line(depth + 1, f"client {_who(r['client'])}  ->  server {_who(r['server'])}"
                        + (f" service {r['server']['service']}" if r["server"].get("service") else "")
                        + (f"  ALPC message {r['alpc_message_id']}" if r["alpc_message_id"] is not None else ""))
        for op in call.operations:
            f = op.fields
            status = f.get("status")
            mark = "FAILED " if status is not None and (status & 0xC0000000) == 0xC0000000 else ""
            target = f.get("path") or f.get("open_path") or f.get("key_name") or f.get("value_name") or ""
            line(depth + 2, f"{mark}{op.kind} {target} status {_status(status)} at {ticks_to_iso(op.ts)}")
            if mark and op.stack:
                for addr in op.stack:
                    line(depth + 3, trace.symbolize(op.pid, addr))
        for child in call.children:
            show(child, depth + 2)

    for call in calls:
        show(call, 0)
