"""Print reconstructed calls: a table for people, JSON/JSONL for programs, and the call tree."""

from __future__ import annotations

from typing import IO, Iterable

from rpctrace.model import target_text, ticks_to_iso
from rpctrace.render.recordjson import record_block, record_line
from rpctrace.schema import CallRecord, ClientSide, ServerSide


def write_json(records: Iterable[CallRecord], out: IO[str]) -> None:
    """One JSON array: the text ``json.dump(list(records), out, indent=2, ensure_ascii=False)``
    writes, then a newline.  Written record by record, so a listing never sits in memory."""
    write = out.write
    sep = "[\n  "
    for r in records:
        write(sep)
        write(record_block(r))
        sep = ",\n  "
    write("[]\n" if sep == "[\n  " else "\n]\n")


def write_jsonl(records: Iterable[CallRecord], out: IO[str]) -> None:
    """One ``json.dumps(record, ensure_ascii=False)`` line per record."""
    write = out.write
    for r in records:
        write(record_line(r) + "\n")


def _address(side: ClientSide | ServerSide | dict) -> str:
    """``address:port`` of a side only a network capture names (no image, no process), else ""."""
    if side.get("image") or side.get("pid") is not None or not side.get("address"):
        return ""
    host = str(side["address"])
    host = f"[{host}]" if ":" in host else host  # IPv6
    return host if side.get("port") is None else f"{host}:{side['port']}"


def _who(side: ClientSide | ServerSide) -> str:
    """``image(pid:tid)``; for a side only a network capture names, its ``address:port``."""
    address = _address(side)
    if address:
        return address
    image = side.get("image") or "?"
    pid = "-" if side.get("pid") is None else side["pid"]
    tid = "-" if side.get("tid") is None else side["tid"]
    return f"{image}({pid}:{tid})"


def _status(value) -> str:
    return "-" if value is None else f"0x{value:x}" if value else "0"


def _what(r: CallRecord) -> str:
    iface = r["interface"]["name"] or r["interface"]["uuid"] or "?"
    what = f"{iface}/{r['opnum'] if r['opnum'] is not None else '?'}"
    if r.get("procedure"):
        what = f"{iface}!{r['procedure']}"
    return what


def _first_failure(r: CallRecord) -> str:
    fails = len(r["failures"])
    first = r["failures"][0] if fails else None
    return f"{fails}: {first['kind']} {first['status_name'] or _status(first['status'])} {first['path']}" if first else ""


def fit(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters: cut with an ellipsis, never silently."""
    return text if len(text) <= width else text[: width - 1] + "…"


def duration_text(us) -> str:
    """A duration in microseconds as people read it: ``850 µs``, ``12.4 ms``, ``3.20 s``."""
    if us is None or type(us) not in (int, float) or us != us:
        return "-"
    if us < 0:
        return "-"
    if us < 1000:
        return f"{us:.0f} µs" if us >= 10 else f"{us:.1f} µs"
    if us < 1_000_000:
        ms = us / 1000
        return f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"
    sec = us / 1_000_000
    return f"{sec:.1f} s" if sec >= 10 else f"{sec:.2f} s"


#: what the table's short column names mean (``rpctrace calls --help`` prints this)
COLUMNS = """columns of the table:
  id        the call's number (rpctrace tree/explain/windbg --call ID)
  start     when the client's call began (UTC, 100 ns precision)
  duration  client's call start to its end (µs, ms or s); - when an end is not in the trace
  mode      sync (the caller waited), async (the reply came later, to the thread after @),
            datagram (one-way, no reply); - when the trace does not show it
  client    image(pid:tid) of the calling thread;  server: image(pid:tid) of the worker thread
            (address:port for a side only a network capture shows)
  interface!procedure  names from the interface database, else the UUID and /opnum
  endpoint  the RPC endpoint (ALPC port name for local RPC)
  status    the RPC runtime's status of the call: 0 says the call came back, not that the procedure
            succeeded (its own result is in a trace only when it raised: --format json, "result")
  conf      confidence of the client-to-server join, 0.00 to 1.00 (--format json: its evidence)
  failures  how many of the server's operations for this call failed, then the first one"""


def _mode(r: CallRecord) -> str:
    mode = r.get("mode")
    if mode is None:
        return "-"
    if mode == "async" and r.get("completion_tid") is not None:
        return f"async@{r['completion_tid']}"
    return mode


def _table_row_any(r: CallRecord) -> str:
    """A table line for a record of any value types (the definition of the layout)."""
    return (
        f"{r['id']:>6}  {r['start'] or '-':<28} {duration_text(r['duration_us']):>9} {fit(_mode(r), 14):<14} "
        f"{fit(_who(r['client']), 30):<30} {fit(_who(r['server']), 30):<30} {fit(_what(r), 60):<60} "
        f"{fit(r['endpoint'] or '-', 18):<18} {_status(r['status']):>10} {r['confidence']:>4.2f} "
        f"{_first_failure(r)}\n"
    )


#: :func:`_table_row_any` as one %-format, for cells of the usual types: ``format(x, "<28")``
#: is ``"%-28s" % x`` for a ``str``, ``format(i, ">5")`` is ``"%5s" % i`` for an ``int`` and
#: ``format(f, ">4.2f")`` is ``"%4.2f" % f`` for a ``float``; one %-format is ~30% faster than
#: an f-string of format specs, which matters at a million rows.
_ROW = "%6s  %-28s %9s %-14s %-30s %-30s %-60s %-18s %10s %4.2f %s\n"


def _table_row(r: CallRecord) -> str:
    id_ = r["id"]
    start = r["start"] or "-"
    endpoint = r["endpoint"] or "-"
    confidence = r["confidence"]
    if type(id_) is not int or type(start) is not str or type(endpoint) is not str or type(confidence) is not float:
        return _table_row_any(r)
    who_c = _who(r["client"])
    who_s = _who(r["server"])
    what = _what(r)
    mode = _mode(r)
    return _ROW % (
        id_, start, duration_text(r["duration_us"]), mode if len(mode) <= 14 else fit(mode, 14),
        who_c if len(who_c) <= 30 else fit(who_c, 30), who_s if len(who_s) <= 30 else fit(who_s, 30),
        what if len(what) <= 60 else fit(what, 60), endpoint if len(endpoint) <= 18 else fit(endpoint, 18),
        _status(r["status"]), confidence, _first_failure(r),
    )  # fmt: skip


TABLE_HEAD = (f"{'id':>6}  {'start':<28} {'duration':>9} {'mode':<14} {'client':<30} {'server':<30} "
              f"{'interface!procedure (or /opnum)':<60} {'endpoint':<18} {'status':>10} {'conf':>4} failures")


def write_table(records: Iterable[CallRecord], out: IO[str]) -> None:
    write = out.write
    write(TABLE_HEAD + "\n")
    row = _row_maker()
    for r in records:
        write(row(r))


def _row_maker():
    """:func:`_table_row`, or its C version where the optional C module was built (the same text:
    it fills :data:`_ROW`, and hands records of unusual types to :func:`_table_row_any`)."""
    from rpctrace.correlate.fast import table_row

    return table_row(_ROW, _table_row_any) or _table_row


def write_tree(calls, trace, out: IO[str], record) -> None:
    """The call tree, as ``rpctrace tree`` prints it: client process -> client thread -> call ->
    the server's operations for it -> the calls the server made meanwhile (nested the same way).

    ``calls`` are the calls to start from (the roots, or one call); ``record`` a
    :class:`~rpctrace.correlate.records.RecordMaker` of the trace (it also names statuses)."""
    from rpctrace.knowledge.status import is_failure as is_failure_status, ntstatus_name as status_name

    def line(depth: int, text: str) -> None:
        out.write("  " * depth + text + "\n")

    def show(call, depth: int, seen: set) -> None:
        if id(call) in seen:
            return
        seen.add(id(call))
        r = record(call)
        iface = r["interface"]["name"] or r["interface"]["uuid"] or "?"
        proc = r["procedure"] or (f"opnum {r['opnum']}" if r["opnum"] is not None else "opnum ?")
        mode = _mode(r)
        result = (f"result {_status(r['result'])} ({r['result_source']})" if r.get("result") is not None
                  else "result not in the trace")
        line(depth, f"call {r['id']}  {iface}!{proc}  {mode}  {r['protocol'] or '?'} {r['endpoint'] or '-'}  "
                    f"{duration_text(r['duration_us'])}  rpc status {_status(r['status'])}, {result}  "
                    f"confidence {r['confidence']:.2f}")
        server = r["server"]
        srv = (_address(server) + " (from the capture)" if _address(server) else
               f"{server['image'] or '?'}" + (f" ({server['service']})" if server.get("service") else "")
               + f" pid {'-' if server['pid'] is None else server['pid']} thread {'-' if server['tid'] is None else server['tid']}")
        line(depth + 1, f"-> server {srv}"
                        + (f"  ALPC message {r['alpc_message_id']}" if r["alpc_message_id"] is not None else "")
                        + f"  [{r['start'] or '?'} .. {r['end'] or '?'}]")
        if not call.operations and not call.children:
            line(depth + 1, "(no server operations recorded)")
        for op in call.operations:
            status = op.fields.get("status")
            failed = is_failure_status(status)
            name = status_name(status) if status_name is not None and isinstance(status, int) and status else None
            line(depth + 1, f"{'FAILED ' if failed else ''}{op.kind} {target_text(op)}  status {_status(status)}"
                            + (f" {name}" if name else "") + f"  at {ticks_to_iso(op.ts)}")
            if failed and op.stack:
                for addr in op.stack:
                    line(depth + 3, trace.symbolize(op.pid, addr))
        for child in call.children:
            show(child, depth + 1, seen)

    groups: dict = {}
    for call in calls:
        wire = getattr(call, "wire", None)
        key = call.client_pid
        if key is None and wire is not None and wire.client_address:
            key = ("address", wire.client_address)  # a client only the capture shows: by its address
        groups.setdefault(key, {}).setdefault(call.client_tid, []).append(call)
    seen: set = set()
    for pid, threads in groups.items():
        if isinstance(pid, tuple):
            line(0, f"client {_address({'address': pid[1]})} (from the capture: no process or thread recorded)")
            for group in threads.values():
                for call in group:
                    show(call, 1, seen)
            continue
        info = trace.process(pid)
        image = (info.image if info and info.image else "?") if pid is not None else "client not recorded"
        service = record.service(pid, None) if pid is not None else None
        head = image + (f" ({service})" if service else "") + (f" pid {pid}" if pid is not None else "")
        if info is not None and info.command_line:
            head += f"  {fit(info.command_line, 160)}"
        line(0, head)
        for tid, group in threads.items():
            line(1, f"thread {'?' if tid is None else tid}")
            for call in group:
                show(call, 2, seen)
