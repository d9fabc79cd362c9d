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
"""

from __future__ import annotations

import datetime as _dt
import heapq
import random
import zlib
from typing import Any, Callable, Sequence

from rpctrace.synth import catalog as C
from rpctrace.synth import payloads as P
from rpctrace.synth.emit import Image, Proc, Thread, Trace

US = 10  # QPC ticks (100 ns) per microsecond
MS = 10_000
INF = 1 << 62

STATUS_ACCESS_DENIED = 0xC0000022
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
ERROR_ACCESS_DENIED = 5
E_ACCESSDENIED = 0x80070005

# --------------------------------------------------------------------------- the machine


class Addr:
    """Plausible addresses for the logger's pointer size (x64 or x86 Windows 10)."""

    def __init__(self, rng: random.Random, ptr: int):
        self.rng = rng
        self.wide = ptr == 8
        if self.wide:
            self.dll_cursor = 0x7FFB00000000 + rng.randrange(0x100, 0xF00) * 0x1000000
            self.kernel_cursor = 0xFFFFF80300000000 + rng.randrange(0x10, 0x60) * 0x1000000
        else:
            self.dll_cursor = 0x77F00000 - rng.randrange(0, 0x40) * 0x10000
            self.kernel_cursor = 0x81000000 + rng.randrange(0, 0x40) * 0x100000

    def _kobj(self, hi64: int, hi32: int, align: int = 0x10) -> int:
        r = self.rng.getrandbits(28) * align
        return (hi64 | (r & 0xFFFFFFFFF)) if self.wide else (hi32 | (r & 0x0FFFFFFF)) & ~(align - 1)

    def eprocess(self) -> int:
        return self._kobj(0xFFFFC00D00000000, 0x8A000000) | 0x80

    def kcb(self) -> int:
        return self._kobj(0xFFFFAE0F00000000, 0x9A000000)

    def psid(self) -> int:
        return self._kobj(0xFFFFD18F00000000, 0x8C000000)

    def dtb(self) -> int:
        if self.wide:
            return self.rng.randrange(0x100000, 0x3FFFFF) << 12
        return self.rng.randrange(0x1000, 0x7FFFF) << 12  # x86 PAE: a 32-bit physical address

    def kernel_stack(self) -> tuple[int, int]:
        base = self._kobj(0xFFFFE38A00000000, 0x9C000000, 0x1000)
        return base, base - 0x6000

    def user_stack(self) -> tuple[int, int]:
        if self.wide:
            base = (self.rng.randrange(0x10, 0xFF) << 32) | (self.rng.getrandbits(16) << 16)
        else:
            base = self.rng.randrange(0x10, 0x7F0) << 16
        return base, base - 0x3000

    def teb(self) -> int:
        if self.wide:
            return (self.rng.randrange(0x10, 0xFF) << 32) | (self.rng.getrandbits(20) << 12)
        return self.rng.randrange(0x100, 0x7FF) << 12

    def exe_base(self) -> int:
        if self.wide:
            return 0x7FF600000000 + self.rng.randrange(0x100, 0x1FFFF) * 0x10000
        return self.rng.randrange(0x00A0, 0x0F00) * 0x10000

    def next_dll(self, size: int) -> int:
        self.dll_cursor -= (size + 0xFFFF) & ~0xFFFF
        self.dll_cursor -= self.rng.randrange(1, 4) * 0x10000
        return self.dll_cursor

    def next_kernel(self, size: int) -> int:
        base = self.kernel_cursor
        self.kernel_cursor += ((size + 0xFFFF) & ~0xFFFF) + self.rng.randrange(1, 8) * 0x10000
        return base


class RegOp:
    """One registry operation a thread may perform (what the Registry event will carry)."""

    __slots__ = ("opcode", "api", "kcb", "name", "name_bytes", "path", "index", "create_path", "fail_status",
                 "fail_rate")

    def __init__(self, opcode: int, api: str | None, kcb: int, name: str, path: str, *, index: int = 0,
                 create_path: str | None = None, fail_status: int = 0, fail_rate: float = 0.0):
        self.opcode = opcode
        self.api = api  # REGISTRY_APIS key for the stack, None when the op has no stack
        self.kcb = kcb  # KeyHandle field: the key's KCB, or the root's for Open/Create
        self.name = name  # as recorded: relative key name (Open/Create) or value name
        self.name_bytes = P.utf16z(name)
        self.path = path  # full NT path of the key the op is about
        self.index = index
        self.create_path = create_path  # an Open that creates this key's KCB (KCBCreate first)
        self.fail_status = fail_status
        self.fail_rate = fail_rate


class Server:
    """A service listening on an LRPC endpoint, with its worker pool and ALPC port."""

    __slots__ = ("spec", "name", "proc", "endpoint", "port_name", "interfaces", "workers", "main", "msg_heap",
                 "msg_next", "reg_ops", "start_cache", "frames_cache", "work_mean")

    def __init__(self, spec: C.ServiceSpec, proc: Proc, endpoint: str, msg_base: int):
        self.spec = spec
        self.name = spec.name
        self.proc = proc
        self.endpoint = endpoint
        self.port_name = "\\RPC Control\\" + endpoint
        self.interfaces = spec.interfaces
        self.workers: list[Thread] = []
        self.main: Thread = proc.threads[0]  # logs RPC 14/16: the service process's first thread
        self.msg_heap: list[tuple[int, int]] = []
        self.msg_next = msg_base
        self.reg_ops: list[RegOp] = []
        self.start_cache: dict[tuple[str, int], tuple[bytes, dict]] = {}
        self.frames_cache: dict[Any, tuple] = {}
        self.work_mean = 200 * US


class MsgTable:
    """The system's ALPC message ids: the free ones by when they were released, and the next new one."""

    __slots__ = ("heap", "next")

    def __init__(self) -> None:
        self.heap: list[tuple[int, int]] = []
        self.next: int | None = None


class NoisePort:
    """An ALPC port that is no RPC endpoint (csrss's ApiPort, lsass's LsaAuthenticationPort):
    clients exchange messages with it without any RPC event, as real traces are full of."""

    __slots__ = ("proc", "port_name", "workers", "reply")

    def __init__(self, proc: Proc, port_name: str, workers: list[Thread], reply: bool):
        self.proc = proc
        self.port_name = port_name
        self.workers = workers
        self.reply = reply


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


class World:
    """Processes, threads, images, registry keys and services of the simulated machine."""

    def __init__(self, rng: random.Random, ptr: int, cpus: int):
        self.rng = rng
        self.ptr = ptr
        self.cpus = cpus
        self.addr = Addr(rng, ptr)
        self.cids: set[int] = set()
        self.procs: list[Proc] = []
        self.dll_bases: dict[str, int] = {}
        self.kernel_images: list[Image] = []
        self.kcbs: dict[str, int] = {}  # full NT key path -> KCB address
        self.rundown_kcbs: list[str] = []
        self.services: dict[str, Server] = {}
        self.clients: list[Proc] = []
        self.client_threads: dict[int, list[Thread]] = {}  # pid -> caller threads
        self.pool_threads: dict[int, Thread] = {}  # pid -> async completion thread
        self.msg_table = MsgTable()
        self.user_sid = "S-1-5-21-{}-{}-{}-1001".format(
            rng.randrange(10**9, 4 * 10**9), rng.randrange(10**9, 4 * 10**9), rng.randrange(10**8, 10**9)
        )
        self.session = 1
        self.controller: Thread
        self.system: Proc
        self.explorer: Proc
        self._build_base()

    # -- ids and objects -------------------------------------------------------------
    def cid(self, lo: int, hi: int) -> int:
        """A process/thread id: a multiple of 4, unique across both (one CID table)."""
        while True:
            v = self.rng.randrange(lo // 4, hi // 4) * 4
            if v not in self.cids:
                self.cids.add(v)
                return v

    def dll_image(self, name: str) -> Image:
        size = C.module_size(name, self.ptr)
        base = self.dll_bases.get(name)
        if base is None:
            base = self.dll_bases[name] = self.addr.next_dll(size)
        syms = C.DLLS.get(name, (0, 0, {}))[2]
        path = C.SYSTEM32 + name
        return Image(base, size, path, self._checksum(name), self._tds(name), syms)

    def _checksum(self, name: str) -> int:
        return (hash_str(name) * 2654435761) & 0xFFFFF

    def _tds(self, name: str) -> int:
        return 0x5A000000 + (hash_str(name) % 0x02000000)

    def new_process(self, image: str, path: str, cmdline: str, sid: str, *, ppid: int, session: int,
                    dlls: list[str], threads: int, pool: bool = False, pid_range=(400, 16000),
                    in_trace: bool = False) -> Proc:
        pid = self.cid(*pid_range)
        proc = Proc(pid, ppid, image, cmdline, sid, session)
        proc.key = self.addr.eprocess()
        proc.dtb = self.addr.dtb()
        proc.psid = self.addr.psid()
        size = C.module_size(image, self.ptr)
        exe = Image(self.addr.exe_base(), size, path, self._checksum(image), self._tds(image),
                    {"wWinMain": 0x1A20, "ServiceMain": 0x2F40})
        proc.images = [exe] + [self.dll_image(d) for d in dlls]
        for i in range(threads):
            self.new_thread(proc, worker=pool and i > 0)
        self.procs.append(proc)
        if in_trace:
            proc.started_at = -1  # set when spawned; keeps it out of the start rundown
            for th in proc.threads:
                th.started_at = -1
        return proc

    def new_thread(self, proc: Proc, worker: bool, tid_range=(1000, 30000)) -> Thread:
        th = Thread(self.cid(*tid_range), proc, self.rng.randrange(self.cpus))
        th.stack_base, th.stack_limit = self.addr.kernel_stack()
        th.user_stack_base, th.user_stack_limit = self.addr.user_stack()
        th.affinity = (1 << self.cpus) - 1
        th.teb = self.addr.teb()
        if worker:
            th.win32_start = self.symbol(proc, "ntdll.dll", "TppWorkerThread", ret=False)
        elif proc.images:
            th.win32_start = proc.images[0].base + 0x1A20
        th.kt = self.rng.randrange(0, 4000)
        th.ut = self.rng.randrange(0, 9000)
        proc.threads.append(th)
        return th

    def symbol(self, proc: Proc | None, module: str, symbol: str, ret: bool = True) -> int:
        """Address of ``module!symbol`` (a return address inside it when ``ret``)."""
        images = self.kernel_images if module == "ntoskrnl.exe" or proc is None else proc.images
        low = module.lower()
        for img in images:
            if img.name.lower() == low:
                rva = C.symbol_rva(img.name, symbol, img.size)
                return img.base + rva + (C.call_site_offset(img.name, symbol) if ret else 0)
        raise KeyError(f"{module} is not loaded in {proc.image if proc else 'the kernel'}")

    def frames(self, proc: Proc, spec: list[tuple[str, str]]) -> tuple[list[int], list[dict]]:
        """Return addresses (innermost first) and their symbolic form for a stack spec."""
        addrs, names = [], []
        for module, sym in spec:
            a = self.symbol(proc, module, sym)
            img = next(i for i in (self.kernel_images if module == "ntoskrnl.exe" else proc.images)
                       if i.name.lower() == module.lower())
            addrs.append(a)
            short = "nt" if module == "ntoskrnl.exe" else module.rsplit(".", 1)[0]
            names.append({"address": a, "module": img.name, "offset": a - img.base,
                          "symbol": f"{short}!{sym}+0x{C.call_site_offset(img.name, sym):x}"})
        return addrs, names

    def kcb(self, path: str, rundown: bool = True) -> int:
        """The KCB of a key that exists at trace start (listed in the KCB rundown)."""
        k = self.kcbs.get(path)
        if k is None:
            k = self.kcbs[path] = self.addr.kcb()
            if rundown:
                self.rundown_kcbs.append(path)
        return k

    # -- the boot session --------------------------------------------------------------
    def _build_base(self) -> None:
        rng = self.rng
        for name, s64, s32, syms, path in C.KERNEL_MODULES:
            size = s64 if self.ptr == 8 else s32
            self.kernel_images.append(Image(self.addr.next_kernel(size), size, path, self._checksum(name),
                                            self._tds(name), syms))
        system = Proc(4, 0, "System", "", C.SYSTEM_SID, 0)
        self.cids.add(4)
        system.key, system.dtb, system.psid = self.addr.eprocess(), 0x1AA000, self.addr.psid()
        self.procs.append(system)
        for _ in range(3):
            th = self.new_thread(system, worker=False, tid_range=(8, 400))
            th.win32_start = self.kernel_images[0].base + 0x4A1F30 + rng.randrange(0, 64) * 0x40
        self.system = system
        # Parent of each boot process (smss's session children have exited, as on a real box,
        # so csrss/wininit/winlogon name a pid that no longer exists: smss's).
        parent_of = {"smss.exe": "System", "csrss.exe": "smss.exe", "wininit.exe": "smss.exe",
                     "services.exe": "wininit.exe", "lsass.exe": "wininit.exe", "winlogon.exe": "smss.exe",
                     "dwm.exe": "winlogon.exe"}
        parents = {"System": 4}
        for image, path, cmd, sid in C.BASE_PROCESSES:
            ppid = parents[parent_of[image]]
            session = 1 if image in ("winlogon.exe", "dwm.exe") else 0
            p = self.new_process(image, path, cmd, sid, ppid=ppid, session=session,
                                 dlls=["ntdll.dll", "KERNEL32.DLL", "KERNELBASE.dll", "RPCRT4.dll", "sechost.dll"],
                                 threads=rng.randrange(2, 5), pid_range=(300, 1200))
            parents[image] = p.pid
        self.services_pid = parents["services.exe"]
        self.explorer = self.new_client_process(C.CLIENTS[0], ppid=self.cid(4000, 6000))
        shell = self.new_process("cmd.exe", C.SYSTEM32 + "cmd.exe", '"C:\\WINDOWS\\system32\\cmd.exe"',
                                 self.user_sid, ppid=self.explorer.pid, session=self.session,
                                 dlls=["ntdll.dll", "KERNEL32.DLL", "KERNELBASE.dll", "msvcrt.dll"], threads=1)
        image, path, cmdline = C.CONTROLLER
        # The controller runs elevated: the interactive user's token, High integrity.
        ctl = self.new_process(image, path, cmdline, self.user_sid, ppid=shell.pid, session=self.session,
                               dlls=["ntdll.dll", "KERNEL32.DLL", "KERNELBASE.dll", "advapi32.dll", "msvcrt.dll"],
                               threads=1)
        self.controller = ctl.threads[0]
        self.controller.cpu = 0
        # Keys every trace knows from the KCB rundown.
        for path in ("\\REGISTRY\\MACHINE", "\\REGISTRY\\USER", "\\REGISTRY\\MACHINE\\SOFTWARE",
                     "\\REGISTRY\\MACHINE\\SYSTEM", "\\REGISTRY\\USER\\" + self.user_sid,
                     "\\REGISTRY\\USER\\" + self.user_sid + "\\Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\Advanced"):
            self.kcb(path)

    def new_client_process(self, client: tuple[str, str, str], ppid: int | None = None,
                           in_trace: bool = False) -> Proc:
        image, path, cmd = client
        if ppid is None:
            ppid = self.explorer.pid
        sid = C.SYSTEM_SID if image in ("MsMpEng.exe", "WmiPrvSE.exe") else self.user_sid
        session = 0 if sid == C.SYSTEM_SID else self.session
        extra = ["user32.dll", "SHELL32.dll"] if image == "explorer.exe" else ["user32.dll"]
        p = self.new_process(image, path, cmd, sid, ppid=ppid, session=session, dlls=C.COMMON_DLLS + extra,
                             threads=self.rng.randrange(2, 5), in_trace=in_trace)
        callers = p.threads[:max(1, len(p.threads) - 1)]
        self.client_threads[p.pid] = callers
        self.pool_threads[p.pid] = self.new_thread(p, worker=True)
        if in_trace:
            self.pool_threads[p.pid].started_at = -1
        self.clients.append(p)
        return p

    def add_service(self, name: str) -> Server:
        spec = C.SERVICES[name]
        proc = self.new_process("svchost.exe", C.SYSTEM32 + "svchost.exe", spec.command_line, spec.user_sid,
                                ppid=self.services_pid, session=0,
                                dlls=C.COMMON_DLLS + [spec.dll] + spec.extra_dlls, threads=1, pid_range=(800, 9000))
        proc.service = spec.name
        endpoint = spec.endpoint or "LRPC-" + "".join(f"{self.rng.getrandbits(8):02x}" for _ in range(9))
        srv = Server(spec, proc, endpoint, msg_base=self.rng.randrange(0x40, 0x2000) * 4)
        if self.msg_table.next is None:
            self.msg_table.next = srv.msg_next  # the first server's draw starts the system's table
        srv.main = proc.threads[0]
        srv.main.tag = spec.tag
        for _ in range(spec.workers):
            w = self.new_thread(proc, worker=True)
            w.tag = spec.tag
            srv.workers.append(w)
        params = f"\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Services\\{spec.name}\\Parameters"
        hklm = self.kcb("\\REGISTRY\\MACHINE")
        pk = self.kcb(params)
        for i, value in enumerate(spec.values):
            srv.reg_ops.append(RegOp(P.REG_QUERY_VALUE, "query_value", pk, value, params, index=2,
                                     fail_status=STATUS_OBJECT_NAME_NOT_FOUND, fail_rate=0.3 if i == len(spec.values) - 1 else 0.0))
        srv.reg_ops.append(RegOp(P.REG_OPEN, "open", hklm, params[len("\\REGISTRY\\MACHINE\\"):], params))
        state = f"\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Services\\{spec.name}\\State"
        srv.reg_ops.append(RegOp(P.REG_OPEN, "open", hklm, state[len("\\REGISTRY\\MACHINE\\"):], state,
                                 create_path=state))
        policy = f"\\REGISTRY\\MACHINE\\SOFTWARE\\Policies\\Microsoft\\Windows\\{spec.name}"
        srv.reg_ops.append(RegOp(P.REG_OPEN, "open", hklm, policy[len("\\REGISTRY\\MACHINE\\"):], policy,
                                 fail_status=STATUS_OBJECT_NAME_NOT_FOUND, fail_rate=1.0))
        srv.work_mean = self.rng.randrange(40, 200) * US
        self.services[name] = srv
        return srv


def hash_str(text: str) -> int:
    """A stable string hash (``hash()`` is salted per interpreter run)."""
    return zlib.crc32(text.encode())


# --------------------------------------------------------------------------- the simulation


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


# --------------------------------------------------------------------------- scenarios


class Plan:
    """The knobs one scenario run uses (after the CLI's --clients/--calls/--events)."""

    def __init__(self, *, services: list[str], clients: int, calls: int, events: int | None, gap: int,
                 modes: tuple[tuple[str, float], ...] = (("sync", 1.0),), drop_rate: float = 0.0,
                 datagrams: bool = False, alpc_noise: float = 0.0):
        self.services = services
        self.clients = clients
        self.calls = calls
        self.events = events
        self.gap = gap
        self.modes = modes
        self.drop_rate = drop_rate
        self.datagrams = datagrams
        self.alpc_noise = alpc_noise  # ALPC exchanges with non-RPC ports per RPC call
        # A logger with small buffers is the one that loses them: lost-events uses 8 KiB.
        self.buffer_size = 0x2000 if drop_rate else 0x10000


SCENARIOS: dict[str, str] = {
    "audiosrv-access-denied": "The article's incident: rundll32 (Sound control panel) calls Audiosrv "
    "PolicyConfigSetDefaultEndpoint (opnum 71) over AudioClientRpc; the svchost worker's registry "
    "open of the Render device key fails with 0xC0000022, amid background RPC traffic.",
    "busy-server": "Many clients, several svchost servers with thread pools: concurrent calls, reused "
    "workers, replies out of order, ALPC message ids reused; scales to 10 million events.",
    "nested": "A server calls a second server while handling a call, which calls a third; the leaf "
    "call fails (registry access denied, RpcRaiseException(5)).",
    "lost-events": "busy-server with a share of per-CPU buffers lost, as when the logger drops buffers.",
    "async": "One-way (datagram) calls and asynchronous calls whose reply is picked up later by a "
    "client thread-pool thread, mixed with synchronous calls.",
}

_DEFAULTS = {
    # scenario: (services, clients, calls, mean gap between calls)
    "audiosrv-access-denied": (["Audiosrv", "Dnscache", "nsi", "Power", "LSM"], 6, 60, 2 * MS),
    "busy-server": (["Dnscache", "Schedule", "UserManager", "LSM", "nsi", "Power", "Appinfo", "Audiosrv"], 12, 3000,
                    25 * US),
    "nested": (["Schedule", "UserManager", "LSM", "Dnscache", "nsi", "Power"], 4, 40, 1 * MS),
    "lost-events": (["Dnscache", "Schedule", "UserManager", "LSM", "nsi", "Power", "Appinfo", "Audiosrv"], 12, 3000,
                    25 * US),
    "async": (["Audiosrv", "AudioEndpointBuilder", "Dnscache", "nsi", "Power", "LSM"], 6, 200, 300 * US),
}

#: Background calls never use these (they belong to a scenario's story).
_STORY_ONLY = {(C.AUDIO_IF, 71)}
#: The Audiosrv notification interface takes one-way calls only.
_DATAGRAM_IFS = {C.AUDIO_NOTIFY_IF}

EVENTS_PER_CALL = 14  # a typical background call, for sizing estimates


def make_plan(name: str, clients: int | None, calls: int | None, events: int | None) -> Plan:
    services, d_clients, d_calls, gap = _DEFAULTS[name]
    modes: tuple[tuple[str, float], ...] = (("sync", 1.0),)
    if name == "async":
        modes = (("sync", 0.45), ("async", 0.55))
    plan = Plan(services=list(services), clients=max(1, clients if clients is not None else d_clients),
                calls=max(0, calls if calls is not None else d_calls), events=events, gap=gap, modes=modes,
                drop_rate=0.08 if name == "lost-events" else 0.0, datagrams=name == "async",
                alpc_noise=0.35 if name == "busy-server" else 0.0)
    if events is not None:
        plan.calls = max(0, events // EVENTS_PER_CALL)
    return plan


class Run:
    """One scenario being generated: the world, the simulation and its storyline."""

    def __init__(self, name: str, plan: Plan, world: World, sim: Sim):
        self.name = name
        self.plan = plan
        self.world = world
        self.sim = sim
        # (when, what): a fraction of the run while the stories are laid out, then the time
        self.story: list[tuple[float, Callable[[int], None]]] = []
        self.key_call: CallRec | None = None
        self.story_process: Proc | None = None
        self.pairs: list[tuple[Proc, Server, str, int, str]] = []
        self.noise_ops: list[RegOp] = []
        self.noise_ports: list[NoisePort] = []

    # -- background traffic ------------------------------------------------------------------
    def build_background(self) -> None:
        world = self.world
        rng = world.rng
        servers = [s for s in world.services.values() if s.interfaces]
        others = C.CLIENTS[1:]
        for i in range(self.plan.clients):
            # explorer first, then the other programs (a second chrome.exe etc. past the list)
            proc = world.explorer if i == 0 else world.new_client_process(others[(i - 1) % len(others)])
            chosen = rng.sample(servers, min(len(servers), rng.randrange(2, 4)))
            for srv in chosen:
                for iface, procs in srv.interfaces.items():
                    for opnum in procs:
                        if (iface, opnum) in _STORY_ONLY:
                            continue
                        if iface in _DATAGRAM_IFS:
                            continue
                        self.pairs.append((proc, srv, iface, opnum, ""))
        if self.plan.datagrams and "AudioEndpointBuilder" in world.services and "Audiosrv" in world.services:
            # AudioEndpointBuilder tells Audiosrv about device changes with one-way calls.
            aeb = world.services["AudioEndpointBuilder"]
            audio = world.services["Audiosrv"]
            world.client_threads[aeb.proc.pid] = [aeb.main] + aeb.workers[:-1]
            world.pool_threads[aeb.proc.pid] = aeb.workers[-1]
            dgram = [(aeb.proc, audio, C.AUDIO_NOTIFY_IF, op, "datagram") for op in audio.interfaces[C.AUDIO_NOTIFY_IF]]
            self.pairs += dgram * max(1, len(self.pairs) // (3 * len(dgram)))
        adv = "\\REGISTRY\\USER\\" + world.user_sid + "\\Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\Advanced"
        k = world.kcb(adv)
        for value in ("Hidden", "HideFileExt", "TaskbarSmallIcons", "ShowSuperHidden"):
            self.noise_ops.append(RegOp(P.REG_QUERY_VALUE, "query_value", k, value, adv, index=2))

    def pick_mode(self, r: float) -> str:
        acc = 0.0
        for mode, weight in self.plan.modes:
            acc += weight
            if r < acc:
                return mode
        return self.plan.modes[-1][0]

    def background(self, t0: int) -> int:
        """Background calls in arrival order, with the story items run at their times; drains
        the writer as it goes (every event later than ``arrival`` is still to come)."""
        sim = self.sim
        world = self.world
        rng = world.rng
        r = rng.random
        writer = sim.trace.w
        plan = self.plan
        story = sorted(self.story, key=lambda s: s[0])
        pairs = self.pairs
        npairs = len(pairs)
        noise = self.noise_ops
        target = plan.events
        gap = plan.gap
        arrival = t0
        count = 0
        reserve = sim.end_rundown_size() + 200
        lag = max(20 * MS, 50 * gap)
        while True:
            if target is not None:
                if writer.added + 40 + reserve >= target:
                    break
            elif count >= plan.calls:
                break
            if npairs == 0:
                break
            arrival += 1 + int(rng.expovariate(1.0) * gap)
            while story and story[0][0] <= arrival:
                story.pop(0)[1](arrival)
            proc, srv, iface, opnum, mode = pairs[int(r() * npairs)]
            threads = world.client_threads[proc.pid]
            cth = threads[int(r() * len(threads))]
            t = arrival if cth.free_at <= arrival else cth.free_at
            if not mode:
                mode = self.pick_mode(r())
            sim.call(cth, srv, iface, opnum, t, mode=mode, completion=world.pool_threads[proc.pid])
            count += 1
            # Backpressure: when clients or servers are saturated the simulated time runs ahead
            # of the arrivals; slow the arrivals down so the writer's pending window stays small.
            if sim.last_end - arrival > lag:
                arrival = sim.last_end - lag
            ports = self.noise_ports
            if ports and r() < plan.alpc_noise:
                sim.alpc_exchange(threads[int(r() * len(threads))], ports[int(r() * len(ports))], arrival + 3)
            if noise and r() < sim.noise_rate:
                nth = threads[int(r() * len(threads))]
                tn = arrival + 5 if nth.free_at <= arrival else nth.free_at + 5
                sim.reg_noise(nth, tn, noise[int(r() * len(noise))], "query_value")
            if count & 511 == 0:
                writer.drain(arrival)
                if target is not None:
                    reserve = sim.end_rundown_size() + 200
        for _, fn in story:
            arrival += gap
            fn(arrival)
        return arrival

    def open_noise_ports(self, t: int) -> int:
        """csrss's ApiPort (datagrams) and lsass's LsaAuthenticationPort (request and reply),
        each with two threads waiting on it, when the plan wants ALPC traffic that is not RPC."""
        r = self.world.rng.random
        for port in self.noise_ports:
            for w in port.workers:
                tw = t + int(r() * 300)
                self.sim.trace.alpc_wait_new(w, tw, port.port_name, True)
                w.free_at = tw + 2
        return t + 400 if self.noise_ports else t

    def add_noise_ports(self) -> None:
        """The ports of :meth:`open_noise_ports` and their threads (before the start rundown, so
        the threads are in it like every other thread of a process that was already running)."""
        if not self.plan.alpc_noise:
            return
        world = self.world
        for image, port, reply in (("csrss.exe", "\\Windows\\ApiPort", False),
                                   ("lsass.exe", "\\LsaAuthenticationPort", True)):
            proc = next((p for p in world.procs if p.image == image), None)
            if proc is not None:
                self.noise_ports.append(NoisePort(proc, port, [world.new_thread(proc, worker=True) for _ in range(2)],
                                                  reply))

    def pad(self, t: int, target: int | None) -> int:
        """Fill up to exactly ``target`` records with single registry Close events (KCB close
        is not stack-walked), so ``--events N`` gives N records when it can."""
        if target is None:
            return t
        sim = self.sim
        world = self.world
        writer = sim.trace.w
        missing = target - (writer.added + 1 + sim.end_rundown_size())
        if missing <= 0 or not world.clients:
            return t
        adv = "\\REGISTRY\\USER\\" + world.user_sid + "\\Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\Advanced"
        op = RegOp(P.REG_CLOSE, None, world.kcbs[adv], adv, adv)
        threads = [th for p in world.clients for th in world.client_threads[p.pid]]
        r = world.rng.random
        for i in range(missing):
            th = threads[int(r() * len(threads))]
            t += 1 + int(r() * 40)
            tt = t if th.free_at <= t else th.free_at
            sim.reg(th, tt, op, 0, None, None, None)
            th.free_at = tt + 2
            if i & 4095 == 4095:
                writer.drain(t)
        return max([t] + [th.free_at for th in threads])


# --------------------------------------------------------------------------- storylines


def _story_audiosrv(run: Run, t_story: float) -> None:
    """rundll32 (the Sound control panel) reads the device format twice, then "Set Default"
    calls PolicyConfigSetDefaultEndpoint, whose registry open for write is denied."""
    world = run.world
    sim = run.sim
    srv = world.services["Audiosrv"]
    render = C.AUDIO_RENDER
    device = render + "\\" + C.AUDIO_DEVICE
    props = device + "\\Properties"
    hklm = world.kcb("\\REGISTRY\\MACHINE")
    world.kcb(render)
    dev_kcb = world.kcb(device)
    props_kcb = world.kcb(props)
    world.kcb(render + "\\" + C.AUDIO_DEVICE_HDMI)
    read_format = RegOp(P.REG_QUERY_VALUE, "query_value", props_kcb, "{f19f064d-082c-4e27-bc73-6882a1bb8e4c},0",
                        props, index=2)
    read_state = RegOp(P.REG_QUERY_VALUE, "query_value", dev_kcb, "DeviceState", device, index=2)
    open_write = RegOp(P.REG_OPEN, "open", hklm, device[len("\\REGISTRY\\MACHINE\\"):], device)
    get_reg = [("MMDevAPI.dll", "CSubEndpointDevice::GetRegValue")]
    set_reg = [("MMDevAPI.dll", "CSubEndpointDevice::SetRegValue")]

    def read_work(sim: Sim, w: Thread, t: int, rec, cid, srv: Server, act):
        t = sim.reg(w, t, read_format, 0, rec, cid, sim.worker_frames(srv, C.AUDIO_IF, 61, "query_value", get_reg))
        return t + 40 * US + int(sim.rng.random() * 60 * US), 0, 0

    def set_default_work(sim: Sim, w: Thread, t: int, rec, cid, srv: Server, act):
        t = sim.reg(w, t, read_state, 0, rec, cid, sim.worker_frames(srv, C.AUDIO_IF, 71, "query_value", get_reg))
        t += 35 * US
        t = sim.reg(w, t, open_write, STATUS_ACCESS_DENIED, rec, cid,
                    sim.worker_frames(srv, C.AUDIO_IF, 71, "open", set_reg))
        # MMDevAPI maps the status to E_ACCESSDENIED; the RPC call itself completes normally.
        return t + 25 * US, 0, E_ACCESSDENIED

    image = "rundll32.exe"
    cmd = "C:\\WINDOWS\\system32\\rundll32.exe Shell32.dll,Control_RunDLL mmsys.cpl,,sounds"
    proc = world.new_process(image, C.SYSTEM32 + image, cmd, world.user_sid, ppid=world.explorer.pid,
                             session=world.session,
                             dlls=C.COMMON_DLLS + ["user32.dll", "SHELL32.dll", "mmsys.cpl", "AUDIOSES.DLL",
                                                   "MMDevAPI.dll"],
                             threads=2, in_trace=True)
    run.story_process = proc

    def go(t: int) -> None:
        parent = world.explorer.threads[0]
        t = max(t, parent.free_at)
        t = sim.spawn(parent, t, proc)
        ui = proc.threads[0]
        t += 30 * MS
        for _ in range(2):
            sim.call(ui, srv, C.AUDIO_IF, 61, t, work=read_work)
            t = ui.free_at + 4 * MS
        t += 900 * MS  # the user finds the HDMI device and clicks "Set Default"
        run.key_call = sim.call(ui, srv, C.AUDIO_IF, 71, t, work=set_default_work)

    run.story.append((t_story, go))


def _story_nested(run: Run, t_story: float) -> None:
    """mmc.exe -> Schedule (SchRpcRegisterTask) -> UserManager (svcQueryUserToken) -> LSM
    (RpcGetUserToken); LSM's worker is denied a registry key and raises ERROR_ACCESS_DENIED."""
    world = run.world
    sim = run.sim
    sched, umgr, lsm = world.services["Schedule"], world.services["UserManager"], world.services["LSM"]
    hklm = world.kcb("\\REGISTRY\\MACHINE")
    ts_key = "\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\\UserTokenCache"
    world.kcb("\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server")
    denied = RegOp(P.REG_OPEN, "open", hklm, ts_key[len("\\REGISTRY\\MACHINE\\"):], ts_key)
    tasks = "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Schedule\\TaskCache\\Tree"
    tasks_kcb = world.kcb(tasks)
    read_tree = RegOp(P.REG_QUERY_VALUE, "query_value", tasks_kcb, "SD", tasks, index=2)
    image = "mmc.exe"
    mmc = world.new_process(image, C.SYSTEM32 + image, '"C:\\WINDOWS\\system32\\mmc.exe" "C:\\WINDOWS\\system32\\taskschd.msc" /s',
                            world.user_sid, ppid=world.explorer.pid, session=world.session,
                            dlls=C.COMMON_DLLS + ["user32.dll"], threads=2)

    def leaf(sim: Sim, w: Thread, t: int, rec, cid, srv: Server, act):
        t = sim.reg(w, t, denied, STATUS_ACCESS_DENIED, rec, cid, sim.worker_frames(srv, C.LSM_IF, 0, "open"))
        return t + 20 * US, ERROR_ACCESS_DENIED, ERROR_ACCESS_DENIED  # RpcRaiseException(5)

    def middle(sim: Sim, w: Thread, t: int, rec, cid, srv: Server, act):
        t += 15 * US
        child = sim.call(w, lsm, C.LSM_IF, 0, t, work=leaf, parent=rec, related=act)
        t = w.free_at + 10 * US
        if rec is not None and child is not None:
            rec.failures.append(("rpc.client_stop", None, child.status, w.pid, w.tid, child.end, None))
        return t, 0, E_ACCESSDENIED

    def top(sim: Sim, w: Thread, t: int, rec, cid, srv: Server, act):
        t = sim.reg(w, t, read_tree, 0, rec, cid, sim.worker_frames(srv, C.SCHED_IF, 1, "query_value"))
        t += 30 * US
        sim.call(w, umgr, C.USERMGR_IF, 0, t, work=middle, parent=rec, related=act)
        return w.free_at + 40 * US, 0, E_ACCESSDENIED

    def go(t: int) -> None:
        th = mmc.threads[0]
        t = max(t, th.free_at)
        run.key_call = sim.call(th, sched, C.SCHED_IF, 1, t, work=top)

    run.story.append((t_story, go))


def _story_short_lived(run: Run, t_story: float) -> None:
    """A process that starts and exits inside the trace (Process/Thread Start and End)."""
    world = run.world
    sim = run.sim
    client = next(c for c in C.CLIENTS if c[0] == "taskhostw.exe")
    proc = world.new_client_process(client, in_trace=True)
    world.clients.remove(proc)  # not a background caller: it may not exist yet

    def go(t: int) -> None:
        parent = world.explorer.threads[0]
        t = max(t, parent.free_at)
        t = sim.spawn(parent, t, proc)
        t += 2 * MS
        sim.exit_process(t, proc, 0)

    run.story.append((t_story, go))


STORIES: dict[str, list[Callable[[Run, float], None]]] = {
    "audiosrv-access-denied": [_story_audiosrv],
    "busy-server": [_story_short_lived],
    "nested": [_story_nested],
    "lost-events": [_story_short_lived],
    "async": [],
}


# --------------------------------------------------------------------------- one run


class _Dropper:
    """Decides which per-CPU buffers the logger "loses" (lost-events): never one that starts
    before ``after`` (the start rundown and the servers' registration stay intact, so every
    process and thread is known), always the first eligible one (so a small trace loses
    something), then a seeded share of the rest."""

    def __init__(self, rng: random.Random, rate: float):
        self.rng = rng
        self.rate = rate
        self.after = INF
        self.dropped_any = False
        self.discarded_any = False

    def __call__(self, cpu: int, seq: int, first_ts: int) -> bool:
        if first_ts < self.after:
            return False
        if not self.dropped_any or self.rng.random() < self.rate:
            self.dropped_any = True
            return True
        return False

    def discard(self, cpu: int, seq: int, last_ts: int) -> int:
        """How many of the CPU's next events the logger discards for want of a free buffer
        (a burst now and then, never before ``after``; the first chance always takes one)."""
        if last_ts < self.after:
            return 0
        if not self.discarded_any or self.rng.random() < self.rate / 4:
            self.discarded_any = True
            return self.rng.randrange(2, 12)
        return 0


def _filetime(year: int, month: int, day: int, hour: int) -> int:
    utc = _dt.timezone.utc
    delta = _dt.datetime(year, month, day, hour, tzinfo=utc) - _dt.datetime(1601, 1, 1, tzinfo=utc)
    return delta // _dt.timedelta(microseconds=1) * 10


CPUS = 4


def generate(name: str, out, *, seed: int, clients: int | None, calls: int | None, events: int | None,
             pointer_size: int, compress: bool, track: bool, keep_limit: int, on_progress=None,
             stack_cache: int = 0):
    """Build the machine, run the scenario, write the .etl; return what the truth needs."""
    from rpctrace.synth.etlfile import Clock, EtlWriter

    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    plan = make_plan(name, clients, calls, events)
    rng = random.Random(f"rpctrace.synth:{name}:{seed}")
    world = World(rng, pointer_size, CPUS)
    for svc in plan.services:
        world.add_service(svc)
    start_ft = _filetime(2019, 4, 15, 9) + rng.randrange(0, 3600) * 10**7 + rng.randrange(10**7)
    header_qpc = rng.randrange(2 * 3600, 9 * 3600) * 10**7 + rng.randrange(10**7)
    clock = Clock(start_ft, header_qpc)
    estimate = plan.events if plan.events is not None else 4000 + plan.calls * (EVENTS_PER_CALL + 2)
    keep = track and estimate <= keep_limit * 2  # the truth drops them if the file is larger
    drop = None
    if plan.drop_rate:
        drop = _Dropper(random.Random(f"rpctrace.synth.drop:{seed}"), plan.drop_rate)
    ctl = world.controller
    writer = EtlWriter(out, clock=clock, pointer_size=pointer_size, cpus=CPUS, compress=compress,
                       buffer_size=plan.buffer_size,
                       controller_pid=ctl.pid, controller_tid=ctl.tid, keep_tags=keep, drop_buffer=drop,
                       discard_events=drop.discard if drop is not None else None,
                       logfile_name="C:\\Users\\alice\\rpc.etl")
    if on_progress is not None:
        writer.on_drain = lambda done: on_progress(done, max(done, estimate))
    # Records are tagged only when something reads the tags: the truth's events, or the
    # accounting of lost buffers.
    trace = Trace(writer, track=track and (keep or drop is not None), keep_events=keep)
    if stack_cache:
        trace.enable_stack_cache(stack_cache)
    sim = Sim(world, trace, rng, track)
    run = Run(name, plan, world, sim)
    run.build_background()
    run.add_noise_ports()
    for i, story in enumerate(STORIES[name]):
        story(run, 0.3 + 0.25 * i)
    t = sim.rundown(header_qpc + 300, start=True)
    t = sim.register_servers(t + 2 * MS)
    t = run.open_noise_ports(t)
    if drop is not None:
        drop.after = t
    duration = max(plan.calls, 20) * plan.gap
    run.story = [(t + int(f * duration), go) for f, go in run.story]
    end = run.background(t)
    end = run.pad(end, plan.events)
    busy = [th.free_at for p in world.procs for th in p.threads if th.free_at < INF]
    t_end = max([end] + busy) + 1 * MS
    t_end = sim.rundown(t_end, start=False)
    header = writer.close(t_end + 20)
    return run, writer, header, keep
