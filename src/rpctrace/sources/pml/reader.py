"""The Process Monitor log reader: checks the file before procmon-parser (MIT) decodes its records,
reads the raw values procmon-parser only gives as text, and maps each record to an
:class:`~rpctrace.model.Event` (the mapping: :mod:`rpctrace.sources.pml`)."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

from rpctrace.errors import InputError
from rpctrace.knowledge.providers import PROCMON
from rpctrace.model import Event
from rpctrace.sources.base import Reader, SourceStats
from rpctrace.sources.pml.format import (
    CLASS_FILE_SYSTEM,
    CLASS_IPC,
    CLASS_PROCESS,
    CLASS_REGISTRY,
    CLASSES,
    COMPUTER_NAME,
    FILE_CREATE,
    FILE_CREATE_OPS,
    HEADER_SIZE,
    LOAD_IMAGE,
    P_CREATE,
    P_DEFINED,
    P_EXIT,
    P_START,
    PML_MAGIC,
    PML_VERSIONS,
    RECORD,
    REG_OPEN_OPS,
    REG_VALUE_OPS,
    REGISTRY_KINDS,
    T_CREATE,
    T_EXIT,
    U16,
    U32,
    U64,
)
from rpctrace.sources.pml.partial import PartialLog
from rpctrace.sources.pml.stacks import ProcessStacks
from rpctrace.sources.pml.values import (
    access_names,
    registry_nt_path,
    result_text,
    snake,
    status_name,
    user_sid,
)


@dataclass
class PmlStats(SourceStats):
    """What a read found besides events."""

    format: str = "pml"
    declared_events: int = 0
    pml_version: int | None = None
    pointer_size: int | None = None
    computer: str | None = None  # the computer name of the header (None when empty)

    SUMMARY: ClassVar[tuple[str, ...]] = (
        "format", "computer", "records", "declared_events", "raw_records", "payload_errors", "unknown_versions",
        "pml_version", "pointer_size", "events_lost", "buffers_lost", "damage")


#: what procmon-parser raises on a record it cannot decode
PARSE_ERRORS = (struct.error, ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError,
                 EOFError, NotImplementedError, RuntimeError, ZeroDivisionError, UnicodeError)


class PmlReader(Reader):
    """Reads one Process Monitor log (a :class:`~rpctrace.sources.base.Reader` with a process table).

    With ``keep_going=False`` the first damaged record raises :class:`InputError` after the events
    read before it; with ``keep_going=True`` damage is counted in ``stats.damage`` and skipped.
    A file whose header or version cannot be read raises InputError when opened.  Procmon writes
    its tables after the events (event offsets, processes, strings, icons, hosts and ports); when
    they are missing or cut (a log copied while Procmon ran, a truncated file), every complete
    event before the damage is still read (:class:`PartialLog`) with what the tables would have
    given (process ids and names, modules, host names) left unknown, and the damage is reported
    after them.
    """

    def __init__(self, path: str | os.PathLike[str], keep_going: bool = False) -> None:
        super().__init__(path, keep_going)
        self.stats = PmlStats()
        self._reader: Any = None
        self._table_damage: InputError | None = None
        self._open(empty="the file is empty, not a Process Monitor log")
        try:
            self._check_header()
            if self._table_damage is None:
                try:
                    self._open_parser()
                except InputError as exc:
                    self._table_damage = exc
            if self._table_damage is not None:
                self._reader = PartialLog(self)
                self._offsets = self._reader.offsets
            self._tables()
        except InputError:
            self.close()
            raise

    def close(self) -> None:
        if isinstance(self._reader, PartialLog):
            self._reader.close()
        self._reader = None
        super().close()

    # ------------------------------------------------------------------ header

    def _check_header(self) -> None:
        """Check everything procmon-parser would trust: sizes, offsets, counts, version."""
        v, size = self._view, self.size
        if v[:4] != PML_MAGIC:
            raise InputError(self.path, "not a Process Monitor log (no PML_ signature)", offset=0)
        if size < HEADER_SIZE:
            raise InputError(self.path, f"truncated: {size} bytes, the PML header alone is {HEADER_SIZE}", offset=size)
        version = U32.unpack_from(v, 4)[0]
        self.stats.pml_version = version
        if version not in PML_VERSIONS:
            raise InputError(
                self.path,
                f"unsupported PML version {version} (rpctrace reads version {', '.join(map(str, PML_VERSIONS))}, "
                "written by Process Monitor 3.x; save the log again with a current Procmon)",
                offset=4,
            )
        is64 = U32.unpack_from(v, 8)[0]
        if is64 not in (0, 1):
            raise InputError(self.path, f"bad PML header: pointer-size flag {is64}", offset=8)
        self.pointer_size = 8 if is64 else 4
        self.stats.pointer_size = self.pointer_size
        at, size_ = COMPUTER_NAME
        name = bytes(v[at:at + size_]).decode("utf-16-le", "replace").split("\0", 1)[0].strip()
        self.stats.computer = name or None
        self.declared = U32.unpack_from(v, 0x234)[0]
        self.stats.declared_events = self.declared
        names = ("events", "event offsets", "process table", "strings table", "icon table")
        offs = [U64.unpack_from(v, 0x240 + 8 * i)[0] for i in range(5)]
        header_size = U64.unpack_from(v, 0x398)[0]
        hosts = U64.unpack_from(v, 0x3A0)[0]
        if header_size != HEADER_SIZE:
            raise InputError(self.path, f"bad PML header: header size {header_size:#x}", offset=0x398)
        events_off, array_off, process_off, strings_off, _icons = offs
        if not HEADER_SIZE <= events_off < size:
            raise InputError(self.path, f"the events offset {events_off} lies outside the file ({size} bytes)",
                             offset=0x240)
        self._events_off = events_off
        self._array_off = array_off
        self._table_offsets = {"process": process_off, "strings": strings_off, "hosts": hosts}
        try:
            if 0 in offs or hosts == 0:
                raise InputError(self.path, "the log was not closed cleanly by Procmon (its tables are missing)",
                                 offset=0x240)
            for name, off, _where in list(zip(names, offs, range(0x240, 0x268, 8))) + [("hosts and ports tables", hosts, 0x3A0)]:
                if off > size or (off == size and name != "icon table"):
                    raise InputError(
                        self.path, f"truncated: the file ({size} bytes) ends before its {name} (at offset {off})",
                        offset=size)
            if array_off >= process_off or self.declared * 5 > process_off - array_off:
                raise InputError(
                    self.path, f"bad PML header: {self.declared} events do not fit the offsets array "
                    f"({array_off}..{process_off})", offset=0x234,
                )
            self._check_tail(hosts)
        except InputError as exc:
            self._table_damage = exc

    def _check_tail(self, at: int) -> None:
        """The host and port name tables end the file: walk them so a cut file is noticed."""
        v, size = self._view, self.size
        pos = at
        for entry_head, length_at in ((20, 16), (8, 4)):  # hosts: ip[16] len; ports: port, tcp, len
            if pos + 4 > size:
                raise InputError(self.path, "truncated: the file ends inside its host and port tables", offset=size)
            count = U32.unpack_from(v, pos)[0]
            pos += 4
            for _ in range(count):
                if pos + entry_head > size:
                    raise InputError(self.path, "truncated: the file ends inside its host and port tables", offset=size)
                pos += entry_head + U32.unpack_from(v, pos + length_at)[0]
            if pos > size:
                raise InputError(self.path, "truncated: the file ends inside its host and port tables", offset=size)

    def _open_parser(self) -> None:
        try:
            from procmon_parser import PMLStreamReader
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise InputError(self.path, f"procmon-parser is not installed: {exc}") from None
        try:
            self._file.seek(0)
            self._reader = PMLStreamReader(self._file, should_get_stacktrace=True, should_get_details=True)
            self._offsets = list(self._reader.events_offsets)
        except InputError:
            raise
        except (MemoryError, *PARSE_ERRORS, Exception) as exc:  # procmon-parser's PMLError is a RuntimeError
            raise InputError(self.path, f"cannot read the Process Monitor log tables: {exc}", offset=0) from None

    def _tables(self) -> None:
        """Module maps per process (procmon-parser's process table, keyed by process index)."""
        table = getattr(self._reader, "_process_table", None)
        if not isinstance(table, dict):  # pragma: no cover - procmon-parser internals changed
            table = dict(enumerate(self._reader.processes()))
        self._processes = table
        self._stacks = ProcessStacks(table, self.pointer_size)

    def system_details(self) -> dict:
        try:
            return dict(self._reader.system_details())
        except Exception:
            return {}

    def process_table(self) -> list[dict[str, Any]]:
        """Every process of the log with its modules (for the trace's process and image tables)."""
        out = []
        for proc in self._processes.values():
            out.append({
                "pid": proc.pid,
                "image": proc.process_name or None,
                "image_path": proc.image_path or None,
                "command_line": proc.command_line or None,
                "parent_pid": proc.parent_pid,
                "session_id": proc.session,
                "user": proc.user or None,
                "user_sid": user_sid(proc.user),
                "integrity": proc.integrity or None,
                "start": proc.start_time or None,
                "end": proc.end_time or None,
                "modules": [(m.base_address, m.size, m.path) for m in proc.modules],
                "kernel": proc.pid == 4 or proc.process_name == "System",
            })
        return out

    # ------------------------------------------------------------------ events

    def events(self) -> Iterator[Event]:
        """Every Procmon event as an :class:`Event`, time ordered (ties: log order)."""
        if self._view is None or self._reader is None:
            raise self._closed()
        out: list[Event] = []
        deferred: InputError | None = None
        last = -1
        ordered = True
        for index, offset in enumerate(self._offsets):
            try:
                ev = self._event(index, offset)
            except InputError as exc:
                if not self.keep_going:
                    deferred = exc
                    break
                self.stats.damage.append(exc)
                continue
            if ev.ts < last:
                ordered = False
            last = ev.ts
            out.append(ev)
        if not ordered:
            out.sort(key=lambda e: e.ts)
        self.stats.records += len(out)
        damage = self._table_damage
        if isinstance(self._reader, PartialLog) and self._reader.damage is not None:
            damage = self._reader.damage  # where the events end says more than which table is missing
        if damage is not None:
            damage = InputError(self.path, f"{damage.message} ({len(out)} events read)", offset=damage.offset,
                                record=damage.record)
            if self.keep_going:
                self.stats.damage.append(damage)
            elif deferred is None:
                deferred = damage
        yield from out
        if deferred is not None:
            raise deferred

    def _event(self, index: int, offset: int) -> Event:
        view = self._view
        if offset < self._events_off or offset + RECORD.size > self.size:
            raise InputError(self.path, f"event {index} lies outside the file (offset {offset})", offset=self._array_off + 5 * index, record=index)
        (pidx, tid, klass, op, _u1, _u2, _duration, date, result, depth, _u3, dsize,
         _extra) = RECORD.unpack_from(view, offset)
        details_at = offset + RECORD.size + depth * self.pointer_size
        if details_at + dsize > self.size:
            raise InputError(self.path, f"event {index} overruns the file ({depth} frames, {dsize} detail bytes)",
                             offset=offset, record=index)
        process = self._processes.get(pidx)
        try:
            pe = self._reader.get_event_at_offset(offset)
        except PARSE_ERRORS as exc:
            return self._raw(index, offset, process, tid, klass, op, date, result, details_at, dsize, exc)
        except Exception as exc:
            return self._raw(index, offset, process, tid, klass, op, date, result, details_at, dsize, exc)
        return self._map(pe, op, details_at, dsize)

    def _raw(self, index, offset, process, tid, klass, op, date, result, details_at, dsize, exc) -> Event:
        self.stats.raw_records += 1
        known = klass in CLASSES
        end = min(details_at + min(dsize, 1 << 16), self.size)
        fields: dict[str, Any] = {"data": bytes(self._view[details_at:end]), "length": dsize, "record": index,
                                  "status": result, "status_name": status_name(result)}
        if known:
            self.stats.payload_errors += 1
            fields["error"] = f"procmon-parser could not decode the record: {exc}"
        else:
            self.stats.unknown_versions += 1
            fields["note"] = f"unknown Procmon event class {klass} (operation {op}); kept raw"
        return Event(date, process.pid if process is not None else None, tid, None, PROCMON, klass, op, 0, "raw", fields)

    def _desired_access(self, klass: int, op: int, details_at: int, dsize: int) -> int | None:
        """The desired-access mask as recorded (procmon-parser only gives Procmon's text)."""
        view, end = self._view, details_at + dsize
        if klass == CLASS_REGISTRY and op in REG_OPEN_OPS:
            if details_at + 8 <= end:
                return U32.unpack_from(view, details_at + 4)[0]
            return None
        if klass in (CLASS_FILE_SYSTEM, CLASS_IPC) and op == FILE_CREATE:
            p = details_at + 4 + 5 * self.pointer_size + 0x14
            if p + 4 > end:
                return None
            info = U16.unpack_from(view, p)[0]
            count = info & 0x7FFF
            p += 4 + (count if info >> 15 else 2 * count)
            if p + 4 <= end:
                return U32.unpack_from(view, p)[0]
        return None

    def _map(self, pe, raw_op: int, details_at: int, dsize: int) -> Event:
        process = pe.process
        klass = int(pe.event_class)
        operation = pe.operation
        if pe.unknown_sub_operation is not None:
            opname = "<Unknown>"
        elif getattr(pe, "network_protocol", ""):
            opname = f"{pe.network_protocol} {operation.csv_name}"
        else:
            opname = operation.csv_name
        status = pe.result & 0xFFFFFFFF
        path = pe.path or ""
        pid, tid = process.pid, pe.tid
        details = dict(pe.details) if pe.details else {}
        fields: dict[str, Any] = {"operation": opname, "path": path}
        kind: str
        if klass == CLASS_REGISTRY:
            kind = REGISTRY_KINDS.get(raw_op, "registry.other")
            if raw_op in REG_VALUE_OPS and "\\" in path:
                key, value = path.rsplit("\\", 1)
                fields["path"] = key
                fields["value_name"] = value
                fields["procmon_path"] = path
        elif klass in (CLASS_FILE_SYSTEM, CLASS_IPC):
            kind = "file.create" if raw_op in FILE_CREATE_OPS else "file.op"
            if kind == "file.create":
                fields["irp"] = None  # the ETW field (docs/events.md); a Procmon log does not know it
            if pe.unknown_sub_operation is not None:
                fields["sub_operation"] = pe.unknown_sub_operation
        elif klass == CLASS_PROCESS:
            kind = "procmon." + snake(operation.csv_name)
            if raw_op == P_START:
                kind = "process.start"
                tid = None
                fields.update(image=process.process_name or None, image_path=process.image_path or None,
                              command_line=details.get("Command line", process.command_line) or None,
                              parent_pid=details.get("Parent PID", process.parent_pid),
                              session_id=process.session, user_sid=user_sid(process.user),
                              current_directory=details.get("Current directory"))
            elif raw_op == P_EXIT:
                kind = "process.end"
                tid = None
                fields.update(image=process.process_name or None, exit_status=details.get("Exit Status"))
            elif raw_op == T_CREATE and isinstance(details.get("Thread ID"), int):
                kind = "thread.start"
                fields["creator_tid"] = tid
                tid = details["Thread ID"]
            elif raw_op == T_EXIT:
                kind = "thread.end"
            elif raw_op == LOAD_IMAGE and isinstance(details.get("Image Base"), int):
                kind = "image.load"
                fields.update(image_base=details["Image Base"], image_size=details.get("Image Size", 0), file_name=path)
            elif raw_op in (P_CREATE, P_DEFINED):
                fields.update(child_pid=details.get("PID"), command_line=details.get("Command line"))
        else:
            kind = "procmon." + snake(opname)
        fields["status"] = status
        fields["status_name"] = status_name(status)
        fields["result"] = result_text(status)
        access = self._desired_access(klass, raw_op, details_at, dsize)
        if access is not None and (klass != CLASS_REGISTRY or access):
            fields["desired_access"] = access
            fields["desired_access_names"] = access_names(access, "key" if klass == CLASS_REGISTRY else "file")
        fields["user"] = process.user or None
        fields["integrity"] = process.integrity or None
        fields["process_name"] = process.process_name or None
        fields["category"] = pe.category or None
        fields["duration"] = pe.duration
        fields["details"] = details
        stack = self._stacks.resolve(pe, process, kind, fields)
        if klass == CLASS_REGISTRY:
            nt = registry_nt_path(fields["path"])
            if nt:
                fields["nt_path"] = nt
        fields.setdefault("image_path", process.image_path or None)
        fields.setdefault("command_line", process.command_line or None)
        fields["session"] = process.session
        if klass != CLASS_PROCESS:
            # (not process events: Procmon logs them under the new or the declared parent process)
            self._stacks.saw_thread(pe.tid, process)
        return Event(pe.date_filetime, pid, tid, None, PROCMON, klass, raw_op, 0, kind, fields, stack)


def read_pml(path: str | os.PathLike, keep_going: bool = False) -> Iterator[Event]:
    """Convenience: every event of one log (the reader closes at the end)."""
    with PmlReader(path, keep_going=keep_going) as reader:
        yield from reader.events()
