"""What rpctrace still reads of a Process Monitor log whose trailing tables are missing or cut
(a log copied while Procmon ran, a truncated file): :class:`PartialLog` stands in for
procmon-parser's reader and gives its event decoder whatever the tables still hold."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from rpctrace.errors import InputError
from rpctrace.sources.pml.format import CLASSES, RECORD, U16, U32

if TYPE_CHECKING:
    from rpctrace.sources.pml.reader import PmlReader


class _TolerantStrings(list):
    """The strings table as far as it could be read: an index past it reads as ""."""

    def __getitem__(self, index):
        try:
            return super().__getitem__(index)
        except (IndexError, TypeError):
            return ""


class PartialLog:
    """What rpctrace reads of a log whose trailing tables are missing, cut or unreadable: stands
    in for procmon-parser's PMLStreamReader (``get_event_at_offset``, ``_process_table``,
    ``processes()``, ``system_details()``) and hands procmon-parser's event decoder whatever the
    tables still give.

    * **Events**: from the offsets array when it is whole, else by walking the log from the first
      event: each record is its 52-byte header, the stack (depth pointers), the details, and the
      extra details when they follow (the sizes in the header say how far the next one is).  The
      walk stops at the offsets array, at the first record the end of the file cuts, or at a
      header no Procmon writes; :attr:`damage` then says where.
    * **Processes**: the process table if it reads whole (names from the strings that could be
      read), else unknown processes: no pid, no name, no modules.
    * **Hosts and ports**: from their tables when they read, else addresses and numbers as is.
    """

    MAX_DEPTH = 1024  # Procmon records at most a few hundred frames

    def __init__(self, reader: PmlReader) -> None:
        from procmon_parser.logs import Process
        from procmon_parser.stream_helper import get_pvoid_reader
        from procmon_parser.stream_logs_detail_format import PmlMetadata

        self.reader = reader
        self.path = reader.path
        self.damage: InputError | None = None
        self._Process = Process
        view, size, ptr = reader._view, reader.size, reader.pointer_size
        self.view, self.size, self.ptr = view, size, ptr
        self.read_pvoid = get_pvoid_reader(ptr == 8)
        self.offsets = self._offsets()
        strings = self._strings(reader._table_offsets["strings"])
        self._process_table = self._processes(reader._table_offsets["process"], strings)
        self._hosts, self._ports = self._hosts_and_ports(reader._table_offsets["hosts"])
        self._placeholders: dict[int, Any] = {}
        self.metadata = PmlMetadata(strings.__getitem__, self._process, self._hostname, self._port,
                                    self.read_pvoid, ptr, True, True)
        self._stream = open(self.path, "rb")

    # -- tables ------------------------------------------------------------------------------
    def _offsets(self) -> list[int]:
        r = self.reader
        declared, array = r.declared, r._array_off
        if 0 < declared and r._events_off < array and array + 5 * declared <= self.size:
            offs = [U32.unpack_from(self.view, array + 5 * i)[0] for i in range(declared)]
            if all(r._events_off <= o < array for o in offs):
                return offs
        return self._walk(array if r._events_off < array <= self.size else self.size)

    def _walk(self, stop: int) -> list[int]:
        view, ptr = self.view, self.ptr
        out: list[int] = []
        pos = self.reader._events_off
        while pos + RECORD.size <= stop:
            (_pidx, _tid, klass, _op, _u1, _u2, _dur, _date, _res, depth, _u3, dsize,
             extra) = RECORD.unpack_from(view, pos)
            end = pos + RECORD.size + depth * ptr + dsize
            if klass not in CLASSES or depth > self.MAX_DEPTH:
                if not any(view[pos:pos + RECORD.size]):
                    break  # zeros: space Procmon had not filled yet
                self.damage = InputError(self.path, f"event {len(out)} has a header no Procmon writes "
                                         f"(class {klass}, {depth} frames); the events after it are not read",
                                         offset=pos, record=len(out))
                return out
            if extra and extra == end - pos and end + 2 <= stop:
                end += 2 + U16.unpack_from(view, end)[0]
            if end > stop:
                break
            out.append(pos)
            pos = end
        else:
            return out  # the events end here (what is left is too short to be one)
        if stop == self.size:
            self.damage = InputError(self.path, f"truncated: the file ends inside event {len(out)}, before the "
                                     "tables Procmon writes after the events; processes, modules and names are "
                                     "unknown", offset=self.size, record=len(out))
        return out

    def _strings(self, at: int) -> _TolerantStrings:
        out = _TolerantStrings()
        view, size = self.view, self.size
        if not 0 < at <= size - 4:
            return out
        count = U32.unpack_from(view, at)[0]
        count = min(count, (size - at - 4) // 4)
        for i in range(count):
            off = at + U32.unpack_from(view, at + 4 + 4 * i)[0]
            if off + 4 > size:
                break
            n = U32.unpack_from(view, off)[0]
            if off + 4 + n > size:
                break
            out.append(bytes(view[off + 4:off + 4 + n]).decode("utf-16-le", "replace").split("\x00", 1)[0])
        return out

    def _processes(self, at: int, strings) -> dict:
        from procmon_parser.stream_logs_format import ProcessTable

        if not 0 < at < self.size:
            return {}
        try:
            with open(self.path, "rb") as fh:
                fh.seek(at)
                return dict(ProcessTable(fh, read_pvoid=self.read_pvoid, strings_table=strings))
        except Exception:
            return {}

    def _hosts_and_ports(self, at: int):
        from procmon_parser.stream_logs_format import HostnamesTable, PortsTable

        if not 0 < at < self.size:
            return {}, {}
        try:
            stream = io.BytesIO(bytes(self.view[at:]))
            return HostnamesTable(stream), PortsTable(stream)
        except Exception:
            return {}, {}

    # -- what procmon-parser's decoder asks -----------------------------------------------------
    def _process(self, index: int):
        proc = self._process_table.get(index)
        if proc is None:
            proc = self._placeholders.get(index)
            if proc is None:
                proc = self._placeholders[index] = self._Process(pid=None, parent_pid=None, session=None)
        return proc

    def _hostname(self, ip: bytes, is_ipv4: bool) -> str:
        import ipaddress

        name = self._hosts.get(ip)
        if name:
            return name
        return str(ipaddress.IPv4Address(ip[:4])) if is_ipv4 else str(ipaddress.IPv6Address(ip))

    def _port(self, port: int, is_tcp: bool) -> str:
        return self._ports.get((port, is_tcp), str(port))

    def get_event_at_offset(self, offset: int):
        from procmon_parser.stream_logs_format import read_event

        self._stream.seek(offset)
        return read_event(self._stream, self.metadata)

    def processes(self) -> list:
        return list(self._process_table.values())

    def system_details(self) -> dict:
        return {}

    def close(self) -> None:
        self._stream.close()
