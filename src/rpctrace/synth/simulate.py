"""The scenario library: a small simulated Windows machine whose processes make LRPC calls.

Why a simulation rather than a script of events: the reader and the correlator must cope with
what real traces do - concurrent calls, thread-pool workers picked in no fixed order, replies out
of order, ALPC message ids reused, threads hopping between CPUs, buffers flushed per CPU.  Those
properties fall out of a simulation; a hand-written script would encode the writer's own
assumptions about ordering.  Every random choice comes from one seeded ``random.Random``, so a
seed gives the same bytes every time.

The model of one synchronous LRPC call (etw-and-alpc-facts.md §1, §2 and its "better join"):

    client thread C:  RPC 5 -> ALPC Send(X) -> ALPC Wait-For-Reply(X)
    server worker S:  (earlier: Wait-For-New-Message "\\RPC Control\\<endpoint>")
                      ALPC Receive(X) -> RPC 6 -> work (registry events + StackWalk, nested
                      calls) -> RPC 8 -> ALPC Send(X) (the reply) -> Wait-For-New-Message
    client thread C:  ALPC Unwait(0) -> ALPC Receive(X) -> RPC 7

Datagrams (one-way calls) have no Wait-For-Reply, no reply Send and no client Unwait/Receive; the
client's RPC 7 follows its Send at once.  Asynchronous calls return at once on the calling
thread; the reply is received (ALPC Receive + RPC 7, same activity id as the RPC 5) later by a
client thread-pool thread.  Client RPC 5/7 share one activity GUID, server RPC 6/8 another; a
call made by a server while it handles a call carries a RELATED_ACTIVITYID extended item naming
the server call's activity (**GUESS**: ETW's usual Start-event transfer, not observed in an RPC
trace).

Message ids are u32 per ALPC port: a port hands out the id whose previous use ended longest ago
(or a new one), so ids repeat over a busy trace but are never in use twice at once.

Server processes log RPC 14 (interface registered) and 16 (endpoint bound, "ncalrpc") early;
the trace starts with Process/Thread/Image DCStart rundown and KCB rundown, ends with the DCEnd
rundown, and processes started inside the trace log Process/Thread Start and Image Load.

:class:`Sim` is that machinery: LRPC calls (:meth:`Sim.call`), a server procedure's registry work
with its stacks, ALPC exchanges with ports that are no RPC endpoint, the system's message-id
table, the rundowns, process start and exit, and the servers' registration.  What happens when,
and with whom, is the scenario's business (:mod:`rpctrace.synth.run`, :mod:`rpctrace.synth.stories`);
the machine it runs on is :mod:`rpctrace.synth.world`.
"""

from __future__ import annotations

import heapq
import random
from typing import Any, Callable, Sequence

from rpctrace.synth import catalog as C
from rpctrace.synth import payloads as P
from rpctrace.synth.emit import Proc, Thread, Trace
from rpctrace.synth.world import INF, US, NoisePort, RegOp, Server, World


class CallRec:
    """What the ground truth says about one call (kept only when truth is requested)."""

    __slots__ = ("id", "client", "server", "worker", "iface", "opnum", "msg", "start", "end", "srv_start",
                 "srv_end", "status", "result", "parent", "children", "mode", "failures", "completion",
                 "client_activity", "server_activity")

    def __init__(self, cid: int, client: Thread, server: Server, iface: str, opnum: int, parent: int | None,
                 mode: str) -> None:
        self.id = cid
        self.client = client
        self.server = server
        self.worker: Thread | None = None
        self.iface = iface
        self.opnum = opnum
        self.msg = 0
        self.start = self.end = self.srv_start = self.srv_end = 0
        self.status = 0
        self.result = 0
        self.parent = parent
        self.children: list[int] = []
        self.mode = mode
        self.failures: list[tuple] = []
        self.completion: Thread | None = None  # the thread that took the reply of an asynchronous call
        self.client_activity = b""
        self.server_activity = b""



class Sim:
    """Emits the events of processes, threads and calls in (per-thread) time order."""

    def __init__(self, world: World, trace: Trace, rng: random.Random, track: bool):
        self.world = world
        self.trace = trace
        self.rng = rng
        self.track = track
        self.calls: list[CallRec] = []
        self.next_call = 1
        self.alpc_exchanges = 0  # ALPC exchanges with ports that are no RPC endpoint (no RPC event)
        self.cpus = world.cpus
        self.migrate = 0.2
        self.stop_cache: dict[int, bytes] = {}
        self.noise_rate = 0.15
        self.client_frames: dict[tuple[int, str], tuple] = {}  # (pid, api) -> frames
        self.last_end = 0  # when the last call's last event happened (for backpressure)

    # -- ids ------------------------------------------------------------------------------
    def activity(self) -> bytes:
        return self.rng.getrandbits(128).to_bytes(16, "little")

    def alloc_msg(self, srv: Server | None, t: int) -> int:
        """A message id: ids are handles of one system-wide message table (**GUESS**, see
        docs/synth.md), so no two live messages share one whatever their ports; the id whose
        previous use ended longest ago is handed out again, else a new one."""
        table = self.world.msg_table
        h = table.heap
        if h and h[0][0] <= t:
            return heapq.heappop(h)[1]
        mid = table.next
        if mid is None:  # add_service starts the table: a message needs a server
            raise RuntimeError("no server has started the ALPC message table")
        table.next = (mid + 4) & 0xFFFFFFFF
        return mid

    def release_msg(self, srv: Server | None, mid: int, t: int) -> None:
        heapq.heappush(self.world.msg_table.heap, (t, mid))

    def pick_worker(self, srv: Server, t: int) -> Thread:
        """A free worker, most recently used first (thread pools reuse hot threads); if all are
        busy, the one that frees first (the message waits in the port queue)."""
        best = None
        bt = -1
        first = None
        ft = INF
        for w in srv.workers:
            f = w.free_at
            if f <= t:
                if f > bt:
                    best, bt = w, f
            elif f < ft:
                first, ft = w, f
        return best if best is not None else first  # type: ignore[return-value]

    def start_payload(self, srv: Server, iface: str, opnum: int) -> tuple[bytes, dict]:
        key = (iface, opnum)
        got = srv.start_cache.get(key)
        if got is None:
            fields: dict[str, Any] = {
                "interface_uuid": iface,
                "procnum": opnum,
                "protocol": P.PROTOCOL_LRPC,
                "network_address": P.NULL_STRING,
                "endpoint": srv.endpoint,
                "options": P.NULL_STRING,
                "auth_level": P.RPC_C_AUTHN_LEVEL_PKT_PRIVACY,
                "auth_service": P.RPC_C_AUTHN_KERNEL,
                "impersonation_level": P.RPC_C_IMP_LEVEL_IMPERSONATE,
            }
            payload = P.PayloadEncoder.rpc_call_start(**fields)
            got = srv.start_cache[key] = (payload, fields)
        return got

    def stop_payload(self, status: int) -> bytes:
        b = self.stop_cache.get(status)
        if b is None:
            b = self.stop_cache[status] = P.PayloadEncoder.rpc_call_stop(status)
        return b

    # -- stacks -----------------------------------------------------------------------------
    def worker_frames(self, srv: Server, iface: str, opnum: int, api: str,
                      inner: Sequence[tuple[str, str]] = ()) -> tuple:
        """(frames, packed frames, symbolic frames) of a registry call made by a server procedure."""
        key = (iface, opnum, api, tuple(inner))
        got = srv.frames_cache.get(key)
        if got is None:
            kfns, ntfn, api_fn = C.REGISTRY_APIS[api]
            proc_name = srv.interfaces[iface].get(opnum, f"Opnum{opnum}")
            spec = [("ntoskrnl.exe", f) for f in kfns] + [("ntoskrnl.exe", "KiSystemServiceCopyEnd"),
                                                           ("ntdll.dll", ntfn), ("KERNELBASE.dll", api_fn)]
            spec += list(inner) + [(srv.spec.dll, proc_name)] + C.SERVER_DISPATCH
            addrs, names = self.world.frames(srv.proc, spec)
            got = srv.frames_cache[key] = (addrs, self.trace.enc.frames(addrs), names)
        return got

    def process_frames(self, proc: Proc, api: str) -> tuple:
        key = (proc.pid, api)
        got = self.client_frames.get(key)
        if got is None:
            kfns, ntfn, api_fn = C.REGISTRY_APIS[api]
            spec = [("ntoskrnl.exe", f) for f in kfns] + [
                ("ntoskrnl.exe", "KiSystemServiceCopyEnd"), ("ntdll.dll", ntfn), ("KERNELBASE.dll", api_fn),
                (proc.images[0].name, "wWinMain"), ("KERNEL32.DLL", "BaseThreadInitThunk"),
                ("ntdll.dll", "RtlUserThreadStart")]
            addrs, names = self.world.frames(proc, spec)
            got = self.client_frames[key] = (addrs, self.trace.enc.frames(addrs), names)
        return got

    # -- registry ----------------------------------------------------------------------------
    def reg(self, th: Thread, t: int, op: RegOp, status: int, rec: CallRec | None, cid: Any,
            frames: tuple | None) -> int:
        """One registry operation by ``th`` completing at ``t`` (KCBCreate first when an Open
        creates the key's KCB), with its StackWalk; returns the thread's next free time."""
        tr = self.trace
        world = self.world
        created = None
        if op.create_path is not None and status == 0 and op.create_path not in world.kcbs:
            kcb = world.kcb(op.create_path, rundown=False)
            kev = tr.registry(th, t, P.REG_KCB_CREATE, 0, 0, 0, kcb, op.create_path, op.create_path, cid)
            created = (t, kev)
            t += 2 + int(self.rng.random() * 6)
        initial = t - 3 - int(self.rng.random() * 60)
        ev = tr.registry(th, t, op.opcode, initial, status, op.index, op.kcb, op.name, op.path, cid, op.name_bytes)
        if frames is not None:
            if tr.cache is not None and created is not None:
                # stack caching on (as WPR/PerfView log it): both events of this one system call get
                # the kernel part when they happen, and one deferred user part when it returns
                tr.stack(th, created[0], frames[0], None, created[1], cid, user_at=t + 3)
                tr.stack(th, t, frames[0], None, ev, cid, user_at=t + 3)
            else:
                tr.stack(th, t, frames[0], frames[1], ev, cid)
        if status and rec is not None:
            rec.failures.append((P.REGISTRY_KINDS[op.opcode], op.path, status, th.pid, th.tid, t,
                                 frames[2] if frames is not None else None))
        return t + 3

    def generic_work(self, w: Thread, t: int, rec: CallRec | None, cid: Any, srv: Server, iface: str,
                     opnum: int) -> tuple[int, int, int]:
        """A server procedure that reads some configuration; returns (time, RPC status, result)."""
        r = self.rng.random
        x = r()
        n = 0 if x < 0.35 else 1 if x < 0.75 else 2 if x < 0.93 else 3
        ops = srv.reg_ops
        for _ in range(n):
            op = ops[int(r() * len(ops))]
            t += 5 * US + int(r() * 40 * US)
            status = op.fail_status if op.fail_rate and r() < op.fail_rate else 0
            frames = self.worker_frames(srv, iface, opnum, op.api) if op.api is not None else None  # (None: no stack)
            t = self.reg(w, t, op, status, rec, cid, frames)
        return t + 5 * US + int(r() * srv.work_mean), 0, 0

    # -- calls -------------------------------------------------------------------------------
    def call(self, cth: Thread, srv: Server, iface: str, opnum: int, t: int, *, mode: str = "sync",
             work: Callable | None = None, parent: CallRec | None = None, related: bytes | None = None,
             completion: Thread | None = None) -> CallRec | None:
        """One LRPC call from ``cth`` starting at ``t`` (see the module docstring for the events)."""
        r = self.rng.random
        tr = self.trace
        cpus = self.cpus
        cid = self.next_call
        self.next_call += 1
        rec = None
        if self.track:
            rec = CallRec(cid, cth, srv, iface, opnum, parent.id if parent is not None else None, mode)
            self.calls.append(rec)
            if parent is not None:
                parent.children.append(cid)
        act_c = self.activity()
        spay, sfields = self.start_payload(srv, iface, opnum)
        tr.rpc(cth, t, P.RPC_CLIENT_START, act_c, spay, sfields, cid, related)
        t_start = t
        t += 10 + int(r() * 30)
        mid = self.alloc_msg(srv, t)
        tr.alpc(cth, t, P.OP_ALPC_SEND, mid, cid)
        t_send = t
        t_client_end = 0
        if mode == "sync":
            t += 3 + int(r() * 6)
            tr.alpc(cth, t, P.OP_ALPC_WAIT_REPLY, mid, cid)
            cth.free_at = INF
        else:
            t += 5 + int(r() * 10)
            if mode == "datagram":
                tr.rpc(cth, t, P.RPC_CLIENT_STOP, act_c, self.stop_payload(0), {"status": 0}, cid)
                t_client_end = t
            cth.free_at = t + 5
        # -- the server side
        w = self.pick_worker(srv, t_send)
        ts = t_send + 8 + int(r() * 25)
        if w.free_at + 3 > ts:
            ts = w.free_at + 3 + int(r() * 8)
        w.free_at = INF
        if r() < self.migrate:
            w.cpu = int(r() * cpus)
        tr.alpc(w, ts, P.OP_ALPC_RECEIVE, mid, cid)
        t_release = ts
        ts += 6 + int(r() * 15)
        act_s = self.activity()
        tr.rpc(w, ts, P.RPC_SERVER_START, act_s, spay, sfields, cid)
        srv_start = ts
        ts += 10 + int(r() * 40)
        if work is None:
            ts, status, result = self.generic_work(w, ts, rec, cid, srv, iface, opnum)
        else:
            ts, status, result = work(self, w, ts, rec, cid, srv, act_s)
        tr.rpc(w, ts, P.RPC_SERVER_STOP, act_s, self.stop_payload(status), {"status": status}, cid)
        srv_end = ts
        t_reply = 0
        if mode != "datagram":
            ts += 4 + int(r() * 8)
            tr.alpc(w, ts, P.OP_ALPC_SEND, mid, cid)
            t_reply = ts
        ts += 3 + int(r() * 5)
        tr.alpc_wait_new(w, ts, srv.port_name, True)
        w.free_at = ts + 2
        # -- the client sees the call complete
        if mode == "sync":
            tc = t_reply + 8 + int(r() * 20)
            if r() < self.migrate:
                cth.cpu = int(r() * cpus)
            tr.alpc(cth, tc, P.OP_ALPC_UNWAIT, 0, cid)
            tc += 3 + int(r() * 5)
            tr.alpc(cth, tc, P.OP_ALPC_RECEIVE, mid, cid)
            t_release = tc
            tc += 5 + int(r() * 12)
            tr.rpc(cth, tc, P.RPC_CLIENT_STOP, act_c, self.stop_payload(status), {"status": status}, cid)
            cth.free_at = tc + 5
            t_client_end = tc
        elif mode == "async":
            ct = completion if completion is not None else cth
            tc = t_reply + 10 + int(r() * 30)
            if ct.free_at + 2 > tc:
                tc = ct.free_at + 2 + int(r() * 10)
            tr.alpc(ct, tc, P.OP_ALPC_RECEIVE, mid, cid)
            t_release = tc
            tc += 5 + int(r() * 12)
            tr.rpc(ct, tc, P.RPC_CLIENT_STOP, act_c, self.stop_payload(status), {"status": status}, cid)
            ct.free_at = tc + 5
            t_client_end = tc
            if rec is not None:
                rec.completion = ct
        self.release_msg(srv, mid, t_release)
        self.last_end = t_client_end if t_client_end > w.free_at else w.free_at
        if rec is not None:
            rec.worker = w
            rec.msg = mid
            rec.start = t_start
            rec.end = t_client_end
            rec.srv_start = srv_start
            rec.srv_end = srv_end
            rec.status = status
            rec.result = result
            rec.client_activity = act_c
            rec.server_activity = act_s
        return rec

    # -- process lifetime ------------------------------------------------------------------
    def rundown(self, t: int, start: bool) -> int:
        """DCStart (trace start) or DCEnd (trace end) rundown, logged by the controller thread."""
        tr = self.trace
        ctl = self.world.controller
        cpu = ctl.cpu
        pop = P.OP_DCSTART if start else P.OP_DCEND
        for img in self.world.kernel_images:
            tr.image_event(pop, t, cpu, 0, img, ctl)
            t += 2
        for proc in self.world.procs:
            if not self._alive(proc, start):
                continue
            tr.process_event(pop, t, cpu, proc, None)
            t += 2
            for th in proc.threads:
                if self._alive(th, start):
                    tr.thread_event(pop, t, cpu, th, ctl)
                    t += 2
            for img in proc.images:
                tr.image_event(pop, t, cpu, proc.pid, img, ctl)
                t += 1
        kop = P.REG_KCB_RUNDOWN_BEGIN if start else P.REG_KCB_RUNDOWN_END
        paths = self.world.rundown_kcbs if start else list(self.world.kcbs)
        for path in paths:
            tr.registry(ctl, t, kop, 0, 0, 0, self.world.kcbs[path], path, path)
            t += 1
        ctl.free_at = t
        return t

    @staticmethod
    def _alive(obj: Proc | Thread, start: bool) -> bool:
        if start:
            return obj.started_at is None
        return obj.ended_at is None and obj.started_at != -1

    def end_rundown_size(self) -> int:
        w = self.world
        per_image = 3  # the image event, then ImageID and DbgID_RSDS (emit.Trace._image_identity)
        n = per_image * len(w.kernel_images) + len(w.kcbs)
        for proc in w.procs:
            if self._alive(proc, False):
                n += 1 + per_image * len(proc.images) + sum(1 for th in proc.threads if self._alive(th, False))
        return n

    def spawn(self, parent: Thread, t: int, proc: Proc) -> int:
        """Process/Start, Thread/Start and Image/Load events for a process created at ``t``."""
        tr = self.trace
        r = self.rng.random
        proc.started_at = t
        tr.process_event(P.OP_START, t, parent.cpu, proc, parent)
        t += 40 + int(r() * 40)
        main = proc.threads[0]
        main.started_at = t
        tr.thread_event(P.OP_START, t, parent.cpu, main, parent)
        parent.free_at = t + 5
        t += 300 + int(r() * 200)
        for img in proc.images:
            tr.image_event(P.OP_IMAGE_LOAD, t, main.cpu, proc.pid, img, main)
            t += 150 + int(r() * 400)
        for th in proc.threads[1:]:
            th.started_at = t
            tr.thread_event(P.OP_START, t, main.cpu, th, main)
            th.free_at = t + 50
            t += 80 + int(r() * 200)
        main.free_at = t
        return t

    def exit_process(self, t: int, proc: Proc, status: int = 0) -> int:
        tr = self.trace
        proc.exit_status = status
        for th in reversed(proc.threads):
            t = max(t, th.free_at)
        for th in reversed(proc.threads[1:]):
            tr.thread_event(P.OP_END, t, th.cpu, th, th)
            th.ended_at = t
            t += 20
        main = proc.threads[0]
        tr.thread_event(P.OP_END, t, main.cpu, main, main)
        main.ended_at = t
        t += 30
        tr.process_event(P.OP_END, t, main.cpu, proc, main)
        proc.ended_at = t
        return t

    def register_servers(self, t: int) -> int:
        """RPC 14 per interface and RPC 16 per endpoint on each server's main thread, then every
        worker blocks on the port (ALPC Wait-For-New-Message)."""
        tr = self.trace
        r = self.rng.random
        sd = P.security_descriptor_allow([("S-1-1-0", 0x3), (C.SYSTEM_SID, 0x1F)])
        latest = t
        for srv in self.world.services.values():
            if not srv.interfaces:
                continue
            ts = t + int(r() * 200)
            for iface in srv.interfaces:
                tr.rpc_interface_register(srv.main, ts, iface, 0x29, 1234, sd)
                ts += 20 + int(r() * 50)
            tr.rpc_endpoint_bind(srv.main, ts, srv.endpoint)
            srv.main.free_at = ts + 10
            for w in srv.workers:
                tw = ts + 30 + int(r() * 300)
                tr.alpc_wait_new(w, tw, srv.port_name, True)
                w.free_at = tw + 2
                latest = max(latest, tw)
            latest = max(latest, ts)
        return latest + 10

    def alpc_exchange(self, cth: Thread, port: NoisePort, t: int) -> None:
        """An ALPC exchange with a port that is no RPC endpoint: a datagram (Send, the server's
        Receive, its next wait) or a request and reply (as a synchronous LRPC call's ALPC events,
        with no RPC event at all)."""
        r = self.rng.random
        tr = self.trace
        w = min(port.workers, key=lambda th: th.free_at)
        t = max(t, cth.free_at)
        mid = self.alloc_msg(None, t)
        tr.alpc(cth, t, P.OP_ALPC_SEND, mid)
        tc = t
        if port.reply:
            tc += 3 + int(r() * 5)
            tr.alpc(cth, tc, P.OP_ALPC_WAIT_REPLY, mid)
        ts = max(t + 5, w.free_at) + int(r() * 20)
        tr.alpc(w, ts, P.OP_ALPC_RECEIVE, mid)
        ts += 10 * US + int(r() * 40 * US)
        t_reply = ts
        if port.reply:
            tr.alpc(w, ts, P.OP_ALPC_SEND, mid)
        ts += 3 + int(r() * 5)
        tr.alpc_wait_new(w, ts, port.port_name, True)
        w.free_at = ts + 2
        if port.reply:
            tc = max(tc, t_reply) + 8 + int(r() * 20)
            tr.alpc(cth, tc, P.OP_ALPC_UNWAIT, 0)
            tc += 3 + int(r() * 5)
            tr.alpc(cth, tc, P.OP_ALPC_RECEIVE, mid)
            self.release_msg(None, mid, tc)
        else:
            self.release_msg(None, mid, ts)
        cth.free_at = tc + 5
        self.alpc_exchanges += 1
        if w.free_at > self.last_end:
            self.last_end = w.free_at

    def reg_noise(self, th: Thread, t: int, op: RegOp, api: str | None) -> int:
        """A registry read by a client outside any call (what a real trace is full of)."""
        frames = self.process_frames(th.proc, api) if api else None
        t = self.reg(th, t, op, 0, None, None, frames)
        th.free_at = t + 2
        return t
