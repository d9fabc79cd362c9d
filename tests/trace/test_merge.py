"""One incident from several files: clock offset between an ETW trace and a Procmon log, and no
operation counted twice.

The ETW side is a trace written by rpctrace.synth (the audiosrv ACCESS DENIED scenario); the
Procmon side is built from it here, the way Procmon would have seen the same operations: its own
clock (shifted by a few seconds, with jitter), the desired access and the account ETW lacks, and
some operations ETW did not record.  A real Procmon log merged with a shifted copy of itself
checks the estimate on 28,000 real operations.
"""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import pytest

from rpctrace.correlate import correlate
from rpctrace.knowledge import providers as P
from rpctrace.model import Event
from rpctrace.knowledge.providers import PROCMON
from rpctrace.sources.pml import PmlReader
from rpctrace.synth import synthesize
from rpctrace.trace import load
from rpctrace.trace.merge import dedupe, estimate, estimate_offset, merge_sources, operation_key, shift

DATA = Path(__file__).resolve().parents[1] / "data"
SHIFT = 2 * 10_000_000 + 5_432_101  # Procmon's clock is 2.54 s behind ETW's here
DENIED_PATH = "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\MMDevices\\Audio\\Render\\{34bb9f66-ad6b-4d17-b74b-7aace4320530}"


def reg(ts, pid, tid, kind, path, status=0, provider=P.REGISTRY, **extra) -> Event:
    fields = {"path": path, "status": status, **extra}
    return Event(ts, pid, tid, None, provider, 0 if provider != PROCMON else 2, 0, 0, kind, fields)


def procmon_copy(ev: Event, offset: int, jitter: int = 0, **extra) -> Event:
    fields = {"operation": "RegOpenKey", "path": ev.fields["path"], "status": ev.fields["status"],
              "user": "NT AUTHORITY\\LOCAL SERVICE", **extra}
    if "value_name" in ev.fields:
        fields["value_name"] = ev.fields["value_name"]
    return Event(ev.ts - offset + jitter, ev.pid, ev.tid, None, PROCMON, 2, 0, 0, ev.kind, fields, (0x7FF1, 0x7FF2))


def _etw_side(seed=3) -> list[Event]:
    rnd = random.Random(seed)
    t = 133_000_000_000_000_000
    out = []
    for i in range(400):
        t += rnd.randrange(2_000, 40_000)
        tid = 10 + i % 4
        if i % 5 == 0:  # a thread polling the same value, over and over
            out.append(reg(t, 500, tid, "registry.query_value", "HKLM\\SOFTWARE\\Poll", value_name="Tick"))
        else:
            out.append(reg(t, 500, tid, "registry.open", f"HKLM\\SOFTWARE\\Key{i}", 0xC0000034 if i % 7 == 0 else 0))
    return out


def test_estimate_offset_and_dedupe_synthetic():
    etw = _etw_side()
    rnd = random.Random(9)
    pml = [procmon_copy(e, SHIFT, rnd.randrange(-300, 300), desired_access=0x20019) for e in etw]
    pml.append(reg(etw[100].ts - SHIFT + 50, 500, 11, "registry.open", "HKLM\\SOFTWARE\\OnlyProcmon", provider=PROCMON))
    pml.sort(key=lambda e: e.ts)
    offset, matches = estimate(etw, pml)
    assert abs(offset - SHIFT) <= 300 and matches >= 350
    assert estimate_offset(etw, pml) == offset
    merged = sorted(etw + shift(pml, offset), key=lambda e: e.ts)
    stats: dict = {}
    out = dedupe(merged, stats=stats)
    assert stats["duplicates"] == len(etw)
    assert len(out) == len(etw) + 1
    kept = [e for e in out if e.provider == P.REGISTRY]
    assert len(kept) == len(etw) and all(e.fields["desired_access"] == 0x20019 for e in kept)
    assert all(e.fields["merged_from"] == PROCMON and e.stack == (0x7FF1, 0x7FF2) for e in kept)
    # the polled value: every ETW record kept its own Procmon twin, none absorbed two
    polls = [e for e in out if e.fields.get("value_name") == "Tick"]
    assert len(polls) == 80 and all(e.provider == P.REGISTRY for e in polls)
    (only,) = [e for e in out if e.provider == PROCMON]
    assert only.fields["path"] == "HKLM\\SOFTWARE\\OnlyProcmon"
    assert abs(only.ts - (etw[100].ts + 50)) <= 300  # on the ETW clock now


def test_estimate_needs_common_operations():
    etw = _etw_side()
    other = [reg(e.ts, 999, 1, "registry.open", "HKLM\\ELSEWHERE", provider=PROCMON) for e in etw[:50]]
    assert estimate_offset(etw, other) == 0
    assert estimate_offset(etw, []) == 0
    # a different status is a different operation
    flipped = [procmon_copy(e, SHIFT)._replace(fields={"path": e.fields["path"], "status": 1}) for e in etw]
    assert dedupe(sorted(etw + shift(flipped, SHIFT), key=lambda e: e.ts)) == sorted(
        etw + shift(flipped, SHIFT), key=lambda e: e.ts)


def test_operation_keys_compare_across_sources():
    a = reg(1, 4, 8, "registry.open", "HKLM\\Software\\Classes\\CLSID\\{X}", nt_path="\\REGISTRY\\MACHINE\\Software\\Classes\\CLSID\\{X}")
    b = reg(1, 4, 8, "registry.open", "HKCR\\CLSID\\{x}", provider=PROCMON)
    assert operation_key(a) == operation_key(b)
    f1 = Event(1, 4, 8, None, P.FILE_IO, 0, 64, 2, "file.create", {"open_path": "\\Device\\HarddiskVolume3\\Windows\\win.ini", "status": 0})
    f2 = Event(1, 4, 8, None, PROCMON, 3, 20, 0, "file.create", {"path": "C:\\Windows\\WIN.INI", "status": 0})
    assert operation_key(f1) == operation_key(f2)
    assert operation_key(reg(1, None, 8, "registry.open", "HKLM\\X")) is None


class FakeSource:
    """A source the test builds: what a Procmon reader of the same capture would give."""

    def __init__(self, path, events):
        self.path = path
        self._events = events

        class Stats:
            def summary(self):
                return {"format": "pml", "records": len(events), "damage": []}

        self.stats = Stats()

    def events(self):
        yield from self._events

    def close(self):
        pass


@pytest.fixture(scope="module")
def etl(tmp_path_factory):
    path = tmp_path_factory.mktemp("merge") / "audiosrv.etl"
    synthesize("audiosrv-access-denied", path, seed=7)
    return path


def test_load_merges_etl_and_procmon(etl, monkeypatch):
    alone = load([etl])
    ops = [e for e in alone.events if e.kind in ("registry.open", "registry.query_value") and e.fields.get("path")]
    assert len(ops) > 20
    rnd = random.Random(5)
    side = [procmon_copy(e, SHIFT, rnd.randrange(-200, 200), desired_access=0x20019,
                         desired_access_names=["KEY_READ"]) for e in ops]
    extra = [reg(ops[0].ts - SHIFT + 10, ops[0].pid, ops[0].tid, "registry.open", "HKLM\\SOFTWARE\\ProcmonOnly",
                 provider=PROCMON)]
    side = sorted(side + extra, key=lambda e: e.ts)

    import rpctrace.trace as trace_mod

    real = trace_mod.open_source
    monkeypatch.setattr(trace_mod, "open_source",
                        lambda p, keep_going=False: FakeSource(str(p), side) if str(p).endswith(".fakepml") else real(p, keep_going))
    trace = load([etl, "capture.fakepml"])
    info = trace.sources[1]
    assert abs(info["clock_offset"] - SHIFT) <= 200 and info["matched_operations"] >= len(ops) - 2
    assert info["duplicates_dropped"] == len(ops)
    assert trace.sources[0]["clock_offset"] == 0
    assert len(trace.events) == len(alone.events) + len(extra)  # nothing counted twice
    denied = [e for e in trace.events if e.kind == "registry.open" and e.fields.get("status") == 0xC0000022
              and e.fields.get("path") == DENIED_PATH]
    assert len(denied) == 1
    (ev,) = denied
    assert ev.provider == P.REGISTRY and ev.fields["desired_access"] == 0x20019  # ETW's record, Procmon's access
    assert ev.fields["user"] == "NT AUTHORITY\\LOCAL SERVICE" and ev.fields["merged_from"] == PROCMON
    # correlation sees the merged event inside the call it failed in
    calls = [c for c in correlate(trace).calls if c.opnum == 71]
    assert len(calls) == 1
    (failure,) = [op for op in calls[0].failures if op.fields.get("status") == 0xC0000022]
    assert failure.fields["desired_access"] == 0x20019
    assert any(e.fields.get("path") == "HKLM\\SOFTWARE\\ProcmonOnly" for e in trace.events)


def test_real_procmon_log_against_shifted_copy(tmp_path):
    path = tmp_path / "reg.pml"
    path.write_bytes(zlib.decompress((DATA / "CompressedLogFileUTC64RegistryPML").read_bytes()))
    with PmlReader(path) as reader:
        pml = list(reader.events())
    delta = 7_500_123
    # the same operations as an ETW trace would give them: another provider, another clock
    etw = [e._replace(ts=e.ts + delta, provider=P.REGISTRY, stack=None,
                      fields={k: e.fields[k] for k in ("path", "value_name", "status") if k in e.fields})
           for e in pml if e.kind.startswith("registry.")]
    infos = [{"path": "etw"}, {"path": "pml"}]
    out = merge_sources([etw, pml], infos)
    assert infos[1]["clock_offset"] == delta
    assert infos[1]["duplicates_dropped"] == len(etw)
    assert len(out) == len(pml)
    assert all(e.provider == P.REGISTRY for e in out)
    assert sum(1 for e in out if "desired_access" in e.fields) == sum(1 for e in pml if "desired_access" in e.fields)


def test_dispatch_failures_from_etw_stacks(etl):
    """The same stack rule on an ETW trace: frames resolved through the trace's image tables."""
    from rpctrace.explain.dispatch import rpc_dispatch_failures

    denied = [r for r in rpc_dispatch_failures(load([etl])) if r["status"] == 0xC0000022]
    assert len(denied) == 1
    (r,) = denied
    assert r["image"] == "svchost.exe" and r["path"] == DENIED_PATH and r["source"] == "etw"
    assert r["dispatch_entry"].startswith("audiosrv+") and r["dispatch_frames"][0].startswith("RPCRT4+")
    assert r["service_group"] == "LocalServiceNetworkRestricted"
