"""Read saved event logs (.evtx) through the ``evtx`` package (MIT/Apache-2.0).

The package renders every record as event XML; each record is parsed with the same safe parser
(:mod:`rpctrace.sources.safexml`) and mapped with the same rules as XML exports
(:mod:`rpctrace.sources.winevent`), so Microsoft-Windows-RPC events become ``rpc.*`` events and
everything else ``raw`` with its EventData as fields.

Two things are read from the file directly, with every size checked:

* the file header (signature, format version 3, header block size) and the chunk layout: a file
  that ends inside a chunk is truncated, a chunk without its ``ElfChnk`` signature is damaged;
* each event's own time to the 100 ns.  The package prints ``<TimeCreated SystemTime>`` with
  microseconds only.  The full value is the FILETIME the event's System/TimeCreated attribute is
  substituted from: records are BinXML template instances, and the values of an instance
  follow its template (MS-EVEN6 2.2.12: ValueSpec = count, then size/type per value; FileTime is
  type 0x11), so the FileTime values of the record are read from there, and the one in the
  microsecond the package printed is the event's time.  The record header's FILETIME (+16) is
  *not* used: it is when the record was written, which can differ from the event's time even
  within one microsecond.  Where no such value is found the microsecond value is kept.
"""

from __future__ import annotations

import io
import os
import struct
from typing import Any, Iterator, cast

from rpctrace.errors import InputError
from rpctrace.model import Event
from rpctrace.sources.base import Reader
from rpctrace.sources.safexml import XmlRefused, parse_event_xml
from rpctrace.sources.winevent import XmlStats, event_from_element

EVTX_MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
FILE_HEADER_BLOCK = 0x1000
CHUNK_SIZE = 0x10000
CHUNK_HEADER = 0x200
RECORD_MAGIC = b"\x2a\x2a\x00\x00"
_U32 = struct.Struct("<I")
_REC = struct.Struct("<IQQ")  # size, record id, FILETIME (after the magic)
_U16 = struct.Struct("<H")
_U64 = struct.Struct("<Q")
#: BinXML tokens and value types (MS-EVEN6 2.2.12)
_FRAGMENT_HEADER, _TEMPLATE_INSTANCE, _FILETIME = 0x0F, 0x0C, 0x11
MAX_CONSECUTIVE_ERRORS = 1000
#: the chunk's hash tables of linked lists: common strings (64 heads at +0x80) and templates
#: (32 heads at +0x180); each entry starts with the chunk offset of the next one (0 ends a list)
CHUNK_TABLES = ((0x80, 64, "string"), (0x180, 32, "template"))
MAX_TABLE_LINKS = CHUNK_SIZE // 8  # more entries than a chunk can hold: the lists loop


def looping_table(chunk: bytes) -> tuple[str, int] | None:
    """(table name, chunk offset of its head) when a chunk's string or template lists loop.

    The evtx package follows these links without a bound when it caches a chunk, so a list that
    comes back to an entry (or is longer than a chunk can hold) makes it spin forever.
    """
    size = len(chunk)
    for start, count, name in CHUNK_TABLES:
        links = 0
        for head in range(start, start + 4 * count, 4):
            if head + 4 > size:
                break
            pos = _U32.unpack_from(chunk, head)[0]
            seen: set[int] = set()
            while pos and pos + 4 <= size:
                if pos in seen:
                    return name, head
                seen.add(pos)
                links += 1
                if links > MAX_TABLE_LINKS:
                    return name, head
                pos = _U32.unpack_from(chunk, pos)[0]
    return None


def record_filetimes(chunk: bytes, start: int, end: int) -> list[int]:
    """The FileTime substitution values of the record at chunk offset ``start`` (bounded by
    ``end``): the record's BinXML is a fragment header, then a template instance (token, 1 byte,
    template id, the chunk offset of the template definition, which follows here when this is
    its first use in the chunk: next-definition offset, GUID, data size, data), then its values."""
    p = start + 24
    if p < end and chunk[p] == _FRAGMENT_HEADER:
        p += 4
    if p + 10 > end or chunk[p] != _TEMPLATE_INSTANCE:
        return []
    definition = _U32.unpack_from(chunk, p + 6)[0]
    p += 10
    if definition == p:  # the template is defined here
        if p + 24 > end:
            return []
        p += 24 + _U32.unpack_from(chunk, p + 20)[0]
    if p + 4 > end:
        return []
    count = _U32.unpack_from(chunk, p)[0]
    p += 4
    if count > (end - p) // 4:
        return []
    specs = [(_U16.unpack_from(chunk, p + 4 * i)[0], chunk[p + 4 * i + 2]) for i in range(count)]
    p += 4 * count
    out = []
    for size, vtype in specs:
        if p + size > end:
            break
        if vtype == _FILETIME and size == 8:
            out.append(_U64.unpack_from(chunk, p)[0])
        p += size
    return out


def event_time(ticks: int, filetimes: list[int]) -> int:
    """The event's full time: the first FileTime value in the microsecond of ``ticks`` (what the
    rendered SystemTime says), else ``ticks``."""
    for value in filetimes:
        if value // 10 == ticks // 10:
            return value
    return ticks


class _WithoutTables(io.RawIOBase):
    """The file as the evtx package should see it: the string and template tables of the given
    chunks read as zeros (no lists to follow; the package then reads each name where it is)."""

    def __init__(self, path: str, chunks: list[int]):
        self._fh = open(path, "rb")
        self._holes = [(c + 0x80, c + CHUNK_HEADER) for c in chunks]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def readinto(self, buffer) -> int:
        pos = self._fh.tell()
        n = self._fh.readinto(buffer)
        for lo, hi in self._holes:
            a, b = max(lo, pos), min(hi, pos + n)
            if a < b:
                buffer[a - pos:b - pos] = bytes(b - a)
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


class EvtxReader(Reader):
    """Reads one .evtx file (a :class:`~rpctrace.sources.base.Reader`).

    Damage (a truncated file, a chunk without its signature, records the package cannot render)
    raises :class:`InputError` after the events that could be read (strict) or is counted in
    ``stats.damage`` (``keep_going``).  A file that is not an event log raises when opened.
    """

    def __init__(self, path: str | os.PathLike[str], keep_going: bool = False) -> None:
        super().__init__(path, keep_going)
        self.stats = XmlStats(format="evtx")
        self._problems: list[InputError] = []
        self._looping: list[int] = []  # chunks whose string/template lists loop
        self._patched: _WithoutTables | None = None
        self._parser: Any = None
        self._open(mapped=False)
        try:
            self._check_header(self._file.read(FILE_HEADER_BLOCK))
            try:
                from evtx import PyEvtxParser
            except ImportError as exc:  # pragma: no cover - a declared dependency
                raise InputError(self.path, f"the evtx package is not installed: {exc}") from None
            try:
                self._parser = PyEvtxParser(self.path)
            except Exception as exc:  # the package raises RuntimeError, OSError, ValueError and others
                raise InputError(self.path, f"not a readable event log: {exc}", offset=0) from None
        except InputError:
            self.close()
            raise

    def _check_header(self, h: bytes) -> None:
        if h[:8] != EVTX_MAGIC:
            raise InputError(self.path, "not an event log (no ElfFile signature)", offset=0)
        if len(h) < 128:
            raise InputError(self.path, f"truncated: {self.size} bytes, the EVTX file header is 128", offset=self.size)
        header_size, minor, major, block = struct.unpack_from("<IHHH", h, 32)
        if major != 3:
            raise InputError(self.path, f"unsupported EVTX format version {major}.{minor} (rpctrace reads 3.x)", offset=38)
        if block != FILE_HEADER_BLOCK or header_size != 128:
            raise InputError(self.path, f"bad EVTX header (header size {header_size}, block {block})", offset=32)
        if self.size < FILE_HEADER_BLOCK + CHUNK_HEADER:
            self._problems.append(InputError(self.path, "truncated: the file ends before its first chunk", offset=self.size))
        elif (self.size - FILE_HEADER_BLOCK) % CHUNK_SIZE:
            cut = FILE_HEADER_BLOCK + (self.size - FILE_HEADER_BLOCK) // CHUNK_SIZE * CHUNK_SIZE
            self._problems.append(InputError(self.path, f"truncated: the last chunk (at {cut}) is cut short", offset=self.size))

    def close(self) -> None:
        self._parser = None
        if self._patched is not None:
            self._patched.close()
            self._patched = None
        super().close()

    # ------------------------------------------------------------------ record times

    def _record_times(self) -> dict[int, list[int]]:
        """record id -> the record's FileTime values (:func:`record_filetimes`), walking every
        chunk (bounded)."""
        times: dict[int, list[int]] = {}
        try:
            fh = self._file
            offset = FILE_HEADER_BLOCK
            while offset + CHUNK_HEADER <= self.size:
                fh.seek(offset)
                chunk = fh.read(CHUNK_SIZE)
                if chunk[:8] != CHUNK_MAGIC:
                    if any(chunk[:CHUNK_HEADER]):
                        self._problems.append(InputError(self.path, "a chunk has no ElfChnk signature", offset=offset))
                    offset += CHUNK_SIZE
                    continue
                loop = looping_table(chunk)
                if loop is not None:
                    self._problems.append(InputError(
                        self.path, f"the chunk's {loop[0]} table links loop; its records are read without it",
                        offset=offset + loop[1]))
                    self._looping.append(offset)
                pos = CHUNK_HEADER
                while pos + 24 <= len(chunk) and chunk[pos : pos + 4] == RECORD_MAGIC:
                    size, rid, _written = _REC.unpack_from(chunk, pos + 4)
                    if size < 28 or pos + size > len(chunk):
                        break
                    if rid not in times:
                        times[rid] = record_filetimes(chunk, pos, pos + size - 4)
                    pos += size
                offset += CHUNK_SIZE
        except OSError:  # pragma: no cover - the file was readable a moment ago
            pass
        return times

    # ------------------------------------------------------------------ events

    def events(self) -> Iterator[Event]:
        if self._parser is None:
            raise self._closed()
        times = self._record_times()
        if self._looping and self._patched is None:
            # the package would spin on those lists: let it read those chunks without them
            from evtx import PyEvtxParser

            self._patched = _WithoutTables(self.path, self._looping)
            try:
                self._parser = PyEvtxParser(self._patched)
            except Exception as exc:
                raise InputError(self.path, f"not a readable event log: {exc}", offset=0) from None
        out: list[tuple[int, int, Event]] = []
        problems = self._problems
        it = self._parser.records()
        index = 0
        consecutive = 0
        while True:
            try:
                # a dict (event_record_id, timestamp, data); the package's stub says Optional, but
                # its Rust iterator's None is what Python sees as StopIteration, never a record
                rec = cast("dict[str, Any]", next(it))
            except StopIteration:
                break
            except Exception as exc:
                problems.append(InputError(self.path, f"record {index}: {exc}", record=index))
                index += 1
                consecutive += 1
                if consecutive >= MAX_CONSECUTIVE_ERRORS:
                    problems.append(InputError(self.path, "too many unreadable records in a row; stopped", record=index))
                    break
                continue
            consecutive = 0
            index += 1
            try:
                el = parse_event_xml(rec["data"])
                ev = event_from_element(el, self.stats, index - 1)
            except (XmlRefused, ValueError, KeyError, TypeError) as exc:
                problems.append(InputError(self.path, f"record {rec.get('event_record_id') if isinstance(rec, dict) else index}: {exc}",
                                           record=index - 1))
                continue
            except Exception as exc:
                problems.append(InputError(self.path, f"record {index - 1}: {exc}", record=index - 1))
                continue
            rid = rec.get("event_record_id")  # the record header's id, which keys ``times``
            values = times.get(rid) if isinstance(rid, int) else None
            if values and ev.ts:
                full = event_time(ev.ts, values)
                if full != ev.ts:
                    ev = ev._replace(ts=full)
            out.append((ev.ts, rid if isinstance(rid, int) else index, ev))
        out.sort(key=lambda t: (t[0], t[1]))
        self.stats.records += len(out)
        deferred = None
        if problems:
            if self.keep_going:
                self.stats.damage.extend(problems)
            else:
                deferred = problems[0]
        for _, _, ev in out:
            yield ev
        if deferred is not None:
            raise deferred
