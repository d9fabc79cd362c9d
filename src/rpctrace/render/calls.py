"""Print reconstructed calls: a table for people, JSON/JSONL for programs, and the call tree."""

from __future__ import annotations

import json
from typing import IO

from rpctrace.model import ticks_to_iso


def write_json(records: list[dict], out: IO[str]) -> None:
    json.dump(records, out, indent=2, ensure_ascii=False)
    out.write("\n")


def write_jsonl(records: list[dict], out: IO[str]) -> None:
    for r in records:
        out.write(json.dumps(r, ensure_ascii=False) + "\n")


def _who(side: dict) -> str:
    image = side.get("image") or "?"
    pid = "-" if side.get("pid") is None else side["pid"]
    tid = "-" if side.get("tid") is None else side["tid"]
    return f"{image}({pid}:{tid})"


def _status(value) -> str:
    return "-" if value is None else f"0x{value:x}" if value else "0"


def write_table(records: list[dict], out: IO[str]) -> None:
    head = f"{'id':>5}  {'start':<28} {'client':<28} {'server':<28} {'interface!procedure (or opnum)':<60} {'endpoint':<18} {'st':>6} {'conf':>4} failures"
    out.write(head + "\n")
    for r in records:
        iface = r["interface"]["name"] or r["interface"]["uuid"] or "?"
        what = f"{iface}/{r['opnum'] if r['opnum'] is not None else '?'}"
        if r.get("procedure"):
            what = f"{iface}!{r['procedure']}"
        fails = len(r["failures"])
        first = r["failures"][0] if fails else None
        ftxt = f"{fails}: {first['kind']} {first['status_name'] or _status(first['status'])} {first['path']}" if first else ""
        out.write(
            f"{r['id']:>5}  {r['start'] or '-':<28} {_who(r['client'])[:28]:<28} {_who(r['server'])[:28]:<28} "
            f"{what[:60]:<60} {(r['endpoint'] or '-')[:18]:<18} {_status(r['status']):>6} {r['confidence']:>4.2f} {ftxt}\n"
        )


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
