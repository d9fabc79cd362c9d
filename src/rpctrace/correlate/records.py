"""The record shape of a reconstructed call (the ``rpctrace calls --format json`` contract).

``rpctrace calls`` turns every call of a trace into a record, several hundred thousand of them on
a busy trace, so building one must cost a few microseconds.  Most of what a record holds repeats
from call to call: the image of a process, the service a server process stands for (which needs
its command line parsed), the names of an interface and procedure, the name of a status.
:class:`RecordMaker` looks each of these up once per trace; :func:`call_record` and
:func:`failure_record` keep the one-call API for callers that format a handful of calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, cast

from rpctrace.model import Event, target_of, ticks_to_iso
from rpctrace.schema import CallRecord, FailureRecord

if TYPE_CHECKING:
    from rpctrace.correlate.calls import Call
    from rpctrace.trace.model import Trace

__all__ = ["NamesLookup", "RecordMaker", "StatusNameLookup", "call_record", "failure_record"]

#: ``(interface uuid, opnum) -> (interface name, procedure name)``, e.g.
#: :func:`rpctrace.knowledge.interfaces.lookup`
NamesLookup = Callable[[str, "int | None"], "tuple[str | None, str | None]"]
#: ``status -> symbolic name or None``, e.g. :func:`rpctrace.knowledge.status.ntstatus_name`
StatusNameLookup = Callable[[int], "str | None"]

_MISSING: Any = object()


class RecordMaker:
    """Builds the records of the calls of one trace, remembering the lookups that repeat.

    Lookups are remembered per process id (image), per process id and interface (service), per
    interface and opnum (names) and per status value (status name), so the trace's process
    table and the ``names``/``status_name`` lookups must not change while the maker is in use:
    make one per listing.  The records are the same as :func:`call_record` gives, built fresh
    for every call (callers may change them).
    """

    __slots__ = ("_trace", "_names", "_status_name", "_images", "_services", "_procedures", "_status_names", "_named_status",
                 "_core")

    def __init__(self, trace: Trace, names: NamesLookup | None = None, status_name: StatusNameLookup | None = None):
        self._trace = trace
        self._names = names
        self._status_name = status_name
        self._images: dict[int | None, str | None] = {}
        self._services: dict[tuple[int | None, str | None], str | None] = {}
        self._procedures: dict[tuple[str, int | None], tuple[str | None, str | None]] = {}
        self._status_names: dict[int, str | None] = {}
        self._named_status = bool(status_name)  # failure_record's test of the lookup
        self._core: Callable[[Any], Any] | None = _fast_core(self)  # the C builder for the C engine's calls

    def image(self, pid: int | None) -> str | None:
        """The image name of process ``pid``, or None when the trace does not know it."""
        try:
            return self._images[pid]
        except KeyError:
            info = self._trace.process(pid)
            image = self._images[pid] = info.image if info else None
            return image

    def service(self, pid: int | None, interface: str | None) -> str | None:
        """The service server process ``pid`` hosts: svchost ``-s NAME``, else the owner of
        ``interface`` (see :func:`rpctrace.knowledge.services.service_for`)."""
        key = (pid, interface)
        try:
            return self._services[key]
        except KeyError:
            from rpctrace.knowledge.services import service_for

            info = self._trace.process(pid)
            service = service_for(info.image, info.command_line, interface) if info else None
            self._services[key] = service
            return service

    def _status_text(self, status: int) -> str | None:
        try:
            return self._status_names[status]
        except KeyError:
            name = self._status_names[status] = self._status_name(status)  # type: ignore[misc]
            return name

    def failure(self, op: Event) -> FailureRecord:
        """The record of one failed operation the server did for a call."""
        return _failure(op, self._status_text if self._named_status else None)

    def __call__(self, call: Call) -> CallRecord:
        """The record of ``call``."""
        if self._core is not None:
            built = self._core(call)  # the same record, built in C (NotImplemented: not an engine call)
            if built is not NotImplemented:
                return cast(CallRecord, built)
        # The lookups are inlined as cache hits (the common case); misses go through the methods.
        interface = call.interface
        opnum = call.opnum
        if self._names is not None and interface:
            try:
                iname, proc = self._procedures[interface, opnum]
            except KeyError:
                found = self._names(interface, opnum)
                iname, proc = self._procedures[interface, opnum] = (found[0], found[1])
        else:
            iname = proc = None
        images = self._images
        client_pid = call.client_pid
        try:
            client_image = images[client_pid]
        except KeyError:
            client_image = self.image(client_pid)
        server_pid = call.server_pid
        try:
            server_image = images[server_pid]
        except KeyError:
            server_image = self.image(server_pid)
        try:
            service = self._services[server_pid, interface]
        except KeyError:
            service = self.service(server_pid, interface)
        start = call.start
        end = call.end
        server_start = call.server_start
        server_end = call.server_end
        status = call.status
        parent = call.parent
        children = call.children
        failures = call.failures
        record: CallRecord = {
            "id": call.id,
            "client": {"pid": client_pid, "tid": call.client_tid, "image": client_image},
            "server": {"pid": server_pid, "tid": call.server_tid, "image": server_image, "service": service},
            "interface": {"uuid": interface, "name": iname},
            "opnum": opnum,
            "procedure": proc,
            "endpoint": call.endpoint,
            "protocol": call.protocol_name,
            "mode": call.mode,
            "completion_tid": call.completion_tid,
            "alpc_message_id": call.alpc_message_id,
            "start": ticks_to_iso(start) if start is not None else None,
            "end": ticks_to_iso(end) if end is not None else None,
            "server_start": ticks_to_iso(server_start) if server_start is not None else None,
            "server_end": ticks_to_iso(server_end) if server_end is not None else None,
            "duration_us": (end - start) / 10 if end is not None and start is not None else None,
            "status": status if status is not None else call.server_status,
            "result": call.result_status,
            "result_source": call.result_source,
            "auth_level": call.auth_level,
            "auth_service": call.auth_service,
            "confidence": call.confidence,
            "evidence": call.evidence,
            "ambiguous": call.ambiguous,
            "parent": parent.id if parent else None,
            "children": [c.id for c in children] if children else [],
            "failures": [self.failure(op) for op in failures] if failures else [],
        }
        if proc is None and self._trace.symbols is not None:
            from rpctrace.correlate.procedure import derived_procedure

            derived = derived_procedure(self._trace, call)
            if derived:  # named by the server's PDB, not a database: said so in the record
                record["procedure"] = derived
                record["procedure_source"] = "symbols"
        wire = call.wire
        if wire is not None:
            _add_wire(record, wire)
        return record


def _fast_core(maker: RecordMaker) -> Callable[[Any], Any] | None:
    from rpctrace.correlate.fast import record_core

    return record_core(maker)


def _add_wire(record: CallRecord, wire: Any) -> None:
    """A call seen in a network capture also has the client's and server's address and port,
    the pipe (named pipes) and the capture's own facts (``wire``); calls from a trace alone keep
    the fixed record shape (see :mod:`rpctrace.render.recordjson`)."""
    record["client"]["address"] = wire.client_address
    record["client"]["port"] = wire.client_port
    record["server"]["address"] = wire.server_address
    record["server"]["port"] = wire.server_port
    record["pipe"] = wire.pipe
    record["wire"] = wire.as_dict()


def _failure(op: Event, status_name: StatusNameLookup | None) -> FailureRecord:
    f = op.fields
    status = f.get("status")
    return {
        "kind": op.kind,
        "path": target_of(op),
        "status": status,
        "status_name": status_name(status) if status_name is not None and status is not None else None,
        "pid": op.pid,
        "tid": op.tid,
        "ts": ticks_to_iso(op.ts),
    }


def failure_record(op: Event, status_name: StatusNameLookup | None = None) -> FailureRecord:
    """The record of one failed operation (``status_name`` names its status when given)."""
    return _failure(op, status_name if status_name else None)


def call_record(call: Call, trace: Trace, names: NamesLookup | None = None, status_name: StatusNameLookup | None = None) -> CallRecord:
    """The JSON shape of one call (the `rpctrace calls --format json` contract).

    ``names`` (interface uuid, opnum) -> (interface name, procedure) and ``status_name`` are
    optional lookups from the knowledge base; without them names are null.  To format many
    calls of one trace, use one :class:`RecordMaker`: it looks up each process, interface and
    status once.
    """
    return RecordMaker(trace, names=names, status_name=status_name)(call)
