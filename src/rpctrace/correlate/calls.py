"""Reconstruct RPC calls across the process boundary and attribute the server's work to them.

The joins, strongest first (etw-and-alpc-facts.md §2 "better join"):

1. client RPC event 5 on thread C, then C's ALPC Send(X): the call's request is message X;
2. the server thread S that took X (ALPC pairing, :mod:`rpctrace.correlate.alpc`), then RPC
   event 6 on S: the server side of the same call;
3. stop events 7/8 paired with their start by activity id within the process;
4. everything S does between taking X and replying (registry, files, further RPC calls) belongs
   to the call; calls S makes meanwhile are its children.

Degraded inputs still give answers, labelled as such: with RPC events only (no ALPC) a client
call is matched to a server call by endpoint + interface + opnum + time (confidence 0.5, or
lower and ``ambiguous`` when several server calls fit); with ALPC only, message pairs become
calls with the port name as endpoint and no interface.  Every call lists the joins that held in
``evidence``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

from rpctrace.correlate.alpc import AlpcMessage, AlpcPairing, with_evidence
from rpctrace.knowledge.failures import event_class
from rpctrace.knowledge.status import is_failure
from rpctrace.model import Event
from rpctrace.trace.gcpause import gc_paused

if TYPE_CHECKING:
    from rpctrace.correlate.remote import Wire

#: a thread as events name it: ``(pid, tid)``, either None when the source does not know it
ThreadKey = tuple["int | None", "int | None"]
#: ``(tid, ts) -> pid``: the process of a thread at a time, when known
PidOf = Callable[["int | None", "int | None"], "int | None"]

PROTOCOLS = {1: "TCP", 2: "NP", 3: "LRPC", 4: "HTTP"}
#: how long after RPC event 5 the client's ALPC Send may come (100 ns ticks)
SEND_WINDOW = 5 * 10_000_000
#: RPC-only fallback: how far a server start may follow the client start when the client's
#: end is not known
FALLBACK_WINDOW = 30 * 10_000_000

FAILING = ("registry.", "file.")


is_failure_status = is_failure  # the one definition (rpctrace.knowledge.status)


@dataclass(eq=False, slots=True)
class Call:
    id: int
    client_pid: int | None = None
    client_tid: int | None = None
    server_pid: int | None = None
    server_tid: int | None = None
    interface: str | None = None
    opnum: int | None = None
    endpoint: str | None = None
    protocol: int | None = None
    auth_level: int | None = None
    auth_service: int | None = None
    impersonation_level: int | None = None
    start: int | None = None  # client start (or the earliest thing seen of the call)
    end: int | None = None  # client end (or the latest thing seen)
    server_start: int | None = None
    server_end: int | None = None
    status: int | None = None  # RPC runtime status from event 7 (client) or 8 (server)
    server_status: int | None = None
    client_activity: str | None = None
    server_activity: str | None = None
    message: AlpcMessage | None = None
    confidence: float = 0.0
    evidence: tuple[str, ...] = ()  # shared tuples (see alpc.with_evidence)
    ambiguous: bool = False
    parent: "Call | None" = None
    # empty tuples until something is added: most calls have no children, and a listing keeps
    # only failed operations (a million calls, two empty lists each, is 100 MB)
    children: "list[Call] | tuple[()]" = ()
    operations: "list[Event] | tuple[()]" = ()
    has_client: bool = False
    has_server: bool = False
    from_message: bool = False  # made from an ALPC message (no client RPC event bound to it)
    merged: bool = False  # RPC-only fallback: folded into the client-side call
    #: a call seen in a network capture: addresses, ports, pipe, frames, how it was joined
    #: (:class:`rpctrace.correlate.remote.Wire`); None for calls from a trace alone
    wire: "Wire | None" = None
    stop_tid: int | None = None  # the thread that logged the client's RPC event 7, when not the caller
    #: the procedure's result where the trace has it: the status of RpcRaiseException (RPC event 9)
    #: or of extended error information (event 1) logged on the call's threads while it was open;
    #: None when the trace does not have it (ETW does not record a procedure's return value)
    result_status: int | None = None
    result_source: str | None = None
    #: how many of the server's operations for this call were not kept (``operations="report"``:
    #: a call beyond the first ones, without a failure, keeps none)
    ops_not_kept: int = 0
    expected_not_kept: int = 0  # of those, how many failed with an expected result

    @property
    def mode(self) -> str | None:
        """``"sync"`` (the caller waited for the reply), ``"async"`` (it did not; the reply was
        taken later, usually by another thread), ``"datagram"`` (one-way: no reply at all), or
        None when the trace does not show it (no ALPC message, no completion elsewhere)."""
        msg = self.message
        if msg is None:
            return "async" if self.stop_tid is not None else None
        if msg.waited:
            return "sync"
        if msg.reply_ts is None and msg.client_receive_ts is None:
            return "async" if self.stop_tid is not None else "datagram"
        return "async"

    @property
    def completion_tid(self) -> int | None:
        """For an asynchronous call, the client thread that took the reply (or logged the
        completion), when the trace shows it."""
        msg = self.message
        if msg is not None and msg.client_receive_tid is not None and not msg.waited:
            return msg.client_receive_tid
        return self.stop_tid

    @property
    def alpc_message_id(self) -> int | None:
        return self.message.message_id if self.message is not None else None

    @property
    def failures(self) -> list[Event]:
        """The server's failed operations for this call (expected results among them)."""
        return [op for op in self.operations if op.kind.startswith(FAILING) and is_failure_status(op.fields.get("status"))]

    @property
    def expected_only(self) -> bool:
        """Operations failed, all of them with expected results (kept or counted)."""
        return bool(self.failures or self.expected_not_kept) and not self.blamed

    @property
    def blamed(self) -> list[Event]:
        """The failed operations that deserve blame (:mod:`rpctrace.knowledge.failures`): not the
        expected results (optional keys not found, buffer sizes asked, fast I/O refused)."""
        return [op for op in self.operations if op.kind.startswith(FAILING) and event_class(op) == "blame"]

    @property
    def alpc_only(self) -> bool:
        """An ALPC message exchange no RPC event belongs to: not known to be an RPC call at all
        (csrss's ApiPort, other non-RPC ports; or an RPC call whose RPC events were lost)."""
        return self.message is not None and not self.has_client and not self.has_server and self.wire is None

    @property
    def protocol_name(self) -> str | None:
        if self.alpc_only:
            return "ALPC"
        if self.protocol is None:
            return "LRPC" if self.message is not None else None
        return PROTOCOLS.get(self.protocol, str(self.protocol))

    def subtree(self) -> Iterator["Call"]:
        yield self
        for child in self.children:
            yield from child.subtree()


#: how many failed operations outside any call a correlation keeps (the rest are counted)
MAX_OUTSIDE = 100_000
#: file creates outside calls wait here for their status (it comes with the IRP's completion)
_CREATES_WAITING = 65_536


@dataclass
class Correlation:
    calls: list[Call]
    unpaired: dict[str, int]
    ports: dict[int, set[str]]  # server pid -> ALPC port names it waits on
    endpoints: dict[str, set[int]]  # endpoint name -> server pids (RPC 16 and port names)
    #: failed registry and file operations no call was being served for (a Procmon log's failures,
    #: an ETW trace's failures in processes that were not serving a call), time ordered
    outside: list[Event] = field(default_factory=list)
    #: failed operations outside calls beyond :data:`MAX_OUTSIDE` (counted, not kept)
    outside_dropped: int = 0
    #: ALPC message exchanges that belong to no RPC call, when the trace has RPC events (then they
    #: are not calls: ``calls --alpc`` shows them, marked "ALPC"); numbered after the calls
    alpc: list[Call] = field(default_factory=list)
    #: whether the trace had Microsoft-Windows-RPC events at all
    rpc_seen: bool = False


def _endpoint_from_port(port: str | None) -> str | None:
    if not port:
        return None
    return _port_endpoint(port)


def _port_endpoint(port: str) -> str:
    """The endpoint name of an ALPC port: its last path component (``\\RPC Control\\X`` -> X)."""
    return port.rsplit("\\", 1)[-1]


def correlate_events(events: Iterable[Event]) -> Correlation:
    """Calls from time-ordered events (library API; the CLI only prints the result)."""
    with gc_paused():
        correlator = Correlator()
        correlator.feed(events)
        return correlator.finish()


_OTHER, _ALPC, _RPC, _OPERATION = range(4)
_CLASSES: dict[str, int] = {}


def _classify(kind: str) -> int:
    """What the correlator does with events of ``kind`` (cached: a handful of kinds per trace)."""
    cls = _ALPC if kind.startswith("alpc.") else _RPC if kind.startswith("rpc.") else (
        _OPERATION if kind.startswith(FAILING) else _OTHER)
    if len(_CLASSES) < 4096:
        _CLASSES[kind] = cls
    return cls


class Correlator:
    """Reconstructs calls from events fed in time order, in one pass.

    ALPC pairing (:class:`~rpctrace.correlate.alpc.AlpcPairing`) and the RPC joins run on each
    event as it comes, so events need not be kept: ``feed`` accepts a stream (or lists of a
    stream, one after the other) and memory holds the calls, their operations and the state of
    what is in flight.  ``finish`` applies the joins that need the whole trace (RPC-only
    fallback, scores, numbering).
    """

    def __init__(self, operations: str = "all", keep_all_for: int = 0) -> None:
        """``operations="failed"`` keeps only the server operations that failed (what a listing
        of calls shows); the default keeps every operation (what the call tree shows);
        ``"report"`` keeps every operation of the first ``keep_all_for`` calls and of every call
        with a failed operation, and none of the others (a page shows those in detail; the
        others' ``ops_not_kept`` says how many were left out)."""
        if operations not in ("all", "failed", "report"):
            raise ValueError(f"operations must be 'all', 'failed' or 'report', not {operations!r}")
        self.failed_only = operations == "failed"
        self.trim_after = keep_all_for if operations == "report" else None
        self.pairing = AlpcPairing()
        self.calls: list[Call] = []
        self.open_client: dict[ThreadKey, Call] = {}  # (pid, tid) -> client call waiting for its ALPC send
        self.client_by_activity: dict[tuple[int | None, str], Call] = {}  # (pid, activity id) -> call
        self.server_by_activity: dict[tuple[int | None, str], Call] = {}
        self.taken: dict[ThreadKey, AlpcMessage] = {}  # (pid, tid) -> message the server thread just took
        self.serving: dict[ThreadKey, Call] = {}  # (pid, tid) -> call whose work this thread is doing
        self.last_client: dict[ThreadKey, Call] = {}
        self.endpoints: dict[str, set[int]] = {}
        self.outside: list[Event] = []
        self.outside_dropped = 0
        self.rpc_seen = False
        self._creates: deque[Event] = deque(maxlen=_CREATES_WAITING)  # file creates outside calls, status pending

    def _new_call(self) -> Call:
        call = Call(len(self.calls) + 1)
        self.calls.append(call)
        return call

    def _call_for_message(self, msg: AlpcMessage) -> Call:
        call = msg.call
        if call is None:
            call = self._new_call()
            call.message = msg
            msg.call = call
            call.from_message = True
            call.client_pid, call.client_tid = msg.client_pid, msg.client_tid
            call.start = msg.send_ts if msg.send_ts is not None else msg.client_receive_ts
            call.protocol = 3
            call.endpoint = _endpoint_from_port(msg.port_name)
        return call

    def feed(self, events: Iterable[Event]) -> None:
        """Advance over ``events`` (time ordered, continuing what was fed before)."""
        pairing = self.pairing
        alpc_step = pairing.alpc
        in_client_call = pairing.in_client_call
        serving = self.serving
        failed_only = self.failed_only
        classes = _CLASSES
        for ev in events:
            kind = ev.kind
            cls = classes.get(kind)
            if cls is None:
                cls = _classify(kind)
            if cls == _ALPC:
                msg = alpc_step(ev, kind)
                if kind == "alpc.wait_new":
                    done = serving.pop((ev.pid, ev.tid), None)  # the thread is back waiting: whatever it served is over
                    if done is not None and self.trim_after is not None:
                        self._settle(done)
                elif msg is not None and (kind == "alpc.send" or kind == "alpc.receive"):
                    self._alpc(ev, kind, (ev.pid, ev.tid), msg)
            elif cls == _RPC:
                if kind == "rpc.client_start":
                    in_client_call.add(ev.tid)
                elif kind == "rpc.client_stop":
                    in_client_call.discard(ev.tid)
                self._rpc(ev, kind, (ev.pid, ev.tid))
            elif cls == _OPERATION:
                call = serving.get((ev.pid, ev.tid)) if ev.tid is not None else None
                if call is None:
                    self._outside(ev, kind)
                elif not (failed_only and kind != "file.create" and not is_failure_status(ev.fields.get("status"))):
                    # (a file create's status comes later: kept, sorted out at the end)
                    if call.operations:
                        call.operations.append(ev)
                    else:
                        call.operations = [ev]

    def _settle(self, call: Call) -> None:
        """``operations="report"``: a call's server work is over; drop its operations unless it
        is one of the first calls or one of them failed (or may have: a file create whose status
        has not come yet)."""
        ops = call.operations
        trim_after = self.trim_after  # set: only operations="report" settles calls
        if not ops or trim_after is None or call.id <= trim_after:
            return
        for op in ops:
            status = op.fields.get("status")
            if event_class(op) == "blame" or (status is None and op.kind == "file.create"):
                return
        call.ops_not_kept += len(ops)
        call.expected_not_kept += sum(1 for op in ops if is_failure(op.fields.get("status")))
        call.operations = ()

    def _outside(self, ev: Event, kind: str) -> None:
        """A registry or file operation no call is being served for: kept when it failed."""
        if kind == "file.create" and ev.fields.get("status") is None:
            creates = self._creates
            if len(creates) == creates.maxlen:
                self._keep_outside(creates[0])
            creates.append(ev)
        elif is_failure_status(ev.fields.get("status")):
            if len(self.outside) < MAX_OUTSIDE:
                self.outside.append(ev)
            else:
                self.outside_dropped += 1

    def _keep_outside(self, ev: Event) -> None:
        if is_failure_status(ev.fields.get("status")):
            if len(self.outside) < MAX_OUTSIDE:
                self.outside.append(ev)
            else:
                self.outside_dropped += 1

    def _alpc(self, ev: Event, kind: str, key: ThreadKey, msg: AlpcMessage) -> None:
        call: Call | None
        if kind == "alpc.send":
            if msg.send_ts == ev.ts and msg.client_tid == ev.tid and not (msg.reply_ts == ev.ts and msg.reply_tid == ev.tid):
                call = self.open_client.pop(key, None)
                # (an open client call has its start: RPC event 5's time)
                if call is not None and msg.call is None and call.start is not None and ev.ts - call.start <= SEND_WINDOW:
                    call.message, msg.call = msg, call
                    call.evidence = with_evidence(call.evidence, "rpc5→alpc.send(same thread)")
            elif msg.reply_ts == ev.ts and msg.reply_tid == ev.tid:
                call = msg.call
                if call is not None and self.serving.get(key) is call:
                    del self.serving[key]
                    if self.trim_after is not None:
                        self._settle(call)
        elif kind == "alpc.receive" and msg.server_tid == ev.tid and msg.receive_ts == ev.ts:
            call = self._call_for_message(msg)
            call.server_pid, call.server_tid = ev.pid, ev.tid
            self.serving[key] = call
            self.taken[key] = msg

    def _rpc(self, ev: Event, kind: str, key: ThreadKey) -> None:
        call: Call | None
        self.rpc_seen = True
        f = ev.fields
        serving = self.serving
        if kind == "rpc.client_start":
            call = self._new_call()
            _fill_rpc(call, f)
            call.client_pid, call.client_tid, call.start = ev.pid, ev.tid, ev.ts
            call.has_client = True
            call.client_activity = f.get("activity_id")
            if call.client_activity:
                self.client_by_activity[(ev.pid, call.client_activity)] = call
            parent = serving.get(key)
            if parent is not None:
                call.parent = parent
                if parent.children:
                    parent.children.append(call)
                else:
                    parent.children = [call]
                call.evidence = with_evidence(call.evidence, "made while serving parent")
            self.open_client[key] = call
            self.last_client[key] = call
        elif kind == "rpc.client_stop":
            act = f.get("activity_id")
            call = self.client_by_activity.pop((ev.pid, act), None) if act else None
            if call is None:
                call = self.last_client.get(key)
                if call is not None and call.end is not None:
                    call = None
            else:
                call.evidence = with_evidence(call.evidence, "activity(5↔7)")
                call.client_activity = None  # matched: the id has done its job (memory)
            if call is not None:
                call.end = ev.ts
                call.status = f.get("status")
                if ev.tid is not None and ev.tid != call.client_tid:
                    call.stop_tid = ev.tid  # completed on another thread: an asynchronous call
                if self.open_client.get((call.client_pid, call.client_tid)) is call:
                    del self.open_client[(call.client_pid, call.client_tid)]
        elif kind == "rpc.server_start":
            msg = self.taken.pop(key, None)
            if msg is not None and msg.call is not None and msg.call.has_client and (
                msg.call.interface, msg.call.opnum) != (f.get("interface_uuid"), f.get("procnum")):
                # The server runs a different procedure than the client asked for: the
                # message pairing is wrong (lost events).  Keep the two sides apart rather
                # than report a wrong join.
                client_call = msg.call
                client_call.evidence = with_evidence(client_call.evidence, "server side rejected: interface/opnum differ")
                client_call.server_pid = client_call.server_tid = None
                client_call.message = None
                msg.call = None
                if serving.get(key) is client_call:
                    del serving[key]
                msg = None
            if msg is not None:
                call = self._call_for_message(msg)
                call.evidence = with_evidence(call.evidence, "alpc.receive→rpc6(same thread)")
            else:
                call = self._new_call()
                call.server_pid, call.server_tid = ev.pid, ev.tid
            if not call.has_client or call.interface is None:
                _fill_rpc(call, f)
            call.server_start = ev.ts
            call.has_server = True
            call.server_activity = f.get("activity_id")
            if call.server_activity:
                self.server_by_activity[(ev.pid, call.server_activity)] = call
            serving[key] = call
            if call.endpoint and ev.pid is not None:  # (a server start whose process is unknown names none)
                self.endpoints.setdefault(call.endpoint, set()).add(ev.pid)
        elif kind == "rpc.server_stop":
            act = f.get("activity_id")
            call = self.server_by_activity.pop((ev.pid, act), None) if act else None
            if call is None:
                call = serving.get(key)
            else:
                call.evidence = with_evidence(call.evidence, "activity(6↔8)")
                call.server_activity = None  # matched: the id has done its job (memory)
            if call is not None:
                call.server_end = ev.ts
                call.server_status = f.get("status")
                if call.message is None and serving.get(key) is call:
                    del serving[key]  # without ALPC the server's work ends with event 8
                    if self.trim_after is not None:
                        self._settle(call)
        elif kind == "rpc.raise" or kind == "rpc.eeinfo":
            # the procedure raised (event 9) or error information was recorded (event 1) on a
            # thread of an open call: that is the call's result as the trace has it
            status = f.get("status")
            if status:
                call = serving.get(key) or self.open_client.get(key) or self.last_client.get(key)
                if call is not None and call.result_status is None and (call.end is None or call.end >= ev.ts):
                    call.result_status = status
                    call.result_source = ("RpcRaiseException (RPC event 9)" if kind == "rpc.raise"
                                          else "extended error information (RPC event 1)")
        elif kind == "rpc.endpoint_bind" and ev.pid is not None and f.get("endpoint"):
            self.endpoints.setdefault(f["endpoint"], set()).add(ev.pid)

    def finish(self, pid_of: PidOf | None = None) -> Correlation:
        """The calls.  ``pid_of(tid, ts)`` names the process of threads whose process was not
        known when their events passed (a stream learns it from thread rundown at the end)."""
        pairing = self.pairing
        pairing.finish()
        endpoints = self.endpoints
        calls = self.calls
        for c in calls:
            msg = c.message
            if msg is None:
                continue
            if msg.dropped:
                # the message turned out to be a server's reply whose request was not seen
                c.message = None
                if msg.call is c:
                    msg.call = None
                c.evidence = tuple(e for e in c.evidence if e != "rpc5→alpc.send(same thread)")
            elif c.from_message:
                # the pairing may have learnt more about the client since the call was made
                # (a reply taken by a thread whose own request was lost)
                c.client_pid, c.client_tid = msg.client_pid, msg.client_tid
                c.start = msg.send_ts if msg.send_ts is not None else msg.client_receive_ts
        if self.failed_only:
            for c in calls:
                if c.operations:
                    c.operations = [op for op in c.operations if is_failure_status(op.fields.get("status"))] or ()
        if pid_of is not None:
            for c in calls:
                if c.client_pid is None and c.client_tid is not None:
                    c.client_pid = pid_of(c.client_tid, c.start)
                if c.server_pid is None and c.server_tid is not None:
                    c.server_pid = pid_of(c.server_tid, c.server_start if c.server_start is not None else c.start)
        for pid, names in pairing.ports.items():
            for name in names:
                endpoints.setdefault(_port_endpoint(name), set()).add(pid)
        _fallback_rpc_only(calls)
        calls = [c for c in calls if not c.merged]
        for c in calls:
            _score(c)
        alpc: list[Call] = []
        if self.rpc_seen:
            # The trace has RPC events, so an exchange with none of them is not known to be an RPC
            # call (datagrams to csrss's ApiPort, other non-RPC ports): apart, numbered after.
            alpc = [c for c in calls if c.alpc_only and c.parent is None and not c.children]
            if alpc:
                apart = {id(c) for c in alpc}
                calls = [c for c in calls if id(c) not in apart]
        for n, c in enumerate(calls, 1):
            c.id = n
        for n, c in enumerate(alpc, len(calls) + 1):
            c.id = n
        for c in calls if not self.rpc_seen else ():
            if c.alpc_only and c.message is not None and c.message.port_name and \
                    c.message.port_name.upper().startswith("\\RPC CONTROL\\"):
                c.evidence = with_evidence(c.evidence, "port under \\RPC Control\\: an RPC endpoint's")
        for ev in self._creates:
            self._keep_outside(ev)
        self._creates.clear()
        outside = self.outside
        outside.sort(key=lambda e: e.ts)
        return Correlation(calls, pairing.unpaired, pairing.ports, endpoints, outside, self.outside_dropped, alpc,
                           self.rpc_seen)


def _fill_rpc(call: Call, f: Mapping[str, Any]) -> None:
    call.interface = f.get("interface_uuid")
    call.opnum = f.get("procnum")
    call.endpoint = f.get("endpoint") or call.endpoint
    call.protocol = f.get("protocol", call.protocol)
    call.auth_level = f.get("auth_level")
    call.auth_service = f.get("auth_service")
    call.impersonation_level = f.get("impersonation_level")


def _fallback_rpc_only(calls: list[Call]) -> None:
    """Join client-only and server-only calls on endpoint + interface + opnum + time."""
    servers: dict[tuple[str | None, str | None, int | None], list[Call]] = {}
    for c in calls:
        if c.has_server and not c.has_client and c.message is None:
            servers.setdefault((c.endpoint, c.interface, c.opnum), []).append(c)
    if not servers:
        return
    for c in calls:
        if not (c.has_client and not c.has_server and c.message is None):
            continue
        pool = servers.get((c.endpoint, c.interface, c.opnum))
        start = c.start  # RPC event 5 set it (has_client); event 6 set the servers' server_start
        if not pool or start is None:
            continue
        hi = c.end if c.end is not None else start + FALLBACK_WINDOW
        fits = [s for s in pool if not s.merged and s.server_start is not None and start <= s.server_start <= hi
                and s.server_pid != c.client_pid]
        if not fits:
            continue
        if len(fits) > 1:
            # several server calls fit: say so, and do not pick one (missing beats wrong)
            c.ambiguous = True
            c.evidence = with_evidence(c.evidence, f"ambiguous: {len(fits)} server calls fit endpoint+interface+opnum+time")
            continue
        best = fits[0]
        c.server_pid, c.server_tid = best.server_pid, best.server_tid
        c.server_start, c.server_end, c.server_status = best.server_start, best.server_end, best.server_status
        c.server_activity = best.server_activity
        c.operations = best.operations
        c.children = list(c.children) + list(best.children)
        for child in best.children:
            child.parent = c
        c.has_server = True
        c.evidence = with_evidence(c.evidence, "rpc-only: endpoint+interface+opnum+time")
        best.merged = True


_SHARED: dict[tuple[str, ...], tuple[str, ...]] = {}


def _shared(evidence: Iterable[str]) -> tuple[str, ...]:
    """One tuple per distinct evidence list: a million calls share a handful of them."""
    key = tuple(evidence)
    hit = _SHARED.get(key)
    if hit is None:
        hit = key
        if len(_SHARED) < 65536:  # bounded like with_evidence: texts can carry numbers
            _SHARED[key] = key
    return hit


def _score(c: Call) -> None:
    """Confidence from the joins that held (1.0 = every join of the full chain)."""
    if c.message is not None and c.has_client and c.has_server:
        conf = 1.0 if c.message.reply_ts is not None or c.message.datagram else 0.9
        if "alpc.reply(receive lost)" in c.message.evidence:
            conf = 0.8
    elif c.message is not None and c.has_server:
        conf = 0.8  # client RPC event missing (lost) but ALPC names the client thread
    elif c.message is not None and c.has_client:
        conf = 0.7 if c.message.server_tid is not None else 0.4
    elif c.message is not None:
        conf = 0.6  # ALPC only: message-level pair
    elif c.has_client and c.has_server:
        conf = 0.5
    else:
        conf = 0.2  # one side only
    if c.ambiguous:
        conf = min(conf, 0.3)
    c.confidence = conf
    if c.message is not None:
        c.evidence = c.message.evidence + c.evidence
    c.evidence = _shared(c.evidence)
    if c.start is None:
        c.start = c.server_start
    if c.end is None:
        c.end = c.server_end if c.server_end is not None else (c.message.reply_ts if c.message else None)
