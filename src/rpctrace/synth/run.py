"""One scenario run: its plan and the background traffic around its story.

The :class:`Plan` holds the knobs a run uses (the scenario's defaults after the CLI's
``--clients``/``--calls``/``--events``); :class:`Run` holds the world, the simulator and the
story items, and makes the traffic a real trace is full of: which client programs call which
servers, arrivals at the plan's rate with backpressure (so the writer's pending window stays
small at 10 million events), ALPC exchanges with csrss's and lsass's ports, registry reads
outside any call, and padding up to an exact record count.  The story items
(:mod:`rpctrace.synth.stories`) run at their times inside :meth:`Run.background`.

Why its own module: the stories use a ``Run`` and the scenario registry
(:mod:`rpctrace.synth.scenarios`) uses both; with ``Run`` here the imports go one way
(scenarios -> stories -> run -> simulate -> world), never round.
"""

from __future__ import annotations

from typing import Callable

from rpctrace.synth import catalog as C
from rpctrace.synth import payloads as P
from rpctrace.synth.emit import Proc
from rpctrace.synth.simulate import CallRec, Sim
from rpctrace.synth.world import MS, NoisePort, RegOp, Server, World

#: Background calls never use these (they belong to a scenario's story).
STORY_ONLY = {(C.AUDIO_IF, 71)}
#: The Audiosrv notification interface takes one-way calls only.
DATAGRAM_IFS = {C.AUDIO_NOTIFY_IF}


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
                        if (iface, opnum) in STORY_ONLY:
                            continue
                        if iface in DATAGRAM_IFS:
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
