"""The simulated machine: processes, threads, loaded modules, registry keys and services.

Why a model of a machine rather than numbers drawn per event: the events the simulator writes
name process and thread ids, EPROCESS/KCB/SID addresses, image bases and return addresses, and
the reader, the correlator and the explainer must find them as consistent as Windows makes them:
one CID table for process and thread ids, modules placed top-down without overlap (kernel
modules upward from their base), every return address of a stack inside a module its process
loaded (:meth:`World.frames`), one KCB per key for the whole trace.  :class:`World` builds the
boot session (System, smss ... dwm, explorer, cmd and the elevated controller that logs the
rundowns), then client processes and svchost services on demand; :class:`Addr` places objects
and images for the logger's pointer size.  Every draw comes from the run's one seeded
``random.Random`` in a fixed order, so a seed gives the same machine.

Also here: the time units (QPC ticks of 100 ns), the CPU count and the trace's wall-clock start
(:func:`filetime`) that the simulator and the scenario builders share.
"""

from __future__ import annotations

import datetime as _dt
import random
import zlib
from typing import Any

from rpctrace.synth import catalog as C
from rpctrace.synth import payloads as P
from rpctrace.synth.emit import Image, Proc, Thread

US = 10  # QPC ticks (100 ns) per microsecond
MS = 10_000
INF = 1 << 62  # later than any event: a thread busy until further notice
CPUS = 4

STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034


def filetime(year: int, month: int, day: int, hour: int) -> int:
    """The FILETIME (100 ns since 1601, UTC) of an hour: where a trace's clock starts."""
    utc = _dt.timezone.utc
    delta = _dt.datetime(year, month, day, hour, tzinfo=utc) - _dt.datetime(1601, 1, 1, tzinfo=utc)
    return delta // _dt.timedelta(microseconds=1) * 10


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
