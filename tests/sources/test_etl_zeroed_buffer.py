"""A zeroed buffer header: the end of a preallocated file when only zeros follow it, damage when
buffers follow it (found by the index benchmark: the reader stopped there without a word)."""

from __future__ import annotations

import struct

import pytest

from rpctrace import synth
from rpctrace.errors import InputError
from rpctrace.sources.etl.reader import EtlReader


def _trace(tmp_path):
    path = tmp_path / "t.etl"
    synth.synthesize("lost-events", path, seed=3, calls=8)  # 8 KiB buffers
    data = bytearray(path.read_bytes())
    stride = struct.unpack_from("<I", data, 0)[0]
    return path, data, stride


def _read(path) -> list:
    with EtlReader(path) as reader:
        return list(reader.events())


def test_zeroed_tail_is_the_end(tmp_path):
    path, data, stride = _trace(tmp_path)
    whole = len(_read(path))
    path.write_bytes(bytes(data) + bytes(4 * stride))  # a preallocated file, not filled
    assert len(_read(path)) == whole


def test_zeroed_header_with_buffers_after_it_is_damage(tmp_path):
    path, data, stride = _trace(tmp_path)
    at = 4 * stride
    data[at:at + 0x48] = bytes(0x48)
    path.write_bytes(bytes(data))
    with EtlReader(path) as reader:
        events = []
        with pytest.raises(InputError) as info:
            for ev in reader.events():
                events.append(ev)
    assert info.value.offset == at and "zeroed header" in info.value.message
    assert events  # what came before the damage is still delivered
