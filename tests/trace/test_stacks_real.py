"""Stacks on a real trace with stack caching: net.4.5.2.x64.etl (PerfView, Windows 8 x64).

Its stacks are given as StackWalk key references (2,061 kernel, 7,046 user) and 2,921 key
definitions, with keys deleted and reused (646 keys are defined more than once, each time with
other frames), and with deferred user parts.  The resolution the test checks against is computed
here, from the decoded records, by a different method than rpctrace's (index scans forward over
the record list instead of tables of pending references), and the frames are judged kernel or
user by the trace's own image tables, not by an address boundary.
"""

from __future__ import annotations

import bisect
import io
import json
from collections import defaultdict
from contextlib import redirect_stdout

import pytest

from rpctrace.cli import main
from rpctrace.model import iso_to_ticks
from rpctrace.sources import open_source
from rpctrace.trace import load
from rpctrace.trace.stream import TraceStream

NET = "net.4.5.2.x64.etl"
KERNEL_ONLY = {0, 4}


@pytest.fixture(scope="module")
def net(samples):
    return load([samples[NET]])


def _image_modes(trace):
    """address -> "kernel"/"user" from the trace's image tables (kernel modules are pid 0's)."""

    def mode(pid, address):
        for owner, name in ((0, "kernel"), (pid, "user")):
            for img in trace.images.get(owner) or ():
                if img.base <= address < img.base + img.size:
                    return name
        return None

    return mode


def _independent(events):
    """(event ts, tid) -> (kernel frames, user frames), from the records, by forward scans."""
    records = [e for e in events if e.kind in ("stack", "stack_key")]
    top = 0x8000000000000000
    # definitions per (key, mode), as record positions
    defs: dict[tuple[int, str], list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        if r.kind == "stack_key" and r.opcode in (35, 36) and r.fields["frames"]:
            mode = "kernel" if r.fields["frames"][-1] >= top else "user"
            defs[(r.fields["key"], mode)].append(i)

    def resolve(i, key, mode):
        positions = defs.get((key, mode), [])
        j = bisect.bisect_right(positions, i)
        return list(records[positions[j]].fields["frames"]) if j < len(positions) else None

    # every record's part: (position, event key, thread, pid, "kernel"/"user", frames)
    parts = []
    for i, r in enumerate(records):
        if r.kind != "stack":
            continue
        f = r.fields
        ev = (f["event_ts"], f["stack_tid"])
        if "key" in f:
            parts.append((i, ev, f["stack_tid"], f["stack_pid"], f["part"], resolve(i, f["key"], f["part"])))
            continue
        fr = list(f["frames"])
        if not fr:
            continue
        if fr[-1] >= top:
            parts.append((i, ev, f["stack_tid"], f["stack_pid"], "kernel", fr))
        elif fr[0] < top:
            parts.append((i, ev, f["stack_tid"], f["stack_pid"], "user", fr))
        else:
            n = next(k for k, a in enumerate(fr) if a < top)
            parts.append((i, ev, f["stack_tid"], f["stack_pid"], "both", (fr[:n], fr[n:])))
    users_by_thread: dict[int, list[tuple[int, list | None]]] = defaultdict(list)
    for i, _ev, tid, _pid, mode, frames in parts:
        if mode == "user":
            users_by_thread[tid].append((i, frames))
    result: dict[tuple, list] = {}
    for i, ev, tid, pid, mode, frames in parts:
        slot = result.setdefault(ev, [None, None])
        if mode == "kernel":
            if slot[0] is not None:
                continue
            slot[0] = frames if frames is not None else "unresolved"
            if pid not in KERNEL_ONLY and slot[1] is None:
                # its user part: the first user part the thread logs from now on
                later = users_by_thread[tid]
                j = bisect.bisect_right([p for p, _ in later], i)
                if j < len(later):
                    slot[1] = later[j][1] if later[j][1] is not None else "unresolved"
        elif mode == "user":
            if slot[1] is None:
                slot[1] = frames if frames is not None else "unresolved"
        else:
            slot[0] = slot[0] if slot[0] is not None else frames[0]
            slot[1] = slot[1] if slot[1] is not None else frames[1]
    out = {}
    for ev, (k, u) in result.items():
        k = k if isinstance(k, list) else []
        u = u if isinstance(u, list) else []
        if k or u:
            out[ev] = (k, u)
    return out


def test_no_stack_part_of_the_wrong_mode(net):
    mode = _image_modes(net)
    stacked = [e for e in net.events if e.stack is not None and e.kind not in ("stack", "stack_key") and e.id == 0]
    assert len(stacked) > 7000
    checked = 0
    for e in stacked:
        kernel, user = e.stack.kernel, e.stack.user
        assert all(mode(e.pid, a) != "user" for a in kernel), (e.ts, e.tid)
        if user:
            # a user part starts and ends in user mode; kernel frames inside it are user-mode
            # callbacks (the thread went back to user mode from the kernel), kept as they are
            assert mode(e.pid, user[0]) != "kernel" and mode(e.pid, user[-1]) != "kernel", (e.ts, e.tid)
        checked += sum(mode(e.pid, a) is not None for a in e.stack)
    assert checked > 100_000  # the image tables resolved most frames, so the check means something
    # the rule rpctrace used before (a key's first definition anywhere in the trace) fails this
    first: dict[int, list[int]] = {}
    for r in net.events:
        if r.kind == "stack_key":
            first.setdefault(r.fields["key"], r.fields["frames"])
    wrong = sum(1 for r in net.events if r.kind == "stack" and r.fields.get("part") == "kernel"
                and any(mode(r.fields["stack_pid"], a) == "user" for a in first.get(r.fields["key"], ())))
    assert wrong > 100


def test_deferred_user_parts_are_joined(net):
    by = {(e.ts, e.tid): e for e in net.events if e.kind not in ("stack", "stack_key")}
    sym = net.symbolize
    # csrss.exe (pid 624) thread 996: a sample in the kernel; the user part of that stay in the
    # kernel is a Stack record logged 12.27 ms later, when the thread returned to user mode, and
    # it belongs to the two other events the thread logged meanwhile too
    stay = [132404548233623393, 132404548233624173, 132404548233745907]
    for ts in stay:
        e = by[(ts, 996)]
        assert e.pid == 624 and e.stack.kernel
        assert [sym(624, a) for a in e.stack.user] == ["ntdll+0x343b", "csrsrv+0x4b91", "ntdll+0x422d6"]
    assert by[(stay[0], 996)].kind == "sample"
    # dwm.exe (pid 980) thread 1016: a user-mode sample whose user part (a StackKeyUser reference)
    # comes 4.5 ms later; the kernel events of that stay share it
    sample = by[(132404548221591909, 1016)]
    assert sample.kind == "sample" and not sample.stack.kernel and sample.stack.user
    later = by[(132404548221636361, 1016)]
    assert later.stack.kernel and later.stack.user == sample.stack.user


def test_events_output_equals_an_independent_resolution(net, samples):
    want = _independent(net.events)
    assert len(want) > 7000
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["events", str(samples[NET]), "--format", "jsonl"]) == 0
    loaded_names = {img.module for images in net.images.values() for img in images}
    seen = set()
    for line in out.getvalue().splitlines():
        rec = json.loads(line)
        if "stack_addresses" not in rec or rec["kind"] in ("stack", "stack_key"):
            continue
        if rec["id"] != 0:
            continue  # manifest events bring their stack in an extended data item
        key = (iso_to_ticks(rec["ts"]), rec["tid"])
        kernel, user = want[key]
        assert [int(a, 16) for a in rec["stack_addresses"]] == kernel + user
        assert len(rec["stack_kernel"]) == len(kernel) and len(rec["stack_user"]) == len(user)
        assert rec["stack"] == rec["stack_kernel"] + rec["stack_user"]
        for frame in rec["stack"]:
            if "+0x" in frame:  # module names as the images were loaded (case kept)
                assert frame.split("+0x")[0] in loaded_names
        seen.add(key)
    assert len(seen) > 7000


def test_streamed_path_gives_the_same_stacks(net, samples):
    """``calls``/``tree``/``explain`` read through TraceStream; asked for every event's stack,
    it must give what the whole-trace path gives."""
    whole = {(e.ts, e.tid, e.kind, e.opcode): e.stack for e in net.events if e.kind not in ("stack", "stack_key")}
    stream = TraceStream(open_source(samples[NET]), want_stack=lambda ev: ev.kind not in ("stack", "stack_key"))
    kept = []
    for batch in stream.batches():
        kept.extend(e for e in batch if e.kind not in ("stack", "stack_key"))
    stream.complete(kept)
    stream.close()
    compared = 0
    for e in kept:
        w = whole[(e.ts, e.tid, e.kind, e.opcode)]
        assert (w is None) == (e.stack is None)
        if w is not None:
            assert tuple(e.stack) == tuple(w) and e.stack.kernel_frames == w.kernel_frames
            compared += 1
    assert compared > 8000
