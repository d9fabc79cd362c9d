"""Pair kernel ALPC events into messages: who sent each request, which thread took it, the reply.

The kernel logs, for one synchronous LRPC call (etw-and-alpc-facts.md §1, "pairing model"):

    client Send(X) -> client WaitForReply(X) -> server Receive(X) ... server Send(X) (the reply)
    -> client Unwait(status) / client Receive(X)

X, the PORT_MESSAGE MessageId, is handle-like: unique among live messages, reused once a message
is released.  So pairing is a state machine over the time-ordered events rather than a join on
X: a Send(X) is a *reply* when the sending thread is serving X, otherwise a new request; a
Receive(X) is the *client's* when that thread is waiting for X, otherwise a server taking the
pending request X.  Datagrams get no reply: the server's next wait ends them.  When events are
lost the machine says so (``unpaired``) instead of guessing: a reply seen without its request's
receive still pairs the client with the server thread, with lower confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rpctrace.model import Event

if TYPE_CHECKING:
    from rpctrace.correlate.calls import Call

#: a request nobody took within this long (100 ns ticks) is dropped from the pending table
PENDING_WINDOW = 600 * 10_000_000

#: ``(id(current), text) -> (current, current + (text,))``
_EVIDENCE: dict[tuple[int, str], tuple[tuple[str, ...], tuple[str, ...]]] = {}


def with_evidence(current: tuple[str, ...], text: str) -> tuple[str, ...]:
    """``current + (text,)``, shared: evidence is a short sequence of a few dozen phrases, and a
    million calls holding lists of their own would cost a hundred megabytes.

    Keyed by the identity of ``current`` (hashing the tuple each time costs more than the
    append); the entry keeps ``current`` and is used only if it is that very tuple.
    """
    hit = _EVIDENCE.get((id(current), text))
    if hit is not None and hit[0] is current:
        return hit[1]
    got = current + (text,)
    if len(_EVIDENCE) < 65536:
        _EVIDENCE[(id(current), text)] = (current, got)
    return got


@dataclass(eq=False, slots=True)
class AlpcMessage:
    message_id: int
    client_pid: int | None
    client_tid: int  # the thread that sent (or, its send lost, took the reply): always known
    send_ts: int | None  # None when the client's Send was lost
    server_pid: int | None = None
    server_tid: int | None = None
    receive_ts: int | None = None
    reply_ts: int | None = None
    reply_tid: int | None = None
    client_receive_ts: int | None = None
    client_receive_tid: int | None = None
    unwait_status: int | None = None
    waited: bool = False  # the client logged Wait-For-Reply: a synchronous request
    port_name: str | None = None  # the port the server thread waits on
    evidence: tuple[str, ...] = ()
    dropped: bool = False  # turned out to be a reply whose request was not seen
    call: Call | None = None  # the RPC call bound to this message, set by the RPC layer

    @property
    def datagram(self) -> bool:
        return not self.waited and self.reply_ts is None

    @property
    def complete(self) -> bool:
        return self.server_tid is not None and (self.reply_ts is not None or not self.waited)


@dataclass
class AlpcResult:
    messages: list[AlpcMessage]
    #: events that could not be paired (lost partners), by kind
    unpaired: dict[str, int]
    #: server port names per process: pid -> {port names}
    ports: dict[int, set[str]]
    #: the message each event belongs to, by position in the event list
    by_event: dict[int, AlpcMessage]


class AlpcPairing:
    """The pairing state machine, one event at a time (time order).

    :meth:`step` returns the message an event belongs to (or None), so the RPC layer can use it
    at once and a trace of any length is paired in one pass with memory for the messages in
    flight, not for the events.  Finished messages are not kept here: the RPC layer keeps the
    calls that hold them (``keep_messages=True`` keeps them all, for :func:`pair_messages`).
    """

    def __init__(self, keep_messages: bool = False) -> None:
        self.pending: dict[int, AlpcMessage] = {}  # requests sent, not yet taken
        self.serving: dict[int, AlpcMessage] = {}  # server tid -> message it took and has not answered
        self.awaiting: dict[int, AlpcMessage] = {}  # message id -> taken, reply not yet sent
        self.waiting: dict[int, AlpcMessage] = {}  # client tid -> its outstanding request
        self.replied: dict[int, AlpcMessage] = {}  # message id -> reply sent, client has not taken it
        self.port_of: dict[int, str] = {}  # tid -> port name of its last Wait-For-New-Message
        self.ports: dict[int, set[str]] = {}
        self.unpaired: dict[str, int] = {}
        self.last_op: dict[int, str] = {}  # tid -> its last ALPC event kind
        # threads between RPC events 5 and 7 (an event without a thread adds None, never asked for)
        self.in_client_call: set[int | None] = set()
        self.messages: list[AlpcMessage] | None = [] if keep_messages else None

    def lost(self, what: str) -> None:
        self.unpaired[what] = self.unpaired.get(what, 0) + 1

    def _end_service(self, tid: int) -> None:
        msg = self.serving.pop(tid, None)
        if msg is not None and msg.reply_ts is None and self.awaiting.get(msg.message_id) is msg:
            if not msg.waited:
                del self.awaiting[msg.message_id]  # a datagram: no reply will come
                msg.evidence = with_evidence(msg.evidence, "datagram")

    def step(self, ev: Event) -> AlpcMessage | None:
        """Advance the machine by one event; the message the event belongs to, if any."""
        kind = ev.kind
        if kind == "rpc.client_start":
            self.in_client_call.add(ev.tid)
            return None
        if kind == "rpc.client_stop":
            self.in_client_call.discard(ev.tid)
            return None
        if not kind.startswith("alpc."):
            return None
        return self.alpc(ev, kind)

    def alpc(self, ev: Event, kind: str) -> AlpcMessage | None:
        """:meth:`step` for an ALPC event (the caller has looked at its kind)."""
        tid = ev.tid
        if tid is None:
            return None
        pid, ts = ev.pid, ev.ts
        last_op = self.last_op
        previous = last_op.get(tid)
        last_op[tid] = kind
        f = ev.fields
        if kind == "alpc.send":
            return self._send(f["message_id"], pid, tid, ts)
        if kind == "alpc.receive":
            return self._receive(f["message_id"], pid, tid, ts, previous)
        if kind == "alpc.wait_reply":
            msg = self.waiting.get(tid)
            if msg is not None and msg.message_id == f["message_id"]:
                msg.waited = True
                return msg
            return None
        if kind == "alpc.wait_new":
            self._end_service(tid)
            name = f.get("port_name") or ""
            if name:
                self.port_of[tid] = name
                if f.get("is_server_port") and pid is not None:
                    self.ports.setdefault(pid, set()).add(name)
            return None
        if kind == "alpc.unwait":
            msg = self.waiting.get(tid)
            if msg is not None:
                msg.unwait_status = f["status"]
                return msg
        return None

    def _send(self, x: int, pid: int | None, tid: int, ts: int) -> AlpcMessage:
        serving, awaiting = self.serving, self.awaiting
        msg = serving.get(tid)
        if msg is not None and msg.message_id == x:
            # the server thread answers the message it took
            msg.reply_ts, msg.reply_tid = ts, tid
            msg.evidence = with_evidence(msg.evidence, "alpc.reply")
            del serving[tid]
            if awaiting.get(x) is msg:
                del awaiting[x]
            self.replied[x] = msg
            return msg
        msg = awaiting.get(x)
        if msg is not None and msg.server_pid == pid and pid is not None:
            # answered by another thread of the server process (a completion thread)
            msg.reply_ts, msg.reply_tid = ts, tid
            msg.evidence = with_evidence(msg.evidence, "alpc.reply(other thread)")
            del awaiting[x]
            server_tid = msg.server_tid  # set when the request was taken (how it got in awaiting)
            if server_tid is not None and serving.get(server_tid) is msg:
                del serving[server_tid]
            self.replied[x] = msg
            return msg
        if self.pending.get(x) is not None:
            self.lost("request never received")
        msg = AlpcMessage(x, pid, tid, ts)
        msg.evidence = with_evidence(msg.evidence, "alpc.send")
        self.pending[x] = msg
        if self.messages is not None:
            self.messages.append(msg)
        self.waiting[tid] = msg
        return msg

    def _receive(self, x: int, pid: int | None, tid: int, ts: int, previous: str | None) -> AlpcMessage | None:
        pending, waiting, replied = self.pending, self.waiting, self.replied
        msg = waiting.get(tid)
        if msg is not None and msg.message_id == x and msg.client_tid == tid and (
            msg.reply_ts is not None or msg.server_tid is not None or msg.waited
        ):
            # the client takes the reply to its request
            if msg.reply_ts is None:
                bogus = pending.get(x)
                if bogus is not None and bogus is not msg and bogus.client_pid != pid:
                    # the server's Receive(X) was lost, so its reply looked like a request:
                    # the reply still names the server thread
                    del pending[x]
                    bogus.dropped = True
                    msg.server_pid, msg.server_tid = bogus.client_pid, bogus.client_tid
                    msg.reply_ts, msg.reply_tid = bogus.send_ts, bogus.client_tid
                    msg.evidence = with_evidence(msg.evidence, "alpc.reply(receive lost)")
                    if waiting.get(bogus.client_tid) is bogus:
                        del waiting[bogus.client_tid]
                else:
                    self.lost("reply without its send")
                if pending.get(x) is msg:
                    del pending[x]
            msg.client_receive_ts, msg.client_receive_tid = ts, tid
            msg.evidence = with_evidence(msg.evidence, "alpc.client_receive")
            del waiting[tid]
            replied.pop(x, None)
            return msg
        if previous in ("alpc.wait_reply", "alpc.unwait") or (tid in self.in_client_call and previous != "alpc.wait_new"):
            # A thread waiting for a reply takes one, but its own request was not seen
            # (lost): the pending "request" X from another process is really the server's
            # reply, which still names the server thread.  Never treat this thread as a
            # server taking a request: it is a client.
            bogus = pending.get(x)
            if bogus is not None and bogus.client_pid != pid and replied.get(x) is None:
                del pending[x]
                if waiting.get(bogus.client_tid) is bogus:
                    del waiting[bogus.client_tid]
                msg = bogus
                msg.server_pid, msg.server_tid = bogus.client_pid, bogus.client_tid
                msg.reply_ts, msg.reply_tid = bogus.send_ts, bogus.client_tid
                msg.client_pid, msg.client_tid, msg.send_ts = pid, tid, None
                msg.waited = True
                msg.evidence = with_evidence(("alpc.reply(request send lost)",), "alpc.client_receive")
                msg.client_receive_ts, msg.client_receive_tid = ts, tid
                return msg
            if replied.get(x) is None:
                self.lost("reply without its send")
                return None
        msg = replied.get(x)
        if msg is not None and msg.client_pid == pid:
            # a completion thread of the client process takes the reply (asynchronous call)
            msg.client_receive_ts, msg.client_receive_tid = ts, tid
            msg.evidence = with_evidence(msg.evidence, "alpc.client_receive(other thread)")
            del replied[x]
            if waiting.get(msg.client_tid) is msg:
                del waiting[msg.client_tid]
            return msg
        msg = pending.get(x)
        # Plausibility: once the trace has shown server ports (Wait-For-New-Message with
        # IsServerPort), only a thread of a process serving a port, or one that was just
        # waiting for new messages, takes requests.  A receive elsewhere is a client whose
        # own events were lost; pairing it would be a guess.
        ports = self.ports
        server_like = previous == "alpc.wait_new" or not ports or pid in ports
        if (msg is not None and server_like and msg.send_ts is not None
                and ts - msg.send_ts <= PENDING_WINDOW and msg.client_tid != tid):
            self._end_service(tid)
            del pending[x]
            msg.server_pid, msg.server_tid, msg.receive_ts = pid, tid, ts
            msg.port_name = self.port_of.get(tid)
            msg.evidence = with_evidence(msg.evidence, "alpc.receive")
            self.serving[tid] = msg
            self.awaiting[x] = msg
            return msg
        self.lost("receive without a send")
        return None

    def finish(self) -> None:
        """Count what the end of the trace left unanswered."""
        for msg in self.pending.values():
            if msg.waited:
                self.lost("request never received")


def pair_messages(events: list[Event]) -> AlpcResult:
    """Pair a whole event list (library API): every message, and the message of each event."""
    pairing = AlpcPairing(keep_messages=True)
    by_event: dict[int, AlpcMessage] = {}
    step = pairing.step
    for index, ev in enumerate(events):
        msg = step(ev)
        if msg is not None:
            by_event[index] = msg
    pairing.finish()
    assert pairing.messages is not None  # keep_messages=True keeps them
    messages = [m for m in pairing.messages if not m.dropped]
    by_event = {i: m for i, m in by_event.items() if not m.dropped}
    return AlpcResult(messages, pairing.unpaired, pairing.ports, by_event)
