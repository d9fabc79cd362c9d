"""Read saved event logs (.evtx) through the ``evtx`` package (MIT/Apache-2.0).

The package renders every record as event XML; each record is parsed with the same safe parser
and mapped with the same rules as XML exports (:mod:`rpctrace.sources.eventxml`), so
Microsoft-Windows-RPC events become ``rpc.*`` events and everything else ``raw`` with its
EventData as fields.

Two things are read from the file directly, with every size checked:

* the file header (signature, format version 3, header block size) and the chunk layout: a file
  that ends inside a chunk is truncated, a chunk without its ``ElfChnk`` signature is damaged;
* each record's own FILETIME (record header +16).  The package prints ``SystemTime`` with
  microseconds only; when the record's FILETIME falls in the same microsecond it gives the full
  100 ns value (logs written by Windows store the event time there; exported or rebuilt files may
  hold 0, and then the microsecond value is kept).
"""

from __future__ import annotations

import os
import struct
from typing import Iterator

from rpctrace.errors import InputError
from rpctrace.model import Event
from rpctrace.sources.eventxml import XmlRefused, XmlStats, event_from_element, parse_event_xml

EVTX_MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
FILE_HEADER_BLOCK = 0x1000
CHUNK_SIZE = 0x10000
CHUNK_HEADER = 0x200
RECORD_MAGIC = b"\x2a\x2a\x00\x00"
_REC = struct.Struct("<IQQ")  # size, record id, FILETIME (after the magic)
MAX_CONSECUTIVE_ERRORS = 1000


class EvtxReader:
    """Reads one .evtx file.  Same interface as the other readers.

    Damage (a truncated file, a chunk without its signature, records the package cannot render)
    raises :class:`InputError` after the events that could be read (strict) or is counted in
    ``stats.damage`` (``keep_going``).  A file that is not an event log raises when opened.
    """

    def __init__(self, path: str | os.PathLike, keep_going: bool = False):
        self.path = os.fspath(path)
        self.keep_going = keep_going
        self.stats = XmlStats(format="evtx")
        self._problems: list[InputError] = []
        try:
            with open(self.path, "rb") as fh:
                self.size = os.fstat(fh.fileno()).st_size
                header = fh.read(FILE_HEADER_BLOCK)
        except OSError as exc:
            raise InputError(self.path, f"cannot open: {exc.strerror or exc}") from None
        self._check_header(header)
        try:
            from evtx import PyEvtxParser
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise InputError(self.path, f"the evtx package is not installed: {exc}") from None
        try:
            self._parser = PyEvtxParser(self.path)
        except (RuntimeError, OSError, ValueError) as exc:
            raise InputError(self.path, f"not a readable event log: {exc}", offset=0) from None
        except Exception as exc:  # noqa: BLE001 - the native package's own errors
            raise InputError(self.path, f"not a readable event log: {exc}", offset=0) from None

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

    def __enter__(self) -> "EvtxReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ record times

    def _record_times(self) -> dict[int, int]:
        """record id -> the record header's FILETIME, walking every chunk (bounded)."""
        times: dict[int, int] = {}
        try:
            with open(self.path, "rb") as fh:
                offset = FILE_HEADER_BLOCK
                while offset + CHUNK_HEADER <= self.size:
                    fh.seek(offset)
                    chunk = fh.read(CHUNK_SIZE)
                    if chunk[:8] != CHUNK_MAGIC:
                        if any(chunk[:CHUNK_HEADER]):
                            self._problems.append(InputError(self.path, "a chunk has no ElfChnk signature", offset=offset))
                        offset += CHUNK_SIZE
                        continue
                    pos = CHUNK_HEADER
                    while pos + 24 <= len(chunk) and chunk[pos : pos + 4] == RECORD_MAGIC:
                        size, rid, filetime = _REC.unpack_from(chunk, pos + 4)
                        if size < 28 or pos + size > len(chunk):
                            break
                        times.setdefault(rid, filetime)
                        pos += size
                    offset += CHUNK_SIZE
        except OSError:  # pragma: no cover - the file was readable a moment ago
            pass
        return times

    # ------------------------------------------------------------------ events

    def events(self) -> Iterator[Event]:
        if self._parser is None:
            raise InputError(self.path, "reader is closed")
        times = self._record_times()
        out: list[tuple[int, int, Event]] = []
        problems = self._problems
        it = self._parser.records()
        index = 0
        consecutive = 0
        while True:
            try:
                rec = next(it)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - the native package raises its own types
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
            except Exception as exc:  # noqa: BLE001 - expat errors and the like
                problems.append(InputError(self.path, f"record {index - 1}: {exc}", record=index - 1))
                continue
            rid = rec.get("event_record_id")  # the record header's id, which keys ``times``
            full = times.get(rid) if isinstance(rid, int) else None
            if full is not None and ev.ts and full // 10 == ev.ts // 10:
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
