"""One trace -> its rows of the index's tables (a pure function: same file, same rows).

:func:`extract` runs the normal pipeline on one plain trace file (:func:`rpctrace.pipeline.calls`
streamed, then :func:`rpctrace.pipeline.findings` and :func:`rpctrace.pipeline.coverage`, the
coverage ``rpctrace check`` reports) and turns the result into columns of the tables
:mod:`rpctrace.tables.schema` declares.  It writes nothing and depends on nothing but the file,
so it runs the same in a local process pool and on a cluster worker; :mod:`rpctrace.tables.store`
writes what it returns.  It lives in the pipeline (it runs the stages) and is handed to
:func:`rpctrace.tables.run.index` as the extractor, so that :mod:`rpctrace.tables` stays below the
pipeline (no package cycle).

The ``calls`` rows are the records ``rpctrace calls --format json`` prints (the same
:class:`~rpctrace.correlate.records.RecordMaker`), one column per field.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from rpctrace import __version__
from rpctrace.errors import InputError, RpctraceError
from rpctrace.tables.rows import (
    UNKNOWN_DAY,
    Extracted,
    append_row,
    day_of,
    empty_columns,
    FailureKey,
    failure_key,
    host_of,
    int_or_none,
    renamed_error,
    trace_id_of,
    us_of,
)
from rpctrace.tables.schema import SCHEMA_VERSION, TABLES

if TYPE_CHECKING:
    from rpctrace.model import Event
    from rpctrace.schema import Finding

__all__ = ["extract"]


def extract(path: str, *, sha256: str, display: str | None = None, origin: str | None = None,
            member: str | None = None, input_bytes: int | None = None, compression: str | None = None,
            keep_going: bool = False, damage: InputError | None = None) -> Extracted:
    """The rows of the trace in ``path`` (a plain file; ``sha256`` its content hash; ``display``
    how errors name it; ``origin``, ``member`` and ``compression`` the input it came from, as the
    traces table records it).  Damage that ends reading is kept in the result's ``error``
    (rows hold what was read before it); a file nothing can be read from gives the traces row
    alone, with the error.  ``damage``: a compressed input broke there (``path`` holds what came
    before it); it is the error reported."""
    from rpctrace import pipeline
    from rpctrace.correlate.records import RecordMaker
    from rpctrace.explain.acl_sources import AclSources
    from rpctrace.knowledge import sids
    from rpctrace.knowledge.interfaces import lookup
    from rpctrace.knowledge.services import services_of
    from rpctrace.knowledge.status import ntstatus_name
    from rpctrace.model import target_of, ticks_to_iso

    display = display or path
    trace_id = trace_id_of(sha256)
    if input_bytes is None:
        input_bytes = os.path.getsize(path)
    cols = empty_columns()
    base = {"trace_id": trace_id, "path": os.path.abspath(origin or path), "member": member,
            "input_bytes": input_bytes, "compression": compression, "rpctrace_version": __version__,
            "schema_version": SCHEMA_VERSION}
    try:
        # the failed operations (every one `calls --format json` lists), with stacks (explain's
        # findings use them, and the coverage counts them); the tables hold failures, not every operation
        trace, result = pipeline.calls([path], keep_going=keep_going, operations="failed", stacks=True)
    except InputError as exc:
        error = renamed_error(exc, path, display) if damage is None else damage
        # nothing was read: every count is zero, nothing can be said present or missing
        zero = {c.name: 0 for c in TABLES["traces"].columns if c.type == "int64" and not c.nullable}
        append_row(cols["traces"], {**zero, **base, "host_source": "fallback: nothing could be read", "missing": [],
                                 "lacks": [f"nothing could be read: {error.one_line()}"], "error": error.one_line()})
        return Extracted(trace_id, "unknown", UNKNOWN_DAY, cols, error.one_line(), {"traces": 1})
    except RpctraceError as exc:  # pragma: no cover - readers raise InputError
        raise InputError(display, str(exc)) from None

    error_line = None
    if damage is not None:
        error_line = damage.one_line()
    elif trace.error is not None:
        error_line = renamed_error(trace.error, path, display).one_line()

    make = RecordMaker(trace, names=lookup, status_name=ntstatus_name)
    calls_cols = cols["calls"]
    failed_calls = 0
    for call in result.calls:
        rec = make(call)
        failures = call.failures
        failed = bool(failures or call.status or call.server_status)
        failed_calls += failed
        append_row(calls_cols, {
            "trace_id": trace_id, "call_id": call.id,
            "client_pid": call.client_pid, "client_tid": call.client_tid, "client_image": rec["client"]["image"],
            "server_pid": call.server_pid, "server_tid": call.server_tid, "server_image": rec["server"]["image"],
            "server_service": rec["server"]["service"],
            "interface_uuid": call.interface, "interface_name": rec["interface"]["name"], "opnum": call.opnum,
            "procedure": rec["procedure"], "endpoint": call.endpoint, "protocol": rec["protocol"], "mode": rec["mode"],
            "completion_tid": rec["completion_tid"], "alpc_message_id": rec["alpc_message_id"],
            "start": us_of(call.start), "end": us_of(call.end), "server_start": us_of(call.server_start),
            "server_end": us_of(call.server_end), "duration_us": rec["duration_us"], "status": rec["status"],
            "failed": failed, "failure_count": len(failures), "auth_level": call.auth_level,
            "auth_service": call.auth_service, "confidence": float(call.confidence), "evidence": list(call.evidence),
            "ambiguous": bool(call.ambiguous), "parent_call_id": call.parent.id if call.parent else None,
        })

    # explain's findings: which failure each one blames, and the identity it ran under
    findings = pipeline.findings(trace, result, acls=AclSources())
    blamed: dict[FailureKey, Finding] = {}
    for f in findings:
        fail = f.get("failure") or {}
        key = failure_key(fail.get("pid"), fail.get("tid"), fail.get("ts"), fail.get("kind"))
        blamed.setdefault(key, f)

    fail_cols = cols["failures"]

    def add_failure(op: Event, call_id: int | None) -> None:
        fields = op.fields
        status = fields.get("status")
        row = {
            "trace_id": trace_id, "call_id": call_id, "kind": op.kind,
            "path": target_of(op),
            "status": status, "status_name": ntstatus_name(status) if status is not None else None,
            "desired_access": fields.get("desired_access"), "pid": op.pid, "tid": op.tid, "ts": us_of(op.ts),
            "finding": False,
        }
        f = blamed.get(failure_key(op.pid, op.tid, ticks_to_iso(op.ts), op.kind))
        if f is not None:
            identity = f.get("identity") or {}
            row.update(finding=True, finding_call_id=f.get("call"), finding_summary=f.get("summary"),
                       identity_user=identity.get("user"), identity_service=identity.get("service"),
                       identity_service_sid=identity.get("service_sid"))
        append_row(fail_cols, row)

    for call in result.calls:
        for op in call.failures:
            add_failure(op, call.id)
    for op in result.outside:
        add_failure(op, None)

    proc_cols = cols["processes"]
    for pid in sorted(trace.processes):
        info = trace.processes[pid]
        named = services_of(info.command_line) if info.command_line else None
        append_row(proc_cols, {
            "trace_id": trace_id, "pid": pid, "image": info.image, "command_line": info.command_line,
            "parent_pid": info.parent_pid, "session_id": info.session_id, "user_sid": info.user_sid,
            "user": sids.name_of(info.user_sid) if info.user_sid else None,
            "service": named[0] if named else None, "start": us_of(info.start), "end": us_of(info.end),
        })

    # what the input holds and lacks, as `rpctrace check` reports it (the same function)
    cov = pipeline.coverage(trace)
    kinds = cov.events

    def count(*names: str, prefix: str | None = None, but: str | None = None) -> int:
        n = sum(kinds.get(k, 0) for k in names)
        if prefix is not None:
            n += sum(v for k, v in kinds.items() if k.startswith(prefix) and not (but and k.startswith(but)))
        return n

    lacks = list(cov.advice)
    lacks += [line for line in pipeline.limits(trace) if line not in lacks]
    damaged = sum(len(i.get("damage") or []) for i in trace.sources)
    if damaged:
        lacks.append(f"{damaged} damaged region(s) were skipped (--keep-going): what they held is missing")
    if error_line:
        lacks.append(f"reading stopped at damage ({error_line}): what follows it is not in the trace")
    host, computer, host_source = host_of(trace.sources)
    first, last = trace.time_range if trace.time_range else (None, None)
    header: dict[str, Any] = next((i["header"] for i in trace.sources if i.get("header")), {})
    formats = sorted(set(trace.formats)) if trace.formats else sorted({str(i.get("format", "etl")) for i in trace.sources})
    append_row(cols["traces"], {
        **base, "format": ",".join(formats), "computer_name": computer, "host_source": host_source,
        "start": us_of(first), "end": us_of(last), "events": trace.records if trace.records is not None else sum(kinds.values()),
        "calls": len(result.calls), "failed_calls": failed_calls, "failures": len(fail_cols["trace_id"]),
        "findings": len(findings), "rpc_events": count("rpc.client_start", "rpc.server_start"),
        "rpc_stop_events": count("rpc.client_stop", "rpc.server_stop"), "alpc_events": count(prefix="alpc."),
        "registry_events": count(prefix="registry.", but="registry.kcb_"), "file_events": count(prefix="file."),
        "stacks": count("stack"), "process_rundown": count("process.rundown"),
        "image_loads": count("image.load", "image.rundown"), "processes": len(proc_cols["pid"]),
        "events_lost": cov.lost_events, "buffers_lost": cov.lost_buffers, "damaged_regions": damaged,
        "unpaired": sum(result.unpaired.values()), "outside_failures_dropped": result.outside_dropped,
        "missing": list(cov.missing), "lacks": lacks, "error": error_line,
        "os_build": int_or_none(header.get("os_build")),
        "pointer_size": int_or_none(header.get("pointer_size"))
        or next((i["pointer_size"] for i in trace.sources if int_or_none(i.get("pointer_size"))), None),
    })
    counts = {name: len(next(iter(c.values()))) for name, c in cols.items()}
    return Extracted(trace_id, host, day_of(first), cols, error_line, counts)
