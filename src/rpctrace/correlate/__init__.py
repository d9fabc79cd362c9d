"""Correlation: ALPC message pairing -> RPC calls -> server-side attribution -> call tree.

``correlate(trace)`` is the library API; ``call_record`` gives the JSON shape the CLI prints.
"""

from __future__ import annotations

from rpctrace.correlate.alpc import AlpcMessage, pair_messages
from rpctrace.correlate.calls import Call, Correlation, correlate_events
from rpctrace.model import ticks_to_iso

__all__ = ["AlpcMessage", "Call", "Correlation", "correlate", "correlate_events", "pair_messages", "call_record"]


def correlate(trace) -> Correlation:
    return correlate_events(trace.events)


def _image(trace, pid):
    info = trace.process(pid)
    return info.image if info else None


def _service(trace, pid, interface=None):
    """The service the server process hosts: svchost -s NAME, else the owner of the interface."""
    from rpctrace.knowledge.services import service_for

    info = trace.process(pid)
    if not info:
        return None
    return service_for(info.image, info.command_line, interface)


def failure_record(op, status_name=None) -> dict:
    f = op.fields
    status = f.get("status")
    return {
        "kind": op.kind,
        "path": f.get("path") or f.get("open_path") or f.get("key_name"),
        "status": status,
        "status_name": status_name(status) if status_name and status is not None else None,
        "pid": op.pid,
        "tid": op.tid,
        "ts": ticks_to_iso(op.ts),
    }


def call_record(call: Call, trace, names=None, status_name=None) -> dict:
    """The JSON shape of one call (the `rpctrace calls --format json` contract).

    ``names`` (interface uuid, opnum) -> (interface name, procedure) and ``status_name`` are
    optional lookups from the knowledge base; without them names are null.
    """
    iname = proc = None
    if names is not None and call.interface:
        iname, proc = names(call.interface, call.opnum)
    return {
        "id": call.id,
        "client": {"pid": call.client_pid, "tid": call.client_tid, "image": _image(trace, call.client_pid)},
        "server": {
            "pid": call.server_pid,
            "tid": call.server_tid,
            "image": _image(trace, call.server_pid),
            "service": _service(trace, call.server_pid, call.interface),
        },
        "interface": {"uuid": call.interface, "name": iname},
        "opnum": call.opnum,
        "procedure": proc,
        "endpoint": call.endpoint,
        "protocol": call.protocol_name,
        "alpc_message_id": call.alpc_message_id,
        "start": ticks_to_iso(call.start) if call.start is not None else None,
        "end": ticks_to_iso(call.end) if call.end is not None else None,
        "server_start": ticks_to_iso(call.server_start) if call.server_start is not None else None,
        "server_end": ticks_to_iso(call.server_end) if call.server_end is not None else None,
        "duration_us": (call.end - call.start) / 10 if call.end is not None and call.start is not None else None,
        "status": call.status if call.status is not None else call.server_status,
        "auth_level": call.auth_level,
        "auth_service": call.auth_service,
        "confidence": call.confidence,
        "evidence": call.evidence,
        "ambiguous": call.ambiguous,
        "parent": call.parent.id if call.parent else None,
        "children": [c.id for c in call.children],
        "failures": [failure_record(op, status_name) for op in call.failures],
    }
