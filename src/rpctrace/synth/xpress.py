"""Plain LZ77 "Xpress" compression ([MS-XCA] section 2.3), for writing compressed ETL buffers.

The trace writer uses it to produce buffers with BufferFlag 0x40 (COMPRESSED) the way Windows 8+
loggers in compressed mode do, and the tests use it to exercise the reader's decoder.  It is
written independently of ``rpctrace.sources.etl.xpress`` (and imports nothing from it), so the
two check each other.

Output format (see the decoder's docstring for the full description): 32-bit little-endian flag
words, read from bit 31 down, 0 = literal byte, 1 = match; a match is a 16-bit word
``(offset - 1) << 3 | min(length - 3, 7)``, then for longer matches a shared half byte, then
one byte, then a 16-bit or (after a 16-bit 0) 32-bit ``length - 3``.  Unused bits of the last
flag word are set to 1, which is how a decoder knows the stream has ended.

The match finder is a greedy hash-chain search over 4-byte keys (a dict from the 4 bytes to the
latest position, plus a short chain of earlier positions), window 8192 bytes, unbounded match
length.  Match lengths are measured a whole machine word at a time (XOR of two slices read as
integers), and a long miss streak makes the search skip ahead, so incompressible data costs
little.  The output is always a valid stream; it need not be byte-identical to what Windows
writes for the same input.
"""

from __future__ import annotations

__all__ = ["compress"]

_WINDOW = 8192  # largest offset a 13-bit offset field can hold
_MIN_MATCH = 4  # key length; 3-byte matches exist in the format but rarely pay off here
_MAX_CHAIN = 4  # earlier positions tried per key, besides the latest one
_MAX_LEN = 0xFFFFFFFF  # the 32-bit length field holds length - 3; stay well inside it
_GOOD_ENOUGH = 64  # stop searching the chain once a match this long was found


def _common_length(src: bytes, a: int, b: int, limit: int) -> int:
    """Number of equal bytes at ``src[a:]`` and ``src[b:]``, at most ``limit``."""
    n = 0
    step = 16
    while n < limit:
        s = limit - n if limit - n < step else step
        x = int.from_bytes(src[a + n : a + n + s], "little") ^ int.from_bytes(
            src[b + n : b + n + s], "little"
        )
        if x:
            return n + (((x & -x).bit_length() - 1) >> 3)
        n += s
        if step < 4096:
            step <<= 1
    return limit


def compress(data: bytes | bytearray | memoryview) -> bytes:
    """Return ``data`` compressed as a plain LZ77 (Xpress) stream."""
    src = bytes(data)
    size = len(src)
    out = bytearray(4)  # room for the first flag word
    flag_at = 0  # where the current flag word goes
    flags = 0
    nflags = 0
    half_at = -1  # output offset of a half-length byte whose high nibble is still free

    latest: dict[bytes, int] = {}  # key -> latest position with that key
    chain: dict[int, int] = {}  # position -> previous position with the same key

    def put_literals(start: int, end: int) -> None:
        nonlocal flags, nflags, flag_at
        while start < end:
            take = 32 - nflags
            if take > end - start:
                take = end - start
            out.extend(src[start : start + take])
            start += take
            flags <<= take
            nflags += take
            if nflags == 32:
                out[flag_at : flag_at + 4] = flags.to_bytes(4, "little")
                flag_at = len(out)
                out.extend(b"\0\0\0\0")
                flags = 0
                nflags = 0

    last_key = size - _MIN_MATCH  # the last position a key can start at
    i = 0
    lit_start = 0
    misses = 0
    while i <= last_key:
        key = src[i : i + _MIN_MATCH]
        cand = latest.get(key)
        latest[key] = i
        best_len = 0
        best_pos = 0
        if cand is not None:
            chain[i] = cand
            limit = size - i
            if limit > _MAX_LEN:
                limit = _MAX_LEN
            tries = _MAX_CHAIN
            while cand is not None and i - cand <= _WINDOW:
                n = _common_length(src, cand + _MIN_MATCH, i + _MIN_MATCH, limit - _MIN_MATCH)
                n += _MIN_MATCH
                if n > best_len:
                    best_len = n
                    best_pos = cand
                    if n >= _GOOD_ENOUGH or n == limit:
                        break
                tries -= 1
                if not tries:
                    break
                cand = chain.get(cand)
        if not best_len:
            misses += 1
            i += 1 + (misses >> 6)  # skip faster through data that does not compress
            continue
        misses = 0

        # Literals before the match, then the match itself.
        if lit_start < i:
            put_literals(lit_start, i)
        length = best_len - 3
        word = (i - best_pos - 1) << 3
        if length < 7:
            out.extend((word | length).to_bytes(2, "little"))
        else:
            out.extend((word | 7).to_bytes(2, "little"))
            length -= 7
            nibble = length if length < 15 else 15
            if half_at < 0:
                half_at = len(out)
                out.append(nibble)
            else:
                out[half_at] |= nibble << 4
                half_at = -1
            if length >= 15:
                length -= 15
                if length < 255:
                    out.append(length)
                else:
                    length += 15 + 7  # the wide fields hold the whole length - 3
                    if length < 0x10000:
                        out.append(255)
                        out.extend(length.to_bytes(2, "little"))
                    else:
                        out.extend(b"\xff\0\0")
                        out.extend(length.to_bytes(4, "little"))
        flags = (flags << 1) | 1
        nflags += 1
        if nflags == 32:
            out[flag_at : flag_at + 4] = flags.to_bytes(4, "little")
            flag_at = len(out)
            out.extend(b"\0\0\0\0")
            flags = 0
            nflags = 0

        # Index a few positions inside the match so later data can refer to them too.
        end = i + best_len
        stop = end if best_len <= 16 else i + 8
        if stop > last_key + 1:
            stop = last_key + 1
        for j in range(i + 1, stop):
            k = src[j : j + _MIN_MATCH]
            prev = latest.get(k)
            if prev is not None:
                chain[j] = prev
            latest[k] = j
        if best_len > 16:
            for j in range(max(end - 8, stop), min(end, last_key + 1)):
                k = src[j : j + _MIN_MATCH]
                prev = latest.get(k)
                if prev is not None:
                    chain[j] = prev
                latest[k] = j
        i = end
        lit_start = end

    put_literals(lit_start, size)
    # Close the last flag word: its unused bits are ones, so the decoder sees a "match" with
    # no input left and stops.  A full word was already written; then a word of ones follows.
    pad = 32 - nflags
    out[flag_at : flag_at + 4] = ((flags << pad) | ((1 << pad) - 1)).to_bytes(4, "little")
    return bytes(out)
