"""Inputs found by benchmarks/fuzz.py that made a reader crash or hang, kept small and hand-made.

Each test names the fuzz finding it reproduces; the fix is in the reader, and valid input reads
as before.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rpctrace.errors import InputError
from rpctrace.sources.eventxml import EventXmlReader
from rpctrace.sources.evtx import CHUNK_SIZE, FILE_HEADER_BLOCK, looping_table

ROOT = Path(__file__).resolve().parents[2]
EVTX_DIR = (ROOT / ".." / "shared" / "samples" / "evtx").resolve()


# ------------------------------------------------------------------------------ event XML


@pytest.mark.parametrize("text, later", [
    # an <Event> without <System> is finished, then the XML breaks in the same chunk of text
    ("<Events><Event></Event></x>", "not well-formed XML"),
    # ... then rpctrace refuses what follows (nesting) in the same chunk
    ("<Events><Event></Event><Event>" + "<a>" * 70 + "</a>" * 70 + "</Event></Events>", "nested deeper"),
])
def test_xml_unusable_event_before_a_parse_error(tmp_path, text, later):
    """Fuzz finding (xml): XmlRefused escaped from EventXmlReader._parse when an unusable event
    had been finished before a parse error (it was drained again inside the error handler)."""
    path = tmp_path / "broken.xml"
    path.write_text(text)
    with pytest.raises(InputError, match="has no <System>") as info:
        list(EventXmlReader(path).events())
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    reader = EventXmlReader(path, keep_going=True)
    assert list(reader.events()) == []
    damage = [d.one_line() for d in reader.stats.damage]
    assert any("has no <System>" in d for d in damage) and any(later in d for d in damage)


# ------------------------------------------------------------------------------ EVTX


def _chunk_with_string_list(links: list[tuple[int, int]]) -> bytes:
    """A 64 KiB chunk: ElfChnk header, string table head 0 -> links[0], each entry's next link."""
    chunk = bytearray(CHUNK_SIZE)
    chunk[:8] = b"ElfChnk\x00"
    struct.pack_into("<I", chunk, 0x80, links[0][0])
    for at, nxt in links:
        struct.pack_into("<I", chunk, at, nxt)
    return bytes(chunk)


def test_looping_string_and_template_lists_are_found():
    assert looping_table(_chunk_with_string_list([(0x300, 0x340), (0x340, 0)])) is None
    assert looping_table(_chunk_with_string_list([(0x300, 0x300)])) == ("string", 0x80)  # points at itself
    assert looping_table(_chunk_with_string_list([(0x300, 0x340), (0x340, 0x300)])) == ("string", 0x80)
    chunk = bytearray(_chunk_with_string_list([(0x300, 0)]))
    struct.pack_into("<I", chunk, 0x180 + 4 * 31, 0x400)  # the last template head
    struct.pack_into("<I", chunk, 0x400, 0x400)
    assert looping_table(bytes(chunk)) == ("template", 0x180 + 4 * 31)
    # a list running off the end of the chunk ends there (the package reports that itself)
    assert looping_table(_chunk_with_string_list([(0x300, 0xFFFFFFF0)])) is None


_READ_BOTH_MODES = textwrap.dedent("""
    import sys
    from rpctrace.errors import InputError
    from rpctrace.sources.evtx import EvtxReader
    try:
        list(EvtxReader(sys.argv[1]).events())
        print("strict: no error")
    except InputError as exc:
        print("strict:", exc)
    reader = EvtxReader(sys.argv[1], keep_going=True)
    print("keep_going:", len(list(reader.events())), "events;", "; ".join(d.one_line() for d in reader.stats.damage))
""")


def test_evtx_string_list_that_loops_does_not_hang(tmp_path):
    """Fuzz finding (evtx): one u32 of a chunk's string table (0x7f at 0x10ac) made the evtx package
    spin forever: it follows the string and template lists without a bound, and two entries
    linking to each other loop.  The reader now finds the loop,
    reports it, and has the package read that chunk without its tables."""
    samples = sorted(EVTX_DIR.glob("*.evtx")) if EVTX_DIR.is_dir() else []
    if not samples:
        pytest.skip("../shared/samples/evtx is not here (GPL-3.0 samples are never copied)")
    data = bytearray(samples[0].read_bytes())
    chunk = FILE_HEADER_BLOCK
    a, b = [v for v in struct.unpack_from("<64I", data, chunk + 0x80) if v][:2]  # two real string entries
    struct.pack_into("<I", data, chunk + a, b)  # their "next string" links: a -> b -> a -> ...
    struct.pack_into("<I", data, chunk + b, a)  # (the package only stops a list that points at itself)
    path = tmp_path / "loop.evtx"
    path.write_bytes(bytes(data))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    # in a child process: if the loop came back, the test fails on its timeout instead of hanging
    done = subprocess.run([sys.executable, "-c", _READ_BOTH_MODES, str(path)], capture_output=True, text=True,
                          timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr
    strict, keep = done.stdout.splitlines()
    assert "string table links loop" in strict and str(path) in strict
    assert keep.startswith("keep_going: 1 events;") and "string table links loop" in keep


def test_evtx_sample_reads_as_before_through_the_table_check():
    samples = sorted(EVTX_DIR.glob("*.evtx")) if EVTX_DIR.is_dir() else []
    if not samples:
        pytest.skip("../shared/samples/evtx is not here (GPL-3.0 samples are never copied)")
    from rpctrace.sources.evtx import EvtxReader

    for path in samples:
        data = path.read_bytes()
        assert looping_table(data[FILE_HEADER_BLOCK:FILE_HEADER_BLOCK + CHUNK_SIZE]) is None
        reader = EvtxReader(path)
        assert len(list(reader.events())) == 1 and reader.stats.damage == []
