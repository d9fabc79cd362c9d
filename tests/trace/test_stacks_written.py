"""Stacks the writer logs the ways Windows does, read back: a property test.

The writer (``rpctrace.synth``) logs an event's stack as one Stack record, as two parts, as
references to a stack cache whose keys are evicted, defined after their references and reused
(with the same key live in the kernel and the user cache at once), and with the user part
deferred to the thread's return to user mode, shared by every event of that stay in the kernel.
Whatever the mix, every event must come back with exactly its kernel part and its user part,
through the whole-trace path and through the streamed one.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpctrace.sources import open_source
from rpctrace.synth import payloads as P
from rpctrace.synth import synthesize
from rpctrace.synth.emit import Proc, Thread, Trace
from rpctrace.synth.etlfile import Clock, EtlWriter
from rpctrace.trace import load
from rpctrace.trace.stream import TraceStream

KERNEL64 = [0xFFFFF80312340000 + 0x1000 * i + 0x10 for i in range(6)]
USER64 = [0x7FFB00010000 + 0x1000 * i + 0x20 for i in range(6)]
KERNEL32 = [0x81200000 + 0x1000 * i + 0x10 for i in range(6)]
USER32 = [0x77A00000 + 0x1000 * i + 0x20 for i in range(6)]


def _frames(pool, min_size=1):
    return st.lists(st.sampled_from(pool), min_size=min_size, max_size=4)


@st.composite
def traces(draw):
    """(pointer size, cache slots or 0, per thread: list of stays); a stay is
    (deferred, user part, [kernel parts of its events]); a user-mode event has no kernel part."""
    ptr = draw(st.sampled_from([8, 4]))
    kpool, upool = (KERNEL64, USER64) if ptr == 8 else (KERNEL32, USER32)
    # a user part may hold a kernel segment between user frames (a user-mode callback)
    user = st.one_of(_frames(upool), st.tuples(_frames(upool), _frames(kpool), _frames(upool)).map(
        lambda t: t[0] + t[1] + t[2]))
    stay = st.tuples(st.booleans(), user, st.lists(_frames(kpool, 0), min_size=1, max_size=3))
    threads = draw(st.lists(st.lists(stay, min_size=1, max_size=5), min_size=1, max_size=3))
    slots = draw(st.sampled_from([0, 1, 2, 3, 8]))
    return ptr, slots, threads


def _write(path, ptr, slots, threads):
    """Write the trace; return {(event qpc, tid): (kernel, user)} as the events must come back."""
    clock = Clock(132000000000000000, 5_000_000)
    writer = EtlWriter(path, clock=clock, pointer_size=ptr, cpus=2, buffer_size=0x1000)
    tr = Trace(writer, track=False, keep_events=False)
    if slots:
        tr.enable_stack_cache(slots)
    want = {}
    for n, stays in enumerate(threads):
        proc = Proc(1000 + n, 4, "app.exe", "app.exe", "S-1-5-18", 1)
        th = Thread(2000 + n, proc, n % 2)
        t = clock.header_qpc + 100 + 7 * n
        for deferred, user, kernels in stays:
            ret = t + 10 * (len(kernels) + 1)
            for kernel in kernels:
                if not kernel and deferred:
                    kernel = [KERNEL64[0] if ptr == 8 else KERNEL32[0]]
                tr.registry(th, t, P.REG_OPEN, 0, 0, 0, 0x1000, "Key", None)
                tr.stack(th, t, list(kernel) + list(user), None, None, None, user_at=ret if deferred else None)
                want[(t, th.tid)] = (tuple(kernel), tuple(user))
                t += 10
            t = ret + 5
    writer.close(max(t for t, _ in want) + 100)
    return {(clock.filetime(t), tid): parts for (t, tid), parts in want.items()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(traces())
def test_every_event_gets_its_two_parts(tmp_path, case):
    ptr, slots, threads = case
    path = tmp_path / f"s{ptr}.etl"
    want = _write(path, ptr, slots, threads)
    trace = load([path])
    assert trace.error is None
    got = {(e.ts, e.tid): e.stack for e in trace.events if e.kind.startswith("registry.")}
    assert set(got) == set(want)
    for key, (kernel, user) in want.items():
        assert got[key] is not None and (got[key].kernel, got[key].user) == (kernel, user), key
    # the streamed path (calls, tree, explain) puts them together the same way
    stream = TraceStream(open_source(path), want_stack=lambda ev: ev.kind.startswith("registry."))
    kept = [e for b in stream.batches() for e in b if e.kind.startswith("registry.")]
    stream.complete(kept)
    stream.close()
    assert {(e.ts, e.tid): (e.stack.kernel, e.stack.user) for e in kept} == want


def test_a_scenario_with_stack_caching_explains_with_the_right_stack(tmp_path, capsys):
    """End to end through ``explain`` (the streamed path): the failing open's stack is the one
    the writer logged, in parts, as cache references, some with deferred user parts."""
    from rpctrace.cli import main

    etl, truth_path = tmp_path / "a.etl", tmp_path / "a.json"
    synthesize("audiosrv-access-denied", etl, truth_path, seed=5, calls=200, stack_cache=4)
    truth = json.loads(truth_path.read_text())
    kinds = {(e["kind"], e["opcode"]) for e in truth["events"]}
    assert {("stack", 37), ("stack", 38), ("stack_key", 35), ("stack_key", 36)} <= kinds
    assert ("stack", 32) not in kinds
    keys = [e["fields"]["key"] for e in truth["events"] if e["kind"] == "stack_key"]
    assert len(keys) > len(set(keys)), "keys are reused"
    assert main(["explain", str(etl), "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    got = found[0]["failure"]
    failure = next(f for c in truth["calls"] for f in c["failures"] if (f["tid"], f["ts"]) == (got["tid"], got["ts"]))
    assert [int(a, 16) for a in got["stack_addresses"]] == failure["frames"]
    kernel = [a for a in failure["frames"] if a >= 0x8000000000000000]
    assert len(got["stack_kernel"]) == len(kernel) and got["stack"] == got["stack_kernel"] + got["stack_user"]
