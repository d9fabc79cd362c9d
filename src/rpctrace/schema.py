"""The records that pass between stages and out to JSON, typed once.

The pipeline hands renderers these shapes; the JSON outputs are these shapes.  They are
``TypedDict``s rather than classes because they *are* JSON objects: built by the fast record
writers (:mod:`rpctrace.correlate.records`), dumped as they are, read back by users' tools.
docs/events.md describes every field.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

__all__ = ["CallRecord", "ClientSide", "FailureRecord", "Finding", "Hop", "InterfaceRef", "ServerSide", "WireRecord"]


class ClientSide(TypedDict, total=False):
    pid: int | None
    tid: int | None
    image: str | None
    command_line: str | None
    address: str | None  # a remote client (network capture)
    port: int | None


class ServerSide(TypedDict, total=False):
    pid: int | None
    tid: int | None
    image: str | None
    service: str | None
    command_line: str | None
    address: str | None  # a remote server (network capture)
    port: int | None


class InterfaceRef(TypedDict, total=False):
    uuid: str | None
    name: str | None
    opnum: int | None
    procedure: str | None
    #: where the procedure's name came from: "database", "symbols" (the server's PDB named the
    #: function above the RPC runtime's dispatch), None when nothing names it
    procedure_source: str | None
    endpoint: str | None
    protocol: str | None


class FailureRecord(TypedDict, total=False):
    """A failed operation of a server's work for a call (``calls --format json``: ``failures``)."""

    kind: str
    path: str | None
    status: int | None
    status_name: str | None
    pid: int | None
    tid: int | None
    ts: str


class WireRecord(TypedDict):
    """What a network capture says of a call (``calls --format json``: ``wire``: :meth:`rpctrace.correlate.remote.Wire.as_dict`)."""

    transport: str  # "TCP" or "NP"
    client_address: str | None
    client_port: int | None
    server_address: str | None
    server_port: int | None
    pipe: str | None
    call_id: int
    connection: str
    request_frame: int | None
    response_frame: int | None
    interface_source: str | None  # "bind", "alter_context", "epm", "server trace" or None
    auth_type: int | None
    fault: bool
    fault_name: str | None
    join: str | None  # how (or why not) it was joined with the server's trace
    offset_us: float | None  # the clock offset the join used (trace - capture)


class CallRecord(TypedDict):
    """One call (the ``rpctrace calls --format json`` contract; key order is fixed)."""

    id: int
    client: ClientSide
    server: ServerSide
    interface: InterfaceRef
    opnum: int | None
    procedure: str | None
    endpoint: str | None
    protocol: str | None
    mode: str | None
    completion_tid: int | None
    alpc_message_id: int | None
    start: str | None
    end: str | None
    server_start: str | None
    server_end: str | None
    duration_us: float | None
    status: int | None
    result: int | None
    result_source: str | None
    auth_level: int | None
    auth_service: int | None
    confidence: float
    evidence: tuple[str, ...]
    ambiguous: bool
    parent: int | None
    children: list[int]
    failures: list[FailureRecord]
    #: ``"symbols"`` when no database names the procedure and the server's PDB named the function
    #: its stack ran (rpctrace.correlate.procedure); absent when a database named it
    procedure_source: NotRequired[str]
    pipe: NotRequired[str | None]  # calls seen in a network capture: the named pipe
    wire: NotRequired[WireRecord]  # and what the capture says of them


class Hop(TypedDict):
    """One call of a finding's chain, root first, the failing hop last."""

    call: int
    client: ClientSide
    server: ServerSide
    interface: InterfaceRef
    procedure: str | None
    procedure_source: str | None  # "database", "symbols" or None (see InterfaceRef)
    alpc_message_id: int | None
    status: int | None


class Finding(TypedDict, total=False):
    """What ``rpctrace explain --format json`` prints per finding."""

    call: int | None
    summary: str
    client: ClientSide | None
    client_note: str
    server: ServerSide
    interface: InterfaceRef | None
    hops: list[Hop]
    status: dict[str, Any] | None
    failure: dict[str, Any]
    identity: dict[str, Any]
    acl: dict[str, Any] | None
    fix: dict[str, Any] | None
    confidence: float | None
    outside: bool
    dispatch: dict[str, Any] | None
    chain: list[str]
