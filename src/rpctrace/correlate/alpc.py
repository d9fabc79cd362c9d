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

from dataclasses import dataclass, field

from rpctrace.model import Event

#: a request nobody took within this long (100 ns ticks) is dropped from the pending table
PENDING_WINDOW = 600 * 10_000_000


@dataclass(eq=False)
class AlpcMessage:
    message_id: int
    client_pid: int | None
    client_tid: int | None
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
    evidence: list[str] = field(default_factory=list)
    dropped: bool = False  # turned out to be a reply whose request was not seen
    call: object = None  # the RPC call bound to this message, set by the RPC layer

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


def pair_messages(events: list[Event]) -> AlpcResult:
    pending: dict[int, AlpcMessage] = {}  # requests sent, not yet taken
    serving: dict[int, AlpcMessage] = {}  # server tid -> message it took and has not answered
    awaiting: dict[int, AlpcMessage] = {}  # message id -> taken, reply not yet sent
    waiting: dict[int, AlpcMessage] = {}  # client tid -> its outstanding request
    replied: dict[int, AlpcMessage] = {}  # message id -> reply sent, client has not taken it
    port_of: dict[int, str] = {}  # tid -> port name of its last Wait-For-New-Message
    ports: dict[int, set[str]] = {}
    messages: list[AlpcMessage] = []
    by_event: dict[int, AlpcMessage] = {}
    unpaired: dict[str, int] = {}

    def lost(what: str) -> None:
        unpaired[what] = unpaired.get(what, 0) + 1

    def end_service(tid: int) -> None:
        msg = serving.pop(tid, None)
        if msg is not None and msg.reply_ts is None and awaiting.get(msg.message_id) is msg:
            if not msg.waited:
                del awaiting[msg.message_id]  # a datagram: no reply will come
                msg.evidence.append("datagram")

    last_op: dict[int, str] = {}  # tid -> its last ALPC event kind
    in_client_call: set[int] = set()  # threads between RPC events 5 and 7

    for index, ev in enumerate(events):
        kind = ev.kind
        tid = ev.tid
        if kind == "rpc.client_start":
            in_client_call.add(tid)
            continue
        if kind == "rpc.client_stop":
            in_client_call.discard(tid)
            continue
        if not kind.startswith("alpc."):
            continue
        pid, ts = ev.pid, ev.ts
        if tid is None:
            continue
        previous = last_op.get(tid)
        last_op[tid] = kind
        f = ev.fields
        if kind == "alpc.send":
            x = f["message_id"]
            msg = serving.get(tid)
            if msg is not None and msg.message_id == x:
                # the server thread answers the message it took
                msg.reply_ts, msg.reply_tid = ts, tid
                msg.evidence.append("alpc.reply")
                del serving[tid]
                if awaiting.get(x) is msg:
                    del awaiting[x]
                replied[x] = msg
                by_event[index] = msg
                continue
            msg = awaiting.get(x)
            if msg is not None and msg.server_pid == pid and pid is not None:
                # answered by another thread of the server process (a completion thread)
                msg.reply_ts, msg.reply_tid = ts, tid
                msg.evidence.append("alpc.reply(other thread)")
                del awaiting[x]
                if serving.get(msg.server_tid) is msg:
                    del serving[msg.server_tid]
                replied[x] = msg
                by_event[index] = msg
                continue
            old = pending.get(x)
            if old is not None:
                lost("request never received")
            msg = AlpcMessage(x, pid, tid, ts)
            msg.evidence.append("alpc.send")
            pending[x] = msg
            messages.append(msg)
            waiting[tid] = msg
            by_event[index] = msg
        elif kind == "alpc.wait_reply":
            msg = waiting.get(tid)
            if msg is not None and msg.message_id == f["message_id"]:
                msg.waited = True
                by_event[index] = msg
        elif kind == "alpc.receive":
            x = f["message_id"]
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
                        msg.evidence.append("alpc.reply(receive lost)")
                        if waiting.get(bogus.client_tid) is bogus:
                            del waiting[bogus.client_tid]
                    else:
                        lost("reply without its send")
                    if pending.get(x) is msg:
                        del pending[x]
                msg.client_receive_ts, msg.client_receive_tid = ts, tid
                msg.evidence.append("alpc.client_receive")
                del waiting[tid]
                replied.pop(x, None)
                by_event[index] = msg
                continue
            if previous in ("alpc.wait_reply", "alpc.unwait") or (tid in in_client_call and previous != "alpc.wait_new"):
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
                    msg.evidence = ["alpc.reply(request send lost)", "alpc.client_receive"]
                    msg.client_receive_ts, msg.client_receive_tid = ts, tid
                    by_event[index] = msg
                    continue
                if replied.get(x) is None:
                    lost("reply without its send")
                    continue
            msg = replied.get(x)
            if msg is not None and msg.client_pid == pid:
                # a completion thread of the client process takes the reply (asynchronous call)
                msg.client_receive_ts, msg.client_receive_tid = ts, tid
                msg.evidence.append("alpc.client_receive(other thread)")
                del replied[x]
                if waiting.get(msg.client_tid) is msg:
                    del waiting[msg.client_tid]
                by_event[index] = msg
                continue
            msg = pending.get(x)
            # Plausibility: once the trace has shown server ports (Wait-For-New-Message with
            # IsServerPort), only a thread of a process serving a port, or one that was just
            # waiting for new messages, takes requests.  A receive elsewhere is a client whose
            # own events were lost; pairing it would be a guess.
            server_like = previous == "alpc.wait_new" or not ports or pid in ports
            if (msg is not None and server_like and msg.send_ts is not None
                    and ts - msg.send_ts <= PENDING_WINDOW and msg.client_tid != tid):
                end_service(tid)
                del pending[x]
                msg.server_pid, msg.server_tid, msg.receive_ts = pid, tid, ts
                msg.port_name = port_of.get(tid)
                msg.evidence.append("alpc.receive")
                serving[tid] = msg
                awaiting[x] = msg
                by_event[index] = msg
                continue
            lost("receive without a send")
        elif kind == "alpc.wait_new":
            end_service(tid)
            name = f.get("port_name") or ""
            if name:
                port_of[tid] = name
                if f.get("is_server_port") and pid is not None:
                    ports.setdefault(pid, set()).add(name)
        elif kind == "alpc.unwait":
            msg = waiting.get(tid)
            if msg is not None:
                msg.unwait_status = f["status"]
                by_event[index] = msg
    for msg in pending.values():
        if msg.waited:
            lost("request never received")
    messages = [m for m in messages if not m.dropped]
    by_event = {i: m for i, m in by_event.items() if not m.dropped}
    return AlpcResult(messages, unpaired, ports, by_event)
