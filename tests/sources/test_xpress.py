"""Plain LZ77 (Xpress, [MS-XCA] 2.3/2.4): rpctrace's decoder and the synth encoder.

Three independent parties check each other: the reader's decoder, the trace writer's encoder, and
a token assembler plus naive byte-at-a-time expander written here straight from the spec text.
dissect.util's lzxpress (AGPL) is used as a fourth, outside oracle, in tests only.
"""

from __future__ import annotations

import hashlib
import random
import struct
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpctrace.sources.etl.xpress import XpressError, decompress
from rpctrace.synth.xpress import compress



@pytest.fixture(scope="module")
def oracle():
    mod = pytest.importorskip("dissect.util.compression.lzxpress")
    return mod.decompress


# --- a spec-literal assembler and expander, independent of both implementations -------------


def assemble(tokens: list) -> bytes:
    """Encode tokens (an int = one literal byte, a tuple = (offset, length) match) per MS-XCA 2.3.4."""
    out = bytearray()
    half = None
    groups = [tokens[k : k + 32] for k in range(0, len(tokens), 32)]
    if len(tokens) % 32 == 0:
        groups.append([])  # a full last word is followed by a word of ones
    for group in groups:
        flag_pos = len(out)
        out += b"\0\0\0\0"
        word = 0
        for bit, tok in enumerate(group):
            if isinstance(tok, int):
                out.append(tok)
                continue
            word |= 1 << (31 - bit)
            offset, length = tok
            rest = length - 3
            head = (offset - 1) << 3
            if rest < 7:
                out += struct.pack("<H", head | rest)
                continue
            out += struct.pack("<H", head | 7)
            rest -= 7
            nibble = min(rest, 15)
            if half is None:
                half = len(out)
                out.append(nibble)
            else:
                out[half] |= nibble << 4
                half = None
            if rest >= 15:
                rest -= 15
                if rest < 255:
                    out.append(rest)
                else:
                    out.append(255)
                    rest += 22
                    if rest < 0x10000:
                        out += struct.pack("<H", rest)
                    else:
                        out += struct.pack("<HI", 0, rest)
        for bit in range(len(group), 32):
            word |= 1 << (31 - bit)
        out[flag_pos : flag_pos + 4] = struct.pack("<I", word)
    return bytes(out)


def expand(tokens: list) -> bytes:
    """What the tokens mean, copied one byte at a time as the spec's pseudocode does."""
    out = bytearray()
    for tok in tokens:
        if isinstance(tok, int):
            out.append(tok)
        else:
            offset, length = tok
            for _ in range(length):
                out.append(out[-offset])
    return bytes(out)


@st.composite
def token_lists(draw, max_tokens: int = 80) -> list:
    tokens: list = []
    produced = 0
    for _ in range(draw(st.integers(0, max_tokens))):
        if produced == 0 or draw(st.booleans()):
            tokens.append(draw(st.integers(0, 255)))
            produced += 1
        else:
            offset = draw(st.integers(1, min(produced, 8192)))
            form = draw(st.integers(0, 40))
            if form == 0:  # 16-bit edge and the 32-bit form (rare: the expander is slow)
                length = draw(st.sampled_from([65537, 65538, 65539, 70000]))
            else:
                length = draw(
                    st.one_of(
                        st.integers(3, 9),  # in the 3-bit field
                        st.integers(10, 24),  # half byte
                        st.integers(25, 279),  # + one byte
                        st.integers(280, 2000),  # + 16-bit length
                    )
                )
            tokens.append((offset, length))
            produced += length
    return tokens


def etw_like(seed: int, size: int = 0x10000) -> bytes:
    """Bytes shaped like an ETW buffer payload: 8-aligned records, rising timestamps, 0xFF fill."""
    rnd = random.Random(seed)
    out = bytearray()
    ts = rnd.randrange(1 << 40)
    names = [
        "\\Device\\HarddiskVolume3\\Windows\\System32\\rpcrt4.dll",
        "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Rpc",
        "\\RPC Control\\LRPC-4c3f0d1a9e8b7f6a5e",
        "C:\\Windows\\system32\\svchost.exe -k RPCSS -p",
    ]
    pids = [4, 612, 884, 1320, 5544]
    while len(out) < size * 3 // 4:
        ts += rnd.randrange(1, 5000)
        kind = rnd.randrange(4)
        if kind == 0:  # StackWalk-like: PERFINFO header + frames
            frames = [0xFFFFF80000000000 + rnd.randrange(1 << 24) for _ in range(rnd.randrange(3, 20))]
            payload = struct.pack("<QII", ts - 7, rnd.choice(pids), rnd.randrange(4000)) + b"".join(
                struct.pack("<Q", f) for f in frames
            )
            rec = struct.pack("<HBBHBBQ", 2, 0x11, 0xC0, 0x10 + len(payload), 32, 0x18, ts) + payload
        elif kind == 1:  # SYSTEM header + UTF-16 name
            payload = struct.pack("<QQI", rnd.randrange(1 << 48), 0, 0)
            payload += rnd.choice(names).encode("utf-16-le") + b"\0\0"
            tid, pid = rnd.randrange(9000), rnd.choice(pids)
            size_ = 0x20 + len(payload)
            head = struct.pack("<HBBHBBIIQII", 3, 0x02, 0xC0, size_, 10, 0x14, tid, pid, ts, 0, 0)
            rec = head + payload
        else:  # small fixed-size event with pointers and counters
            pointer = 0xFFFFE00000000000 + rnd.randrange(1 << 20)
            payload = struct.pack("<QQII", pointer, ts >> 3, 0, rnd.randrange(64))
            rec = struct.pack("<HBBHBBQ", 2, 0x11, 0xC0, 0x10 + len(payload), 46, 0x0F, ts) + payload
        rec += b"\0" * (-len(rec) % 8)
        out += rec
    out += b"\xff" * (size - len(out))
    return bytes(out[:size])


# --- the spec's own examples ([MS-XCA] 3.1) --------------------------------------------------

ALPHABET = b"abcdefghijklmnopqrstuvwxyz"
ALPHABET_STREAM = bytes.fromhex("3f000000") + ALPHABET
ABC_STREAM = bytes.fromhex("ffffff1f 616263 1700 0f ff 2601")


def test_spec_example_alphabet():
    assert decompress(ALPHABET_STREAM, 26) == ALPHABET
    assert compress(ALPHABET) == ALPHABET_STREAM
    assert assemble(list(ALPHABET)) == ALPHABET_STREAM


def test_spec_example_abc_times_100():
    assert decompress(ABC_STREAM, 300) == b"abc" * 100
    assert compress(b"abc" * 100) == ABC_STREAM
    assert assemble([0x61, 0x62, 0x63, (3, 297)]) == ABC_STREAM


def test_spec_examples_agree_with_oracle(oracle):
    assert oracle(ALPHABET_STREAM) == ALPHABET
    assert oracle(ABC_STREAM) == b"abc" * 100


def test_empty_input_round_trips():
    stream = compress(b"")
    assert stream == b"\xff\xff\xff\xff"
    assert decompress(stream, 0) == b""


# --- hand-built streams ----------------------------------------------------------------------


@pytest.mark.parametrize("length", [3, 9, 10, 24, 25, 279, 280, 65538, 65539, 100_000])
@pytest.mark.parametrize("offset", [1, 2, 3, 5])
def test_length_forms_and_overlap(offset, length):
    lead = list(b"xyzuv"[:offset])
    tokens = lead + [(offset, length), 0x21]
    want = expand(tokens)
    assert decompress(assemble(tokens), len(want)) == want


def test_half_bytes_are_shared_between_two_long_matches():
    # Three long matches: the first two share one half-length byte, the third starts a new one.
    tokens = list(b"0123456789") + [(10, 12), 0x41, (10, 23), (5, 30), 0x42]
    stream = assemble(tokens)
    want = expand(tokens)
    assert decompress(stream, len(want)) == want
    # Word, 10 literals, match word, shared byte (low nibble 2 = 12-10, high nibble 13 = 23-10).
    assert stream[4 + 10 + 2] == 0xD2


def test_far_offset_8192():
    rnd = random.Random(5)
    head = [rnd.randrange(256) for _ in range(9000)]
    tokens = head + [(8192, 40), (8000, 3)]
    want = expand(tokens)
    assert decompress(assemble(tokens), len(want)) == want


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(token_lists())
def test_hand_built_streams_decode_as_the_spec_says(tokens):
    want = expand(tokens)
    assert decompress(assemble(tokens), len(want)) == want


@settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(token_lists(max_tokens=40))
def test_hand_built_streams_agree_with_oracle(oracle, tokens):
    stream = assemble(tokens)
    assert oracle(stream) == expand(tokens)


# --- round trips through the synth encoder ---------------------------------------------------


def roundtrip(data: bytes) -> bytes:
    stream = compress(data)
    assert decompress(stream, len(data)) == data
    assert decompress(memoryview(stream), len(data) + 100) == data
    return stream


@settings(max_examples=200, deadline=2000)
@given(st.binary(max_size=3000))
def test_roundtrip_binary(data):
    roundtrip(data)


@settings(max_examples=150, deadline=2000)
@given(st.text(alphabet="ab \n\\:.RPCrpc0123", max_size=4000))
def test_roundtrip_text_like(text):
    roundtrip(text.encode("utf-16-le"))


@settings(max_examples=100, deadline=2000)
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=4), st.integers(1, 3000)), max_size=12))
def test_roundtrip_runs_and_short_periods(parts):
    # Runs of a 1..4-byte pattern: matches overlap their own output at offsets 1..4.
    roundtrip(b"".join(pattern * count for pattern, count in parts))


@pytest.mark.parametrize("period", [1, 2, 3])
@pytest.mark.parametrize("length", [4, 9, 10, 24, 25, 279, 280, 65538, 65539, 70_000])
def test_roundtrip_overlapping_lengths(period, length):
    data = b"Q" + bytes(range(1, period + 1)) * (length // period + 2)
    data = data[: length + period + 1]
    stream = roundtrip(data)
    assert len(stream) < 40  # one literal run and one match (plus flag words)


def test_roundtrip_large_and_compressible():
    data = b"".join(etw_like(seed) for seed in range(3)) + bytes(70_000) + b"\xff" * 70_000
    stream = roundtrip(data)
    assert len(data) > 256 * 1024
    assert len(stream) < len(data) // 3


def test_roundtrip_incompressible():
    data = random.Random(7).randbytes(100_000)
    stream = roundtrip(data)
    assert len(stream) <= len(data) + len(data) // 8 + 8  # one flag bit per literal


def test_compressor_finds_matches_in_etw_like_data():
    data = etw_like(11)
    start = time.perf_counter()
    stream = compress(data)
    elapsed = time.perf_counter() - start
    assert decompress(stream, len(data)) == data
    assert len(stream) < len(data) // 3
    assert elapsed < 1.0  # about 0.03 s on the reference machine


@settings(max_examples=80, deadline=3000, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.text(alphabet="abc/\\x", max_size=3000).map(str.encode),
        st.integers(0, 1000).map(lambda s: etw_like(s, 4096)),
    )
)
def test_encoder_output_agrees_with_oracle(oracle, data):
    stream = compress(data)
    assert oracle(stream) == data
    assert decompress(stream, len(data)) == data


def test_oracle_on_long_forms(oracle):
    for data in (b"a" * 65_540, b"ab" * 40_000, etw_like(3), bytes(300_000)):
        stream = compress(data)
        assert oracle(stream) == data
        assert decompress(stream, len(data)) == data


# --- max_output, truncation, corruption, hostility ---------------------------------------------


def test_max_output_is_a_hard_limit():
    data = etw_like(2)
    stream = compress(data)
    assert decompress(stream, len(data)) == data
    with pytest.raises(XpressError, match="max_output"):
        decompress(stream, len(data) - 1)
    with pytest.raises(XpressError):
        decompress(ALPHABET_STREAM, 25)
    with pytest.raises(XpressError):
        decompress(ABC_STREAM, 299)
    with pytest.raises(ValueError):
        decompress(ABC_STREAM, -1)


def test_huge_length_fields_do_not_allocate():
    # A 32-bit length of 0xFFFFFFFF after one literal: refused at once, not decoded.
    # flags: literal, then match (all later bits 1); match word: offset 1, length field 7.
    stream = struct.pack("<I", 0x7FFFFFFF) + b"A" + struct.pack("<H", 7) + bytes([15, 255])
    stream += struct.pack("<HI", 0, 0xFFFFFFFF)
    start = time.perf_counter()
    with pytest.raises(XpressError, match="max_output") as info:
        decompress(stream, 1 << 20)
    assert time.perf_counter() - start < 0.5
    assert info.value.offset == 5


def test_offset_before_start_is_refused():
    stream = struct.pack("<I", 0xFFFFFFFF) + struct.pack("<H", 0)  # a match before any output
    with pytest.raises(XpressError, match="before the start") as info:
        decompress(stream, 100)
    assert info.value.offset == 4
    stream = assemble(list(b"abc") + [(4, 3)])
    with pytest.raises(XpressError, match="before the start") as info:
        decompress(stream, 100)
    assert info.value.offset == 7


def test_wide_length_below_22_is_refused():
    stream = struct.pack("<I", 0x7FFFFFFF) + b"z" + struct.pack("<H", 7) + bytes([15, 255])
    stream += struct.pack("<H", 21)
    with pytest.raises(XpressError, match="invalid match length") as info:
        decompress(stream, 1000)
    assert info.value.offset == 5


def test_truncated_streams():
    with pytest.raises(XpressError, match="flag word") as info:
        decompress(b"", 10)
    assert info.value.offset == 0
    with pytest.raises(XpressError, match="flag word"):
        decompress(b"\0\0\0", 10)
    with pytest.raises(XpressError, match="literal") as info:
        decompress(ALPHABET_STREAM[:-1], 100)
    assert info.value.offset == len(ALPHABET_STREAM) - 1
    with pytest.raises(XpressError, match="match word"):
        decompress(ABC_STREAM[:8], 1000)
    with pytest.raises(XpressError, match="half byte"):
        decompress(ABC_STREAM[:9], 1000)
    with pytest.raises(XpressError, match="length byte"):
        decompress(ABC_STREAM[:10], 1000)
    with pytest.raises(XpressError, match="16-bit"):
        decompress(ABC_STREAM[:12], 1000)


def test_every_prefix_fails_or_yields_a_prefix():
    data = etw_like(9, 3000) + b"xyz" * 500
    stream = compress(data)
    for cut in range(len(stream)):
        try:
            got = decompress(stream[:cut], len(data))
        except XpressError as exc:
            assert 0 <= exc.offset <= cut
        else:
            # Cut right before a match: the spec's end condition; the output is a true prefix.
            assert data.startswith(got)


@settings(max_examples=300, deadline=1000)
@given(st.binary(max_size=4000), st.integers(0, 1 << 20))
def test_random_bytes_never_misbehave(data, max_output):
    try:
        got = decompress(data, max_output)
    except XpressError as exc:
        assert 0 <= exc.offset <= len(data)
    else:
        assert len(got) <= max_output


@settings(max_examples=200, deadline=1000)
@given(st.binary(min_size=1, max_size=2000), st.data())
def test_corrupted_streams_never_misbehave(data, draw):
    stream = bytearray(compress(data))
    for _ in range(draw.draw(st.integers(1, 6))):
        pos = draw.draw(st.integers(0, len(stream) - 1))
        stream[pos] = draw.draw(st.integers(0, 255))
    try:
        got = decompress(bytes(stream), 4 * len(data) + 64)
    except XpressError:
        pass
    else:
        assert len(got) <= 4 * len(data) + 64


def test_hostile_high_ratio_stream_is_bounded():
    # 16,000 matches of 64 KiB each at offset 1 (16-bit length form): about 1 GB of output
    # from 100 KB of input.  The limit stops it after 16 MiB, at once.
    opens = struct.pack("<H", 7) + bytes([0xFF, 255]) + struct.pack("<H", 0xFFFF)  # new half byte
    shares = struct.pack("<H", 7) + bytes([255]) + struct.pack("<H", 0xFFFF)  # its high nibble
    tokens = [opens if k % 2 == 0 else shares for k in range(16_000)]
    stream = bytearray(struct.pack("<I", 0x7FFFFFFF) + b"A" + b"".join(tokens[:31]))
    for k in range(31, len(tokens), 32):
        stream += struct.pack("<I", 0xFFFFFFFF) + b"".join(tokens[k : k + 32])
    start = time.perf_counter()
    with pytest.raises(XpressError, match="max_output"):
        decompress(bytes(stream), 1 << 24)
    assert time.perf_counter() - start < 0.5


# --- real Windows output ---------------------------------------------------------------------

# Buffer 1 of smallEtlFile.etl (microsoft/perfview @9c3fe49, src/TraceEvent/TraceEvent.Tests/,
# MIT): BufferSize 0x225, BufferFlag 0x61, SavedOffset = Offset = 0x2e0.  These are the 477
# compressed bytes after its 0x48-byte header, as a Windows logger wrote them.
WINDOWS_STREAM = bytes.fromhex(
    "00100004980212c0000000f0100000b0020000242e68202b78001c0269a650c40946a0355af521ac00009af4df189a00"
    "0200042402000800002079010420000b41001f00252801bd1791004062d6133900041001c078010a0144003a005c0050"
    "0052004f0047280041004d4002460049004c0045005358002800555054015800380036002938014db800435a01537801"
    "460054f80056980053005500418801208801545800449800551154404fd800310035002e0030c8014378014dd8024f00"
    "4e00377800490044f8025c180058280245a800539a0108a018444e08025c00461803480034004b2801b9042e00562a01"
    "5c08026900630072006f00731800660074aaa22088f8025600696800750061006ce801740075006488006fc800530065"
    "580176680063480073880043180169310000aa58006eca016468006c3a082700e8ea98dbbc8aa840b375433fe44caf70"
    "01b800eb087600322c0650151411410031d8055f0077d80372006b58003418006f0062006a380052b8026c1800616804"
    "65880141006e006c571515790043e80a55e80056a800730066b80049b80074ca0461580674e804766800cf04390753ca"
    "062900532f06ff049f083770000f00000064006200000000000000000000000000000000000000000000000000"
)


def test_windows_stream_decodes_to_saved_offset_minus_header():
    got = decompress(WINDOWS_STREAM, 0x2E0 - 0x48)
    assert len(got) == 0x2E0 - 0x48
    digest = "f09c991cb5f156994bce80024becfd64df080bc5e621786448bd6e5561401cbd"
    assert hashlib.sha256(got).hexdigest() == digest
    # Decompressed byte 0 is buffer offset 0x48: a record header (EVENT_HEADER32 marker 0xC012).
    assert got[2:4] == b"\x12\xc0"
    with pytest.raises(XpressError):
        decompress(WINDOWS_STREAM, 0x2E0 - 0x48 - 1)


def test_windows_stream_agrees_with_oracle(oracle):
    assert decompress(WINDOWS_STREAM, 1 << 16) == oracle(WINDOWS_STREAM)


def test_windows_stream_reencodes():
    data = decompress(WINDOWS_STREAM, 1 << 16)
    assert decompress(compress(data), len(data)) == data


def _compressed_buffers(etl: bytes):
    offset = 0
    while offset + 0x48 <= len(etl):
        size, saved = struct.unpack_from("<II", etl, offset)
        filled, flag = struct.unpack_from("<IH", etl, offset + 0x30)
        if flag & 0x40:
            yield etl[offset + 0x48 : offset + size], saved, filled
        offset += size


def test_real_compressed_etl_buffers(oracle):
    """net.4.5.2.x64.etl (perfview, MIT, copied into tests/data): 359 compressed buffers."""
    path = Path(__file__).resolve().parents[1] / "data" / "net.4.5.2.x64.etl.zip"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".etl"))
        etl = zf.read(name)
    buffers = list(_compressed_buffers(etl))
    assert len(buffers) == 359
    for index, (stream, saved, filled) in enumerate(buffers):
        assert filled == saved
        got = decompress(stream, saved - 0x48)
        assert len(got) == saved - 0x48
        if index % 12 == 0:
            assert got == oracle(stream)
