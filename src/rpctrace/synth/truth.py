"""The ground truth that comes with every synthetic trace.

Why: a reader, a correlator and an explainer can only be tested against a file whose meaning is
known exactly.  The truth states what the writer *did* (every call, who served it, what failed)
and, for traces up to 200,000 records, every record as the normalized event the reader should
produce (docs/events.md), so a round-trip test can compare the two field by field.

Schema (all timestamps ISO 8601 UTC with 7 fractional digits, from ``rpctrace.model.ticks_to_iso``):

``scenario``, ``seed``, ``pointer_size``, ``cpus``
``record_count``      every record in the file, the logfile header included (= a header pass)
``start``, ``end``    the logfile header's StartTime and EndTime
``buffers``           {written, dropped, buffer_size}
``processes``         [{pid, ppid, image, command_line, user_sid, session_id, service, service_sid,
                      started, ended}] (started/ended: ISO when inside the trace, else null)
``calls``             [{id, client: {pid, tid, image}, server: {pid, tid, image, service},
                      interface, opnum, procedure, endpoint, protocol ("LRPC"), alpc_message_id,
                      start, end (client RPC 5 / RPC 7), server_start, server_end (RPC 6 / RPC 8),
                      status (the RPC status in events 7/8), status_name,
                      result (the procedure's return value: marshalled in the reply, NOT in the
                      trace), parent, children, async (bool), mode ("sync"/"async"/"datagram"),
                      completion_tid (async: the thread that got the reply), client_activity_id,
                      server_activity_id, events_dropped, failures: [{kind, path, nt_path, status,
                      status_name, pid, tid, ts, and for registry failures frames (return addresses,
                      innermost first, = the StackWalk event's) and stack ("module!function+0xNN"
                      for each frame)}]}]
``dropped``           {buffers (lost buffers: the header's BuffersLost), buffer_records (the records in
                      them), events (events discarded for want of a buffer: the header's
                      EventsLost), records (every record lost either way), by_kind: {kind: n},
                      calls: [{id, events, kinds: {kind: n}}]}
``events``            [{ts, pid, tid, cpu, provider, id, opcode, version, kind, fields, stack}] in
                      *file order* (buffer by buffer, as a header pass yields them; sort by ts for
                      time order); ``stack`` is the frame list of the StackWalk event that belongs
                      to the event (as ``Event.stack``), else null; bytes fields are hex strings
``events_omitted``    true (and no ``events``) when the file has more than 200,000 records
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rpctrace.model import ticks_to_iso
from rpctrace.synth import payloads as P
from rpctrace.synth.emit import nt_to_user_path

EVENTS_LIMIT = 200_000

STATUS_NAMES = {
    0: "STATUS_SUCCESS",
    0xC0000022: "STATUS_ACCESS_DENIED",
    0xC0000034: "STATUS_OBJECT_NAME_NOT_FOUND",
    0xC0000061: "STATUS_PRIVILEGE_NOT_HELD",
    0xC0000023: "STATUS_BUFFER_TOO_SMALL",
    0x80000005: "STATUS_BUFFER_OVERFLOW",
    0x8000001A: "STATUS_NO_MORE_ENTRIES",
    0x80070005: "E_ACCESSDENIED",
    5: "ERROR_ACCESS_DENIED",
    1717: "RPC_S_UNKNOWN_IF",
    1722: "RPC_S_SERVER_UNAVAILABLE",
    1726: "RPC_S_CALL_FAILED",
    1753: "EPT_S_NOT_REGISTERED",
}


def status_name(status: int, rpc: bool = False) -> str | None:
    """Symbolic name; RPC statuses (events 7/8) are Win32 codes, registry ones NTSTATUS."""
    if rpc and status == 0:
        return "RPC_S_OK"
    return STATUS_NAMES.get(status)


def build(run: Any, writer: Any, header: dict, *, scenario: str, seed: int, keep: bool) -> dict:
    """Assemble the truth dict from a finished run (see the module docstring for the schema)."""
    world = run.world
    clock = writer.clock

    iso_ft = _IsoCache()

    def iso(qpc: int | None) -> str | None:
        return None if qpc is None else iso_ft(clock.filetime(qpc))

    processes = []
    for proc in world.procs:
        if proc.started_at == -1:
            continue  # a story process whose story never ran
        processes.append({
            "pid": proc.pid,
            "ppid": proc.ppid,
            "image": proc.image,
            "command_line": proc.command_line,
            "user_sid": proc.user_sid,
            "session_id": proc.session,
            "service": proc.service,
            "service_sid": P.service_sid(proc.service) if proc.service else None,
            "started": iso(proc.started_at),
            "ended": iso(proc.ended_at),
        })

    dropped_by_call: dict[int, dict[str, int]] = {}
    by_kind: dict[str, int] = {}
    for tag in writer.dropped_tags:
        if tag is None:
            continue
        cid, kind, _ev = tag
        by_kind[kind] = by_kind.get(kind, 0) + 1
        if cid is not None:
            kinds = dropped_by_call.setdefault(cid, {})
            kinds[kind] = kinds.get(kind, 0) + 1

    # A generator: a 10-million-event trace has ~750,000 calls, written one at a time.
    calls = (_call(rec, iso, dropped_by_call) for rec in run.sim.calls)

    truth: dict[str, Any] = {
        "scenario": scenario,
        "seed": seed,
        "pointer_size": writer.pointer_size,
        "cpus": writer.cpus,
        "record_count": writer.record_count,
        "start": ticks_to_iso(header["start_time"]),
        "end": ticks_to_iso(header["end_time"]),
        "buffers": {"written": header["buffers_written"], "dropped": writer.buffers_dropped,
                    "buffer_size": writer.buffer_size},
        "processes": processes,
        "calls": calls,
        # ALPC exchanges with ports that are no RPC endpoint (no RPC event): not calls
        "alpc_exchanges": run.sim.alpc_exchanges,
        "dropped": {
            "buffers": writer.buffers_dropped,
            "buffer_records": writer.buffer_records_dropped,
            "events": writer.events_discarded,
            "records": writer.records_dropped,
            "by_kind": dict(sorted(by_kind.items())),
            "calls": [{"id": cid, "events": sum(k.values()), "kinds": dict(sorted(k.items()))}
                      for cid, k in sorted(dropped_by_call.items())],
        },
    }
    if keep and writer.record_count <= EVENTS_LIMIT:
        truth["events"] = _events(writer, header, iso)
    else:
        truth["events_omitted"] = True
    return truth


def _call(rec: Any, iso, dropped_by_call: dict[int, dict[str, int]]) -> dict:
    srv = rec.server
    client = rec.client
    worker = rec.worker
    failures = []
    for kind, nt_path, status, pid, tid, ts, stack in rec.failures:
        f = {
            "kind": kind,
            "path": nt_to_user_path(nt_path) if nt_path else None,
            "nt_path": nt_path,
            "status": status,
            "status_name": status_name(status, rpc=kind.startswith("rpc.")),
            "pid": pid,
            "tid": tid,
            "ts": iso(ts),
        }
        if stack is not None:
            f["frames"] = [s["address"] for s in stack]
            f["stack"] = [s["symbol"] for s in stack]
        failures.append(f)
    return {
        "id": rec.id,
        "client": {"pid": client.pid, "tid": client.tid, "image": client.proc.image},
        "server": {"pid": srv.proc.pid, "tid": worker.tid, "image": srv.proc.image, "service": srv.name},
        "interface": rec.iface,
        "opnum": rec.opnum,
        "procedure": srv.interfaces[rec.iface].get(rec.opnum),
        "endpoint": srv.endpoint,
        "protocol": "LRPC",
        "alpc_message_id": rec.msg,
        "start": iso(rec.start),
        "end": iso(rec.end),
        "server_start": iso(rec.srv_start),
        "server_end": iso(rec.srv_end),
        "status": rec.status,
        "status_name": status_name(rec.status, rpc=True),
        "result": rec.result,
        "parent": rec.parent,
        "children": list(rec.children),
        "async": rec.mode != "sync",
        "mode": rec.mode,
        "completion_tid": rec.completion.tid if rec.completion is not None else None,
        "client_activity_id": _guid(rec.client_activity),
        "server_activity_id": _guid(rec.server_activity),
        "events_dropped": sum(dropped_by_call.get(rec.id, {}).values()),
        "failures": failures,
    }


def _guid(le: bytes) -> str | None:
    import uuid

    return str(uuid.UUID(bytes_le=le)) if le else None


def _events(writer: Any, header: dict, iso) -> list[dict]:
    """Normalized events in file order, the logfile header first (it is record #1 of buffer 0)."""
    head_fields = dict(header)
    events: list[dict] = [{
        "ts": ticks_to_iso(header["start_time"]),
        "pid": writer.controller_pid,
        "tid": writer.controller_tid,
        "cpu": 0,
        "provider": P.EVENTTRACE_GUID,
        "id": 0,
        "opcode": 0,
        "version": P.VER_HEADER,
        "kind": "trace.header",
        "fields": head_fields,
        "stack": None,
    }]
    written = [tag[2] for tag in writer.written_tags]
    present = {id(ev) for ev in written if ev is not None}
    for ev in written:
        if ev is None:
            continue
        owner = ev.pop("_owner", None)
        whole = ev.pop("_stack", None)  # a stack logged in parts: the frames a consumer puts together
        if owner is not None and id(owner) in present:
            owner["stack"] = whole if whole is not None else ev["fields"]["frames"]
    for ev in written:
        if ev is None:
            continue
        ev["ts"] = iso(ev["ts"])
        events.append(ev)
    return events


_LISTS = ("processes", "calls", "events")


def write(path: str | Path, truth: dict) -> None:
    """Write the truth as JSON: small values indented, and the long lists (processes, calls,
    events; any iterable, consumed as it is written) one compact item per line, which keeps
    greps and diffs usable and memory flat on traces with hundreds of thousands of calls."""
    compact = json.JSONEncoder(separators=(",", ":")).encode
    keys = list(truth)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("{\n")
        for i, key in enumerate(keys):
            value = truth[key]
            end = ",\n" if i < len(keys) - 1 else "\n"
            if key in _LISTS:
                fh.write(f" {json.dumps(key)}: [")
                sep = "\n  "
                for item in value:
                    fh.write(sep)
                    fh.write(compact(item))
                    sep = ",\n  "
                fh.write("\n ]" + end)
            else:
                fh.write(f" {json.dumps(key)}: " + json.dumps(value, indent=1).replace("\n", "\n ") + end)
        fh.write("}\n")


class _IsoCache:
    """``ticks_to_iso`` with the date-and-second prefix cached: a big truth formats millions of
    timestamps that share a few hundred seconds.  Same output as ``ticks_to_iso``."""

    def __init__(self) -> None:
        self._prefix: dict[int, str] = {}

    def __call__(self, ticks: int) -> str:
        sec, frac = divmod(ticks, 10_000_000)
        prefix = self._prefix.get(sec)
        if prefix is None:
            prefix = self._prefix[sec] = ticks_to_iso(sec * 10_000_000)[:-8]
        return f"{prefix}{frac:07d}Z"
