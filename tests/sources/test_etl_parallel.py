"""Decoding in worker processes gives exactly what decoding here gives, and the fast paths of the
record loop give exactly what the reference decoders give."""

from __future__ import annotations

import struct

import pytest

from rpctrace.knowledge import providers as P
from rpctrace.sources.etl import kernel, parallel
from rpctrace.sources.etl.reader import EtlReader
from rpctrace.synth import synthesize


def _read(path, workers):
    with EtlReader(path) as reader:
        events = [ev for batch in reader.batches(workers=workers) for ev in batch]
        return events, reader.stats.summary()


@pytest.mark.parametrize("name", ["net.4.5.2.x64.etl", "diaghub.etl", "lxcore_kernel.etl"])
def test_workers_decode_like_this_process(samples, name, monkeypatch):
    monkeypatch.setattr(parallel, "PARALLEL_MIN_DECODE_BUFFERS", 2)
    monkeypatch.setattr("rpctrace.sources.etl.reader.PARALLEL_MIN_DECODE_BUFFERS", 2)
    here, here_stats = _read(samples[name], 1)
    there, there_stats = _read(samples[name], 2)
    assert len(here) > 0
    assert there == here
    assert there_stats == here_stats


@pytest.mark.parametrize("scenario", ["busy-server", "lost-events"])
def test_workers_on_writer_traces(tmp_path, scenario, monkeypatch):
    monkeypatch.setattr("rpctrace.sources.etl.reader.PARALLEL_MIN_DECODE_BUFFERS", 2)
    path = tmp_path / "t.etl"
    synthesize(scenario, str(path), None, seed=7, clients=8, calls=300)
    here, _ = _read(path, 1)
    there, _ = _read(path, 2)
    assert there == here
    # the merge keeps time order
    assert all(a.ts <= b.ts for a, b in zip(there, there[1:]))


def test_events_and_batches_agree(samples):
    path = samples["net.4.5.2.x64.etl"]
    with EtlReader(path) as reader:
        one = list(reader.events())
    with EtlReader(path) as reader:
        many = [ev for batch in reader.batches(workers=1) for ev in batch]
    assert one == many


@pytest.mark.parametrize("key", sorted(kernel.SIMPLE))
@pytest.mark.parametrize("ptr", [4, 8])
def test_simple_layouts_match_their_decoders(key, ptr):
    provider, opcode = key
    kind, st, name = kernel.SIMPLE[key]
    decoder = kernel.DECODERS[provider]
    for version in (0, 1, 2):
        for value in (0, 1, 0x1234, 0xFFFFFFFF):
            payload = st.pack(value) + b"\x00" * 8
            got_kind, fields, pid, tid = decoder(payload, 0, len(payload), ptr, version, opcode)
            assert (got_kind, fields) == (kind, {name: value})
            assert pid == tid == kernel.FROM_HEADER
    # a payload shorter than the field is the decoder's business (PayloadError -> raw)
    with pytest.raises(kernel.PayloadError):
        decoder(b"\x00" * (st.size - 1), 0, st.size - 1, ptr, 0, opcode)
    assert provider == P.ALPC and isinstance(st, struct.Struct)


def test_workers_send_stacks_back_without_falling_back(samples, monkeypatch):
    """Events with a stack (CLR events' STACK_TRACE64 items) come back from the workers with
    their kernel/user split, and no buffer had to be decoded here instead."""
    monkeypatch.setattr("rpctrace.sources.etl.reader.PARALLEL_MIN_DECODE_BUFFERS", 2)
    fallbacks = []
    start = parallel.DecodePool.start.__func__

    def counting_start(cls, path, size, decoder, workers, fallback):
        def counted(job):
            fallbacks.append(job)
            return fallback(job)
        return start(cls, path, size, decoder, workers, counted)

    monkeypatch.setattr(parallel.DecodePool, "start", classmethod(counting_start))
    here, _ = _read(samples["net.4.5.2.x64.etl"], 1)
    there, _ = _read(samples["net.4.5.2.x64.etl"], 2)
    assert fallbacks == []
    stacked = [(a, b) for a, b in zip(here, there) if a.stack is not None]
    assert len(stacked) > 100
    assert all(a.stack.kernel_frames == b.stack.kernel_frames and a.stack == b.stack for a, b in stacked)
