"""Read Process Monitor logs (.pml) into normalized :class:`~rpctrace.model.Event` records.

Procmon records what ETW lacks for the incidents rpctrace explains: the desired access of every
registry and file open, the account of the process, and the whole stack of every operation.  The
records are decoded by procmon-parser (MIT); this module checks the file before handing it over
(hostile sizes, truncation, unknown versions), reads the few raw values procmon-parser only gives
as text (the desired-access masks), resolves stacks through each process's module list and
recognises RPC server dispatch on the stack.

Mapping (one :class:`Event` per Procmon event, so counts equal procmon-parser's):

* ``ts`` = the event's FILETIME (100 ns UTC, full precision), ``pid``/``tid`` as Procmon shows
  them (process events: ``tid=None`` as for ETL process events, thread events: the thread the
  event is about), ``cpu=None`` (PML does not record it), ``provider`` = :data:`PROCMON`,
  ``id`` = the Procmon event class (1 process, 2 registry, 3 file system, 4 profiling,
  5 network, 6 IPC), ``opcode`` = the raw operation code, ``version`` = 0.
* ``kind``: ``registry.<op>`` as for ETL registry events, ``file.create`` (CreateFile,
  CreatePipe, CreateMailSlot) / ``file.op``, ``process.start``/``process.end``,
  ``thread.start``/``thread.end``, ``image.load``; everything else ``procmon.<operation>``
  (``procmon.process_create``, ``procmon.tcp_send``, ...).  Records procmon-parser cannot decode
  are ``raw`` with their bytes and a ``note``/``error``, never dropped.
* ``fields``: ``operation`` (Procmon's name, as in its CSV export), ``path`` (registry: the key
  in Procmon's ``HKLM\\...``/``HKU\\...``/``HKCU``/``HKCR`` form; value operations split it into
  the key ``path`` and ``value_name`` as ETL events do, Procmon's string stays in
  ``procmon_path``), ``nt_path`` (``\\REGISTRY\\...`` when the root says which: HKCU names the
  *Procmon user's* hive, whose SID the log does not hold, so it gets none), ``status`` (the raw
  NTSTATUS the log holds), ``status_name``, ``result`` (Procmon's text), ``desired_access``
  (int, read from the record) and ``desired_access_names``, ``user``, ``integrity``,
  ``process_name``, ``image_path``, ``command_line``, ``session``, ``category``, ``duration``
  (ticks), ``details`` (procmon-parser's Detail column as a dict), ``frames`` (the stack as
  ``module+0xoffset``) and, when the stack runs through RPC dispatch, ``rpc_dispatch``.

RPC dispatch rule (:func:`find_rpc_dispatch`): PML stores no symbol names, so frames are told
apart by module only.  A stack is "inside RPC server dispatch" when an rpcrt4.dll frame directly
calls (is the caller of) a frame of a module that is not rpcrt4, not a system layer (ntdll,
kernelbase, kernel32, the wow64 layer) and not kernel mode: that callee is the routine rpcrt4
invoked (NdrStubCall*/Invoke/Ndr64 call the manager routine), named as the dispatch ``entry``.
The innermost such transition is taken.  Limits: the entry may be a marshalling layer rather
than the manager routine (DCOM: combase stubs; rpcrt4 calling MIDL_user_allocate or a security
callback also matches, both run while serving a call); a client-side async completion callback
called by rpcrt4 matches too; frames Procmon could not resolve to a module count as "other".
"""

from __future__ import annotations

import bisect
import io
import mmap
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterator, Protocol

from rpctrace.knowledge.stackframes import (  # noqa: F401 - re-exported for callers of the reader
    COM_MODULES,
    KERNEL,
    OTHER,
    RPC,
    RPC_MODULE as _RPC_MODULE,
    SYSTEM,
    SYSTEM_MODULES,
    Frame,
    find_rpc_dispatch,
)
from rpctrace.errors import InputError
from rpctrace.knowledge import access
from rpctrace.knowledge.providers import PROCMON
from rpctrace.knowledge.status import ntstatus_name
from rpctrace.model import Event, Stack

#: The provider GUID rpctrace gives Procmon events: uuid5(NAMESPACE_URL, "rpctrace:procmon").

PML_MAGIC = b"PML_"
PML_VERSIONS = (9,)  # what procmon-parser reads (Process Monitor 3.x logs)
MAX_THREADS = 1 << 20  # thread ids remembered with their process (creators of Process Start)
MAX_CREATOR_CANDIDATES = 4096  # processes tried as the creator of one Process Start
MAX_CREATOR_FRAMES = 64  # user frames compared per candidate
HEADER_SIZE = 0x3A8
#: the capturing machine's computer name in the header: UTF-16LE, 16 characters with the NUL
#: (procmon-parser reads the same field: ``Header.computer_name``, 0x20 bytes after the
#: pointer-size flag)
COMPUTER_NAME = (0x0C, 0x20)
_COMMON = struct.Struct("<IIIHHIQQIHHII")  # the record header procmon-parser reads (52 bytes)
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

CLASS_PROCESS, CLASS_REGISTRY, CLASS_FILE_SYSTEM, CLASS_PROFILING, CLASS_NETWORK, CLASS_IPC = 1, 2, 3, 4, 5, 6

#: Procmon registry operation code -> kind (the registry.* kinds of docs/events.md)
REGISTRY_KINDS: dict[int, str] = {
    0: "registry.open",  # RegOpenKey
    1: "registry.create",  # RegCreateKey
    2: "registry.close",  # RegCloseKey
    3: "registry.query",  # RegQueryKey
    4: "registry.set_value",  # RegSetValue
    5: "registry.query_value",  # RegQueryValue
    6: "registry.enum_value",  # RegEnumValue
    7: "registry.enum_key",  # RegEnumKey
    8: "registry.set_information",  # RegSetInfoKey
    9: "registry.delete",  # RegDeleteKey
    10: "registry.delete_value",  # RegDeleteValue
    11: "registry.flush",  # RegFlushKey
    12: "registry.other",  # RegLoadKey
    13: "registry.other",  # RegUnloadKey
    14: "registry.other",  # RegRenameKey
    15: "registry.query_multiple_value",  # RegQueryMultipleValueKey
    16: "registry.set_security",  # RegSetKeySecurity
    17: "registry.query_security",  # RegQueryKeySecurity
}
_REG_VALUE_OPS = frozenset({4, 5, 10})  # the path names a value: key\value
_REG_OPEN_OPS = frozenset({0, 1})
FILE_CREATE_OPS = frozenset({20, 21, 39})  # IRP_MJ_CREATE, _CREATE_NAMED_PIPE, _CREATE_MAILSLOT
_FILE_CREATE = 20

# Process class operations
_P_DEFINED, _P_CREATE, _P_EXIT, _T_CREATE, _T_EXIT, _LOAD_IMAGE, _T_PROFILE, _P_START = 0, 1, 2, 3, 4, 5, 6, 7

# ---------------------------------------------------------------------------- results / NTSTATUS

def status_name(code: int | None) -> str | None:
    """The NTSTATUS name of ``code``, from the same table the ETL path uses."""
    return ntstatus_name(code)


def result_text(code: int) -> str:
    """What Procmon prints in its Result column for an NTSTATUS (``ACCESS DENIED``, ``0xC0000BB1``)."""
    from procmon_parser.consts import get_error_message

    return get_error_message(code & 0xFFFFFFFF)


_RESULT_CODES: dict[str, int] | None = None


def result_code(text: str) -> int | None:
    """Procmon's Result text back to the NTSTATUS code (``"NAME NOT FOUND"`` -> 0xC0000034)."""
    global _RESULT_CODES
    text = text.strip()
    if re.fullmatch(r"0x[0-9A-Fa-f]{1,8}", text):
        return int(text, 16)
    if _RESULT_CODES is None:
        table: dict[str, int] = {}
        try:  # procmon-parser's own table (private, so guarded); ours covers the common codes
            from procmon_parser import consts

            for code, message in getattr(consts, "_ErrorCodeMessages", {}).items():
                table.setdefault(message, code)
        except ImportError:  # pragma: no cover - procmon-parser is a dependency
            pass
        _RESULT_CODES = table
    return _RESULT_CODES.get(text)


def access_names(mask: int, object_type: str = "key") -> list[str]:
    """Names of the rights in ``mask`` (``0xe`` key -> KEY_SET_VALUE, KEY_CREATE_SUB_KEY, ...),
    from rpctrace.knowledge.access so every source names rights the same way."""
    return access.decode(mask & 0xFFFFFFFF, object_type)


# ---------------------------------------------------------------------------- registry paths

_WELL_KNOWN_USERS = {
    "NT AUTHORITY\\SYSTEM": "S-1-5-18",
    "NT AUTHORITY\\LOCAL SERVICE": "S-1-5-19",
    "NT AUTHORITY\\NETWORK SERVICE": "S-1-5-20",
}


def user_sid(user: str | None) -> str | None:
    """The SID of a well-known account name as Procmon prints it (others: None, PML has no SIDs)."""
    return _WELL_KNOWN_USERS.get((user or "").upper()) if user else None


_NT_ROOTS = (
    ("HKLM", "\\REGISTRY\\MACHINE"),
    ("HKU", "\\REGISTRY\\USER"),
    ("HKCR", "\\REGISTRY\\MACHINE\\SOFTWARE\\Classes"),
)


def registry_nt_path(path: str) -> str | None:
    """``HKLM\\X`` -> ``\\REGISTRY\\MACHINE\\X`` (HKU, HKCR too); None when the root cannot say."""
    head, sep, rest = path.partition("\\")
    upper = head.upper()
    for short, nt in _NT_ROOTS:
        if upper == short:
            return nt + sep + rest if rest else nt
    return None


# ---------------------------------------------------------------------------- stacks

# What a frame is (RPC runtime, system layer, kernel, other) and the RPC-dispatch rule live in
# rpctrace.knowledge.stackframes: explain applies them to ETL stacks too.


def module_display(path: str) -> str:
    """How rpctrace names a module in ``module+0xoffset`` (the rule of trace.model.ImageInfo)."""
    name = path.replace("/", "\\").rsplit("\\", 1)[-1]
    return name[:-4] if name.lower().endswith((".dll", ".exe", ".sys")) else name


class ModuleMap:
    """Address -> module for one process, falling back to the kernel's modules.

    ``modules`` are (base, size, path) triples; ``pointer_size`` (4 or 8) only decides where kernel
    space starts for addresses no module holds (0x80000000 on 32-bit Windows, 0xFFFF800000000000 on
    64-bit).  Results are cached per address: stacks repeat.
    """

    def __init__(self, modules, pointer_size: int, kernel: "ModuleMap | None" = None, is_kernel: bool = False):
        mods = sorted(((int(b), int(s), p or "") for b, s, p in modules if s), key=lambda m: m[0])
        self._bases = [m[0] for m in mods]
        self._mods = mods
        self._kernel = kernel
        self._is_kernel = is_kernel
        self._kernel_start = 0xFFFF800000000000 if pointer_size == 8 else 0x80000000
        self._mask = (1 << (8 * pointer_size)) - 1
        self._cache: dict[int, Frame] = {}

    def _find(self, address: int):
        i = bisect.bisect_right(self._bases, address) - 1
        steps = 0
        while i >= 0 and steps < 8:
            base, size, path = self._mods[i]
            if base <= address < base + size:
                return base, path
            i -= 1
            steps += 1
        return None

    def holds(self, address: int) -> bool:
        """Whether one of this map's own modules (not the kernel's) holds ``address``."""
        return self._find(address & self._mask) is not None

    def frame(self, address: int) -> Frame:
        hit = self._cache.get(address)
        if hit is not None:
            return hit
        address &= self._mask
        found = self._find(address)
        in_kernel = self._is_kernel
        if found is None and self._kernel is not None:
            found = self._kernel._find(address)
            in_kernel = found is not None
        if found is None:
            klass = KERNEL if address >= self._kernel_start else OTHER
            fr = Frame(address, f"0x{address:x}", None, None, klass)
        else:
            base, path = found
            low = path.replace("/", "\\").rsplit("\\", 1)[-1].lower()
            if in_kernel or address >= self._kernel_start:
                klass = KERNEL
            elif low == _RPC_MODULE:
                klass = RPC
            elif low in SYSTEM_MODULES:
                klass = SYSTEM
            else:
                klass = OTHER
            fr = Frame(address, f"{module_display(path)}+0x{address - base:x}", path, address - base, klass)
        if len(self._cache) < 1 << 20:
            self._cache[address] = fr
        return fr


# ---------------------------------------------------------------------------- the reader


@dataclass
class PmlStats:
    """What a read found besides events."""

    records: int = 0
    declared_events: int = 0
    raw_records: int = 0
    payload_errors: int = 0
    unknown_versions: int = 0
    pml_version: int | None = None
    pointer_size: int | None = None
    computer: str | None = None  # the computer name of the header (None when empty)
    damage: list[InputError] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "format": "pml",
            "computer": self.computer,
            "records": self.records,
            "declared_events": self.declared_events,
            "raw_records": self.raw_records,
            "payload_errors": self.payload_errors,
            "unknown_versions": self.unknown_versions,
            "pml_version": self.pml_version,
            "pointer_size": self.pointer_size,
            "events_lost": 0,
            "buffers_lost": 0,
            "damage": [d.one_line() for d in self.damage],
        }


_PARSE_ERRORS = (struct.error, ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError,
                 EOFError, NotImplementedError, RuntimeError, ZeroDivisionError, UnicodeError)


def _snake(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_") or "unknown"


class _LogTables(Protocol):
    """What the reader asks of procmon-parser's PMLStreamReader, or of :class:`_PartialLog` in
    its stead (procmon-parser has no type information: its records are ``Any`` here)."""

    def get_event_at_offset(self, offset: int) -> Any: ...

    def processes(self) -> Any: ...

    def system_details(self) -> Any: ...


class PmlReader:
    """Reads one Process Monitor log.  Same interface as :class:`~rpctrace.sources.etl.reader.EtlReader`.

    With ``keep_going=False`` the first damaged record raises :class:`InputError` after the events
    read before it; with ``keep_going=True`` damage is counted in ``stats.damage`` and skipped.
    A file whose header or version cannot be read raises InputError when opened.  Procmon writes
    its tables after the events (event offsets, processes, strings, icons, hosts and ports); when
    they are missing or cut (a log copied while Procmon ran, a truncated file), every complete
    event before the damage is still read (:class:`_PartialLog`) with what the tables would have
    given (process ids and names, modules, host names) left unknown, and the damage is reported
    after them.
    """

    def __init__(self, path: str | os.PathLike, keep_going: bool = False):
        self.path = os.fspath(path)
        self.keep_going = keep_going
        self.stats = PmlStats()
        self._file: BinaryIO | None = None
        self._view: mmap.mmap | None = None
        self._reader: _LogTables | None = None
        try:
            self._file = open(self.path, "rb")
            self.size = os.fstat(self._file.fileno()).st_size
        except OSError as exc:
            raise InputError(self.path, f"cannot open: {exc.strerror or exc}") from None
        self._table_damage: InputError | None = None
        try:
            if self.size == 0:
                raise InputError(self.path, "the file is empty, not a Process Monitor log", offset=0)
            self._view = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self._check_header()
            if self._table_damage is None:
                try:
                    self._open_parser()
                except InputError as exc:
                    self._table_damage = exc
            if self._table_damage is not None:
                partial = self._reader = _PartialLog(self)
                self._offsets = partial.offsets
            self._tables()
        except InputError:
            self.close()
            raise

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        if isinstance(self._reader, _PartialLog):
            self._reader.close()
        self._reader = None
        if self._view is not None:
            try:
                self._view.close()
            except BufferError:  # pragma: no cover
                pass
            self._view = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "PmlReader":
        return self

    def _mapped(self) -> mmap.mmap:
        """The file's bytes (:class:`InputError` once the reader is closed)."""
        if self._view is None:
            raise InputError(self.path, "reader is closed")
        return self._view

    def _log(self) -> _LogTables:
        """procmon-parser's reader of the log's tables, or :class:`_PartialLog` in its stead."""
        if self._reader is None:
            raise InputError(self.path, "reader is closed")
        return self._reader

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ header

    def _check_header(self) -> None:
        """Check everything procmon-parser would trust: sizes, offsets, counts, version."""
        v, size = self._mapped(), self.size
        if v[:4] != PML_MAGIC:
            raise InputError(self.path, "not a Process Monitor log (no PML_ signature)", offset=0)
        if size < HEADER_SIZE:
            raise InputError(self.path, f"truncated: {size} bytes, the PML header alone is {HEADER_SIZE}", offset=size)
        version = _U32.unpack_from(v, 4)[0]
        self.stats.pml_version = version
        if version not in PML_VERSIONS:
            raise InputError(
                self.path,
                f"unsupported PML version {version} (rpctrace reads version {', '.join(map(str, PML_VERSIONS))}, "
                "written by Process Monitor 3.x; save the log again with a current Procmon)",
                offset=4,
            )
        is64 = _U32.unpack_from(v, 8)[0]
        if is64 not in (0, 1):
            raise InputError(self.path, f"bad PML header: pointer-size flag {is64}", offset=8)
        self.pointer_size = 8 if is64 else 4
        self.stats.pointer_size = self.pointer_size
        at, size_ = COMPUTER_NAME
        name = bytes(v[at:at + size_]).decode("utf-16-le", "replace").split("\0", 1)[0].strip()
        self.stats.computer = name or None
        self.declared = _U32.unpack_from(v, 0x234)[0]
        self.stats.declared_events = self.declared
        names = ("events", "event offsets", "process table", "strings table", "icon table")
        offs = [_U64.unpack_from(v, 0x240 + 8 * i)[0] for i in range(5)]
        header_size = _U64.unpack_from(v, 0x398)[0]
        hosts = _U64.unpack_from(v, 0x3A0)[0]
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
        v, size = self._mapped(), self.size
        pos = at
        for entry_head, length_at in ((20, 16), (8, 4)):  # hosts: ip[16] len; ports: port, tcp, len
            if pos + 4 > size:
                raise InputError(self.path, "truncated: the file ends inside its host and port tables", offset=size)
            count = _U32.unpack_from(v, pos)[0]
            pos += 4
            for _ in range(count):
                if pos + entry_head > size:
                    raise InputError(self.path, "truncated: the file ends inside its host and port tables", offset=size)
                pos += entry_head + _U32.unpack_from(v, pos + length_at)[0]
            if pos > size:
                raise InputError(self.path, "truncated: the file ends inside its host and port tables", offset=size)

    def _open_parser(self) -> None:
        try:
            from procmon_parser import PMLStreamReader
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise InputError(self.path, f"procmon-parser is not installed: {exc}") from None
        try:
            assert self._file is not None  # opened in __init__, before the parser
            self._file.seek(0)
            parser = self._reader = PMLStreamReader(self._file, should_get_stacktrace=True, should_get_details=True)
            self._offsets = list(parser.events_offsets)
        except InputError:
            raise
        except (MemoryError, *_PARSE_ERRORS, Exception) as exc:  # procmon-parser's PMLError is a RuntimeError
            raise InputError(self.path, f"cannot read the Process Monitor log tables: {exc}", offset=0) from None

    def _tables(self) -> None:
        """Module maps per process (procmon-parser's process table, keyed by process index)."""
        table = getattr(self._reader, "_process_table", None)
        if not isinstance(table, dict):  # pragma: no cover - procmon-parser internals changed
            table = dict(enumerate(self._log().processes()))
        self._processes = table
        kernel_mods: list[tuple[int, int, str]] = []  # (base, size, path) of the System process's modules
        for proc in table.values():
            if proc.pid == 4 or proc.process_name == "System":
                kernel_mods.extend((m.base_address, m.size, m.path) for m in proc.modules)
        self._kernel = ModuleMap(kernel_mods, self.pointer_size, is_kernel=True)
        self._maps: dict[int, ModuleMap] = {}
        self._by_pid: dict[int, list] = {}  # pid -> its processes (pids are reused), for creators
        self._thread_owner: dict[int, Any] = {}  # tid -> the process it last logged an event in
        for proc in table.values():
            if isinstance(proc.pid, int):
                self._by_pid.setdefault(proc.pid, []).append(proc)

    def _creator(self, tid, parent_pid, child, when: int, stack):
        """``(creator, helper)`` for ``child``'s Process Start: the process whose thread ``tid``
        logged it, and so whose address space the stack is; ``helper`` is another process whose
        module list names the system modules' frames the creator's list does not (their bases
        are the same in every process of a boot), or None.

        The creator is the process ``tid`` last logged an event in; else a process that holds a
        frame of a module of its own (not a system module: appinfo, rpcss, an .exe), the one
        holding the most frames; else the declared parent.  The parent id alone is not enough:
        a process created on another's behalf names that other one as its parent (UAC's Appinfo
        service creates elevated processes with the caller's Explorer as their parent, DCOM's
        launcher those of the activating client, and Procmon logs the Process Create there too).
        (None, None) when the log has none of them."""
        parents = [p for p in self._by_pid.get(parent_pid, ()) if p is not child] if isinstance(parent_pid, int) else []
        alive = [p for p in self._processes.values()
                 if p is not child and p.pid != 4 and p.process_name != "System"
                 and (not p.start_time or p.start_time <= when) and (not p.end_time or when <= p.end_time)]
        user = [a for a in stack if not self._kernel.holds(a)][:MAX_CREATOR_FRAMES]
        best, best_score, best_own = None, 0, False
        seen: set[int] = set()
        for proc in (parents + alive)[:MAX_CREATOR_CANDIDATES]:
            if id(proc) in seen:
                continue
            seen.add(id(proc))
            mm = self.module_map(proc)
            held = [mm.frame(a) for a in user if mm.holds(a)]
            own = any(f.klass == OTHER for f in held)
            if (own, len(held)) > (best_own, best_score):
                best, best_score, best_own = proc, len(held), own
        owner = self._thread_owner.get(tid) if isinstance(tid, int) else None
        if owner is None or owner is child:
            owner = best if best_own else (parents[0] if parents else best)
        return owner, (best if best is not owner else None)

    def module_map(self, process) -> ModuleMap:
        key = id(process)
        mm = self._maps.get(key)
        if mm is None:
            if process.pid == 4 or process.process_name == "System":
                mm = self._kernel
            else:
                mm = ModuleMap(((m.base_address, m.size, m.path) for m in process.modules), self.pointer_size,
                               kernel=self._kernel)
            self._maps[key] = mm
        return mm

    def system_details(self) -> dict:
        try:
            return dict(self._log().system_details())
        except Exception:
            return {}

    def process_table(self) -> list[dict]:
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
            raise InputError(self.path, "reader is closed")
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
        if isinstance(self._reader, _PartialLog) and self._reader.damage is not None:
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
        view = self._mapped()
        if offset < self._events_off or offset + _COMMON.size > self.size:
            raise InputError(self.path, f"event {index} lies outside the file (offset {offset})", offset=self._array_off + 5 * index, record=index)
        (pidx, tid, klass, op, _u1, _u2, _duration, date, result, depth, _u3, dsize,
         _extra) = _COMMON.unpack_from(view, offset)
        details_at = offset + _COMMON.size + depth * self.pointer_size
        if details_at + dsize > self.size:
            raise InputError(self.path, f"event {index} overruns the file ({depth} frames, {dsize} detail bytes)",
                             offset=offset, record=index)
        process = self._processes.get(pidx)
        try:
            pe = self._log().get_event_at_offset(offset)
        except _PARSE_ERRORS as exc:
            return self._raw(index, offset, process, tid, klass, op, date, result, details_at, dsize, exc)
        except Exception as exc:
            return self._raw(index, offset, process, tid, klass, op, date, result, details_at, dsize, exc)
        return self._map(pe, op, details_at, dsize)

    def _raw(self, index, offset, process, tid, klass, op, date, result, details_at, dsize, exc) -> Event:
        self.stats.raw_records += 1
        known = klass in (CLASS_PROCESS, CLASS_REGISTRY, CLASS_FILE_SYSTEM, CLASS_PROFILING, CLASS_NETWORK, CLASS_IPC)
        end = min(details_at + min(dsize, 1 << 16), self.size)
        fields: dict[str, Any] = {"data": bytes(self._mapped()[details_at:end]), "length": dsize, "record": index,
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
        view, end = self._mapped(), details_at + dsize
        if klass == CLASS_REGISTRY and op in _REG_OPEN_OPS:
            if details_at + 8 <= end:
                return _U32.unpack_from(view, details_at + 4)[0]
            return None
        if klass in (CLASS_FILE_SYSTEM, CLASS_IPC) and op == _FILE_CREATE:
            p = details_at + 4 + 5 * self.pointer_size + 0x14
            if p + 4 > end:
                return None
            info = _U16.unpack_from(view, p)[0]
            count = info & 0x7FFF
            p += 4 + (count if info >> 15 else 2 * count)
            if p + 4 <= end:
                return _U32.unpack_from(view, p)[0]
        return None

    def _frames(self, process, stack) -> list[Frame]:
        mm = self.module_map(process)
        return [mm.frame(a) for a in stack]

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
            if raw_op in _REG_VALUE_OPS and "\\" in path:
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
            kind = "procmon." + _snake(operation.csv_name)
            if raw_op == _P_START:
                kind = "process.start"
                tid = None
                fields.update(image=process.process_name or None, image_path=process.image_path or None,
                              command_line=details.get("Command line", process.command_line) or None,
                              parent_pid=details.get("Parent PID", process.parent_pid),
                              session_id=process.session, user_sid=user_sid(process.user),
                              current_directory=details.get("Current directory"))
            elif raw_op == _P_EXIT:
                kind = "process.end"
                tid = None
                fields.update(image=process.process_name or None, exit_status=details.get("Exit Status"))
            elif raw_op == _T_CREATE and isinstance(details.get("Thread ID"), int):
                kind = "thread.start"
                fields["creator_tid"] = tid
                tid = details["Thread ID"]
            elif raw_op == _T_EXIT:
                kind = "thread.end"
            elif raw_op == _LOAD_IMAGE and isinstance(details.get("Image Base"), int):
                kind = "image.load"
                fields.update(image_base=details["Image Base"], image_size=details.get("Image Size", 0), file_name=path)
            elif raw_op in (_P_CREATE, _P_DEFINED):
                fields.update(child_pid=details.get("PID"), command_line=details.get("Command line"))
        else:
            kind = "procmon." + _snake(opname)
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
        stack = tuple(pe.stacktrace) if pe.stacktrace else None
        owner = process
        if stack and kind == "process.start":
            # Procmon logs Process Start under the new process, but the thread that logged it,
            # and so the stack, is the creator's: the frames are the creator's modules
            fields["creator_tid"] = pe.tid
            owner, helper = self._creator(pe.tid, fields.get("parent_pid"), process, pe.date_filetime, stack)
            fields["stack_pid"] = owner.pid if owner is not None else None
        if stack and owner is None:
            # the creator is not in the log: its modules are unknown, so are the frames' names
            fields["frames"] = [f"0x{a:x}" for a in stack]  # the split is inferred from the addresses
        elif stack:
            frames = self._frames(owner, stack)
            if owner is not process and helper is not None:  # a Process Start: see _creator
                named = self.module_map(helper)
                frames = [named.frame(f.address) if f.module_path is None and named.holds(f.address)
                          and named.frame(f.address).klass in (SYSTEM, RPC) else f for f in frames]
            fields["frames"] = [f.text for f in frames]
            kernel = 0
            while kernel < len(frames) and frames[kernel].klass == KERNEL:
                kernel += 1
            stack = Stack(stack[:kernel], stack[kernel:])
            dispatch = find_rpc_dispatch(frames)
            if dispatch is not None:
                fields["rpc_dispatch"] = dispatch
        if klass == CLASS_REGISTRY:
            nt = registry_nt_path(fields["path"])
            if nt:
                fields["nt_path"] = nt
        fields.setdefault("image_path", process.image_path or None)
        fields.setdefault("command_line", process.command_line or None)
        fields["session"] = process.session
        if klass != CLASS_PROCESS and isinstance(pe.tid, int) \
                and (pe.tid in self._thread_owner or len(self._thread_owner) < MAX_THREADS):
            # (not process events: Procmon logs them under the new or the declared parent process)
            self._thread_owner[pe.tid] = process
        return Event(pe.date_filetime, pid, tid, None, PROCMON, klass, raw_op, 0, kind, fields, stack)


class _TolerantStrings(list):
    """The strings table as far as it could be read: an index past it reads as ""."""

    def __getitem__(self, index):
        try:
            return super().__getitem__(index)
        except (IndexError, TypeError):
            return ""


class _PartialLog:
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

    def __init__(self, reader: "PmlReader") -> None:
        from procmon_parser.logs import Process
        from procmon_parser.stream_helper import get_pvoid_reader
        from procmon_parser.stream_logs_detail_format import PmlMetadata

        self.reader = reader
        self.path = reader.path
        self.damage: InputError | None = None
        self._Process = Process
        view, size, ptr = reader._mapped(), reader.size, reader.pointer_size
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
            offs = [_U32.unpack_from(self.view, array + 5 * i)[0] for i in range(declared)]
            if all(r._events_off <= o < array for o in offs):
                return offs
        return self._walk(array if r._events_off < array <= self.size else self.size)

    def _walk(self, stop: int) -> list[int]:
        view, ptr = self.view, self.ptr
        out: list[int] = []
        pos = self.reader._events_off
        while pos + _COMMON.size <= stop:
            (_pidx, _tid, klass, _op, _u1, _u2, _dur, _date, _res, depth, _u3, dsize,
             extra) = _COMMON.unpack_from(view, pos)
            end = pos + _COMMON.size + depth * ptr + dsize
            if klass not in (CLASS_PROCESS, CLASS_REGISTRY, CLASS_FILE_SYSTEM, CLASS_PROFILING, CLASS_NETWORK,
                             CLASS_IPC) or depth > self.MAX_DEPTH:
                if not any(view[pos:pos + _COMMON.size]):
                    break  # zeros: space Procmon had not filled yet
                self.damage = InputError(self.path, f"event {len(out)} has a header no Procmon writes "
                                         f"(class {klass}, {depth} frames); the events after it are not read",
                                         offset=pos, record=len(out))
                return out
            if extra and extra == end - pos and end + 2 <= stop:
                end += 2 + _U16.unpack_from(view, end)[0]
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
        count = _U32.unpack_from(view, at)[0]
        count = min(count, (size - at - 4) // 4)
        for i in range(count):
            off = at + _U32.unpack_from(view, at + 4 + 4 * i)[0]
            if off + 4 > size:
                break
            n = _U32.unpack_from(view, off)[0]
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


def read_pml(path: str | os.PathLike, keep_going: bool = False) -> Iterator[Event]:
    """Convenience: every event of one log (the reader closes at the end)."""
    with PmlReader(path, keep_going=keep_going) as reader:
        yield from reader.events()
