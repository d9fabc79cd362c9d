"""The scenario registry: which scenarios exist, their defaults and stories, and the builder.

:data:`SCENARIOS` names each scenario with the sentence ``rpctrace synth`` shows; ``_DEFAULTS``
gives its services, client processes, calls and mean gap between calls; :data:`STORIES` the
storylines it tells (:mod:`rpctrace.synth.stories`).  :func:`generate` builds one: the machine
(:mod:`rpctrace.synth.world`), the logger (:class:`~rpctrace.synth.etlfile.EtlWriter`, and which
buffers it loses for lost-events), the simulator (:mod:`rpctrace.synth.simulate`) and the run
(:mod:`rpctrace.synth.run`), in an order that fixes every random draw: the same arguments give
the same bytes.

Why the registry is apart from the simulation: adding or tuning a scenario is a change here (and
perhaps a story), never in the machinery that makes the events.
"""

from __future__ import annotations

import random
from typing import Callable

from rpctrace.synth import stories as S
from rpctrace.synth.emit import Trace
from rpctrace.synth.run import Plan, Run
from rpctrace.synth.simulate import Sim
from rpctrace.synth.world import CPUS, INF, MS, US, World, filetime

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

EVENTS_PER_CALL = 14  # a typical background call, for sizing estimates


def make_plan(name: str, clients: int | None, calls: int | None, events: int | None) -> Plan:
    """The scenario's defaults, with the CLI's numbers where given (``events`` sets the calls)."""
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


#: The storylines each scenario tells, in order (each at its own place in the run).
STORIES: dict[str, list[Callable[[Run, float], None]]] = {
    "audiosrv-access-denied": [S.audiosrv_access_denied],
    "busy-server": [S.short_lived],
    "nested": [S.nested],
    "lost-events": [S.short_lived],
    "async": [],
}


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
    start_ft = filetime(2019, 4, 15, 9) + rng.randrange(0, 3600) * 10**7 + rng.randrange(10**7)
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
