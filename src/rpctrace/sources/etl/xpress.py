"""Plain LZ77 "Xpress" decompression ([MS-XCA] sections 2.3 and 2.4), for compressed ETL buffers.

Why it lives here
=================

Windows 8 and later loggers running in compressed mode (``EVENT_TRACE_COMPRESSED_MODE``) store
every buffer but the first as a plain-LZ77 stream.  No maintained, permissively licensed Python
package decodes it, and the one reader that does (dissect.util) is AGPL, so rpctrace carries its
own decoder, written from the public specification.  It runs in pure Python, so it is written to
move whole runs of bytes with slices rather than one byte at a time.

The format
==========

The stream is a sequence of *tokens*, each a literal or a match, gated by 32-bit flag words:

* A flag word is 4 bytes, little-endian.  Its bits are read from the most significant (bit 31)
  down to bit 0, one per token; a new flag word is read when the 32 bits are used up.  A 0 bit
  means "copy the next input byte to the output" (a literal), a 1 bit means a match follows.
* A match starts with a 16-bit little-endian word: the high 13 bits are ``offset - 1`` (so the
  offset back into the output is 1..8192), the low 3 bits are ``length - 3``.
* If those 3 bits are 7, the length continues in a 4-bit *half byte*.  Half bytes are shared in
  pairs: the first long match reads a fresh byte and uses its low nibble; the next long match
  uses the high nibble of that same byte (and reads no new byte).  Length so far: ``nibble + 10``.
* If the nibble is 15, one more byte follows: ``length = byte + 25``.
* If that byte is 255, a 16-bit word follows holding ``length - 3`` directly; if the word is 0,
  a 32-bit word follows instead holding ``length - 3``.  Either value must be at least 22
  (15 + 7), or the stream is invalid.
* A match may overlap the bytes it produces (offset < length): ``a`` followed by a match of
  offset 1 and length 5 yields ``aaaaaa``.
* The stream ends when a flag bit says "match" and the input is exactly used up.  The encoder
  guarantees this by setting every unused flag bit of the last flag word to 1 (and writing a
  whole word of ones when the last word was full).  Reading past the input at any other point
  is an error, per section 2.4.4.

Examples from [MS-XCA] section 3.1: ``abcdefghijklmnopqrstuvwxyz`` encodes as
``3f000000`` followed by the 26 letters, and ``abc`` repeated 100 times encodes as
``ffffff1f 616263 1700 0f ff 2601`` (three literals, then one match of offset 3, length 297).

ETL buffers
===========

How Windows lays out a compressed buffer.  Checked on the two public sample files that have
compressed buffers (shared/samples/etl: net.4.5.2.x64.etl, 359 compressed buffers of 360, and
smallEtlFile.etl, 1 of 2; both from microsoft/perfview, MIT), with this decoder and with
dissect.util's, unless marked otherwise.

* The 0x48-byte WMI_BUFFER_HEADER itself is stored uncompressed; the compressed stream starts
  right after it, at buffer offset 0x48, and runs to the end of the on-disk buffer.
  Sources: the samples; snail-server ``snail/etl/etl_file.cpp`` ``read_buffer`` (reads
  ``BufferSize - 0x48`` bytes after the header and decompresses them); dissect.etl 3.14
  ``etl.py`` ``Buffer.data`` (reads ``min(BufferSize, FilledBytes) - 0x48`` bytes after the
  header and lzxpress-decompresses them).
* ``BufferSize`` (+0x00) is the on-disk size: 0x48 plus the exact length of the compressed
  stream, not rounded (samples: 0x3aa8, 0x40a2, 0x3d8f, ...; the last buffer of net.4.5.2 is
  317 bytes), and it is the stride to the next buffer.  Sources: the samples (walking by
  BufferSize lands exactly on the end of both files); snail-server and dissect.etl both step by it.
* ``SavedOffset`` (+0x04) and ``Offset`` (+0x30, "FilledBytes" in dissect.etl) both hold the
  uncompressed fill, header included: every compressed sample buffer decompresses to exactly
  ``SavedOffset - 0x48`` bytes, and ``Offset == SavedOffset`` in all of them.  Source: the
  samples; snail-server requires ``decompressed size == SavedOffset - 0x48``.  The uncompressed
  buffer size itself is only in the logfile header (TRACE_LOGFILE_HEADER.BufferSize, 0x10000).
* The decompressed bytes do NOT include the buffer header: they are the records that followed
  it, i.e. decompressed byte 0 is buffer offset 0x48 (the first record header starts there in
  every sample buffer).  Source: the samples; snail-server places the output at payload offset 0.
* ``CurrentOffset`` (+0x08) is junk (e.g. 0x10128, past a 0x10000 buffer).  Source: the samples.
* Buffer 0 (BufferType 4, HEADER, flag 0x01) is not compressed in either sample, and in both it
  is written short (BufferSize 0x200, SavedOffset 0x1b8 / 0x1d8) instead of at the full buffer
  size.  Sources: the samples; snail-server rejects a compressed header buffer.
* The logfile header's LogFileMode has 0x04000000 set in both files (0x4010001, 0x4011001):
  EVENT_TRACE_COMPRESSED_MODE, "Compress relogged file" in NTWMI (systeminformer
  ``phnt/include/ntwmi.h``), which also names ETW_BUFFER_FLAG_COMPRESSED 0x0040 and dates
  compression to logfile layout 2.0 (Windows 8).  net.4.5.2 is a PerfView-merged (relogged) file.
* The compression format: snail-server takes it from the low 16 bits of buffer 0's State field
  (+0x2C) when LogFileMode has EVENT_TRACE_COMPRESSED_MODE, as a COMPRESSION_FORMAT_* value:
  2 LZNT1, 3 Xpress (plain LZ77), 4 Xpress Huffman (``etl_file.cpp``: "The compression format is
  hidden in the state of the first buffer"); NTWMI marks the State offset assert with the comment
  "Compression".  In both samples it is 3 (the same number as the ordinary Flush state, so the
  value alone proves nothing), and every compressed buffer decodes as plain LZ77.
  **GUESS**: whether Windows ever writes format 4 (Xpress Huffman) into ETL files.  One
  unattributed ETW write-up claims ``wpr -compress`` / ``xperf -CompressMode 2`` do; no sample
  shows it.  This module decodes plain LZ77 only, so a reader should refuse a buffer-0 State of
  2 or 4 in a compressed-mode file rather than feed it here.
* Every sample stream ends the way the specification says (a 1 flag bit with the input used up);
  none needs the lenient "stop at end of input" that dissect.util and snail-server allow.

This module exposes :func:`decompress` and :class:`XpressError`; the encoder used by the trace
writer and the tests is the independent ``rpctrace.synth.xpress``.
"""

from __future__ import annotations

__all__ = ["XpressError", "decompress"]

#: ``_MASKS[n]`` keeps the low ``n`` bits of a flag word (the flags not used yet).
_MASKS = tuple((1 << n) - 1 for n in range(33))


class XpressError(ValueError):
    """A plain-LZ77 stream is truncated, corrupt or would decompress past the allowed size.

    ``offset`` is the input byte offset where decoding stopped (the token or field that failed).
    """

    def __init__(self, message: str, offset: int):
        self.offset = offset
        super().__init__(f"{message} (at input offset {offset}, 0x{offset:x})")


def decompress(data: bytes | bytearray | memoryview, max_output: int) -> bytes:
    """Decode a plain LZ77 (Xpress) stream and return the output bytes.

    Raises :class:`XpressError` when the stream reads past its end (except where it legitimately
    ends, see the module docstring), has a match reaching before the start of the output, has an
    invalid extended length, or would produce more than ``max_output`` bytes.  Work is bounded by
    ``len(data)`` tokens and ``max_output`` bytes, whatever the input says.
    """
    if max_output < 0:
        raise ValueError("max_output must not be negative")
    src = bytes(data)
    size = len(src)
    masks = _MASKS
    out = bytearray()
    olen = 0  # == len(out), kept in a local
    ip = 0
    half = 0  # input offset of the shared half-length byte in use, 0 if none (0 is a flag word)

    while True:
        if ip + 4 > size:
            raise XpressError(f"truncated: flag word needs 4 bytes, {size - ip} left", ip)
        flags = src[ip] | (src[ip + 1] << 8) | (src[ip + 2] << 16) | (src[ip + 3] << 24)
        ip += 4
        left = 32  # flag bits not consumed yet: bits left-1 .. 0
        while left:
            # A run of literals: the leading zero bits among the flags not used yet.
            run = left - (flags & masks[left]).bit_length()
            if run:
                end = ip + run
                if end > size:
                    if ip == size:
                        raise XpressError("truncated: literal expected at end of input", ip)
                    raise XpressError(
                        f"truncated: {run} literals flagged, {size - ip} bytes left", size
                    )
                if olen + run > max_output:
                    raise XpressError(
                        f"output would exceed max_output={max_output} bytes", ip + max_output - olen
                    )
                out += src[ip:end]
                olen += run
                ip = end
                left -= run
                if not left:
                    break

            # A match (the flag bit at left-1 is 1).
            left -= 1
            tok_at = ip
            if ip + 2 > size:
                if ip == size:
                    return bytes(out)  # the regular end of the stream
                raise XpressError("truncated: match word needs 2 bytes, 1 left", ip)
            tok = src[ip] | (src[ip + 1] << 8)
            ip += 2
            length = tok & 7
            if length == 7:
                if half:
                    length = src[half] >> 4
                    half = 0
                else:
                    if ip >= size:
                        raise XpressError("truncated: match length half byte missing", ip)
                    length = src[ip] & 15
                    half = ip
                    ip += 1
                if length == 15:
                    if ip >= size:
                        raise XpressError("truncated: match length byte missing", ip)
                    length = src[ip]
                    ip += 1
                    if length == 255:
                        if ip + 2 > size:
                            raise XpressError("truncated: 16-bit match length missing", ip)
                        length = src[ip] | (src[ip + 1] << 8)
                        ip += 2
                        if length == 0:
                            if ip + 4 > size:
                                raise XpressError("truncated: 32-bit match length missing", ip)
                            length = int.from_bytes(src[ip : ip + 4], "little")
                            ip += 4
                        if length < 22:
                            raise XpressError(f"invalid match length field {length} (< 22)", tok_at)
                        length += 3
                    else:
                        length += 25
                else:
                    length += 10
            else:
                length += 3
            dist = (tok >> 3) + 1
            if dist > olen or olen + length > max_output:
                if dist > olen:
                    raise XpressError(
                        f"match offset {dist} reaches before the start of the output ({olen} bytes)",
                        tok_at,
                    )
                raise XpressError(
                    f"output would exceed max_output={max_output} bytes "
                    f"(match of {length} at output {olen})",
                    tok_at,
                )
            start = olen - dist
            if dist >= length:
                out += out[start : start + length]
            elif dist == 1:
                out += out[start:] * length
            else:
                reps, rest = divmod(length, dist)
                pattern = out[start:]
                out += pattern * reps
                if rest:
                    out += pattern[:rest]
            olen += length
