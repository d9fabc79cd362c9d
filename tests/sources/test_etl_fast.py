"""The C record loop (rpctrace.sources.etl._fastrecords) gives exactly the events of the Python
loop: on every real sample, on writer traces of every scenario (64 and 32 bit, compressed), and
on buffers damaged at random (same events, same damage, never a crash)."""

from __future__ import annotations

import random

import pytest

from conftest import ETL_SAMPLES
from rpctrace.sources.etl import records
from rpctrace.sources.etl.container import read_buffer
from rpctrace.sources.etl.reader import EtlReader
from rpctrace.synth import SCENARIOS, synthesize

pytestmark = pytest.mark.skipif(records._fastrecords is None, reason="the C record loop was not built (no compiler)")


def _buffers(path):
    """(decoder, [(data, cpu, skip)]) for every buffer of a trace, decompressed."""
    with EtlReader(path) as reader:
        slots = reader._index()
        decoder = records.BufferDecoder(reader.pointer_size, reader.clock, reader.header.raw_ts)
        out = []
        for slot in slots:
            buf = slot.buffer or read_buffer(reader._view, slot.offset, slot.index, reader.size)
            out.append((bytes(buf.data), slot.cpu, 1 if slot.index == 0 else 0))
        return decoder, out


def _same(decoder, data, cpu, skip):
    fast = decoder.decode(data, cpu, skip)
    slow = decoder.decode_python(data, cpu, skip)
    assert fast[0] == slow[0]
    assert fast[1] == slow[1]
    assert fast[2] == slow[2]
    assert fast[3].as_tuple() == slow[3].as_tuple()
    # dict order is part of the contract (JSON output)
    assert [list(e.fields) for e in fast[1]] == [list(e.fields) for e in slow[1]]
    return len(fast[1])


@pytest.mark.parametrize("name", ETL_SAMPLES)
def test_real_samples(samples, name):
    decoder, buffers = _buffers(samples[name])
    assert sum(_same(decoder, *b) for b in buffers) > 0


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("x86", [False, True])
def test_writer_traces(tmp_path, scenario, x86):
    path = tmp_path / "t.etl"
    synthesize(scenario, str(path), None, seed=11, pointer_size=4 if x86 else 8, compress=x86)
    decoder, buffers = _buffers(path)
    kinds = set()
    for data, cpu, skip in buffers:
        _same(decoder, data, cpu, skip)
        kinds.update(e.kind for e in decoder.decode(data, cpu, skip)[1])
    assert {"alpc.send", "alpc.wait_new", "rpc.client_start"} <= kinds


def test_skipping_stacks(tmp_path):
    """A consumer that shows no stacks gets every other event, the same from both loops."""
    path = tmp_path / "t.etl"
    synthesize("audiosrv-access-denied", str(path), None, seed=3)
    decoder, buffers = _buffers(path)
    skipping = records.BufferDecoder(decoder.ptr, decoder.clock, decoder.header_raw_ts, skip_stacks=True)
    for data, cpu, skip in buffers:
        _same(skipping, data, cpu, skip)
        every = [e for e in decoder.decode(data, cpu, skip)[1] if e.kind != "stack"]
        assert skipping.decode(data, cpu, skip)[1] == every


def test_damaged_buffers(tmp_path):
    """Byte flips, truncations and overwritten sizes: the same events and damage, no crash."""
    path = tmp_path / "t.etl"
    synthesize("lost-events", str(path), None, seed=5, calls=200)
    decoder, buffers = _buffers(path)
    rng = random.Random(1)
    for _ in range(400):
        data, cpu, skip = buffers[rng.randrange(len(buffers))]
        data = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(data))
            if rng.random() < 0.3:
                data[at : at + 2] = rng.choice([b"\xff\xff", b"\x00\x00", b"\x01\x00", b"\x50\x00"])
            else:
                data[at] = rng.randrange(256)
        if rng.random() < 0.3:
            del data[rng.randrange(len(data)) :]
        _same(decoder, bytes(data), cpu, skip)


def test_xpress_matches_python(samples):
    """C decompression: the Python decoder's bytes for every compressed sample buffer and writer
    stream, and None (so the Python decoder names the damage) wherever Python refuses."""
    from rpctrace.sources.etl._fastrecords import xpress
    from rpctrace.sources.etl.container import read_buffer
    from rpctrace.sources.etl.xpress import XpressError, decompress
    from rpctrace.synth.xpress import compress

    streams = []
    with EtlReader(samples["net.4.5.2.x64.etl"]) as reader:
        offset, index = 0, 0
        while offset + 0x48 <= reader.size and index < 60:
            buf = read_buffer(reader._view, offset, index, reader.size, inflate=False)
            if buf.compressed:
                streams.append((bytes(buf.data), buf.inflated_size))
            offset += buf.size
            index += 1
    rng = random.Random(3)
    for _ in range(40):
        plain = bytes(rng.choice(b"abc\x00\xff") for _ in range(rng.randrange(1, 5000)))
        streams.append((compress(plain), len(plain)))
    assert len(streams) > 60
    for stream, size in list(streams):
        for variant in range(6):
            data = bytearray(stream)
            if variant:
                for _ in range(variant):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                if variant > 3:
                    del data[rng.randrange(len(data)):]
            try:
                expected = decompress(bytes(data), size)
            except XpressError:
                expected = None
            assert xpress(bytes(data), size) == expected


def test_contexts_the_c_loop_refuses_fall_back_to_python(tmp_path):
    """Pointer sizes other than 4/8 and a zero clock divisor are refused by the C loop (the
    reader never passes them); decode() then runs the Python loop, so results still agree."""
    path = tmp_path / "t.etl"
    synthesize("audiosrv-access-denied", str(path), None, seed=4)
    decoder, buffers = _buffers(path)
    odd = records.BufferDecoder(2, decoder.clock, decoder.header_raw_ts)
    data, cpu, skip = buffers[1]
    assert odd.decode(data, cpu, skip)[1] == odd.decode_python(data, cpu, skip)[1]


def test_xpress_output_limit_is_not_an_allocation():
    from rpctrace.sources.etl._fastrecords import xpress
    from rpctrace.sources.etl.xpress import decompress
    from rpctrace.synth.xpress import compress

    plain = b"rpctrace " * 1000
    stream = compress(plain)
    assert xpress(stream, 1 << 40) == decompress(stream, 1 << 40) == plain
