"""Payload decoders for NT Kernel Logger (MOF class) events.

One function per event family, each taking the record's payload as ``(data, pos, end)`` plus the
logger's pointer size and the event version, and returning ``(kind, fields, pid, tid)``.  ``pid``
and ``tid`` are :data:`FROM_HEADER` when the header's ids are right, ``None`` when the event has
no such id, or the id taken from the payload (Process/Thread/Image/StackWalk/CSwitch/FileIo),
as TraceEvent's FixupData does.

Layouts and offsets: ../shared/reference/etw-and-alpc-facts.md §1, §3a, §4 and
etl-container-and-thread-ids.md §2-§4 (x86 offsets follow from the pointer size); the fixed-size
structures among them (CSwitch, the heads of Process, Registry, StackWalk and FileIo Create) are
declared in :mod:`rpctrace.sources.etl.layouts`.  A payload
shorter than its layout raises :class:`PayloadError`; the reader then keeps the event as ``raw``.
"""

from __future__ import annotations

import struct
from typing import Any, Callable

from rpctrace.knowledge import providers as P
from rpctrace.sources.etl.layouts import ALPC_WAIT_NEW, CSWITCH, FILE_IO_CREATE, PROCESS_IDS, REGISTRY, STACK_WALK
from rpctrace.security.binary import sid_from_bytes
from rpctrace.security.model import SecurityDescriptorError

FROM_HEADER = -1


class PayloadError(ValueError):
    """The payload does not match the layout its header promised."""


class NotDecoded(Exception):
    """A well-formed event rpctrace has no use for: the reader keeps it ``raw``, with no error."""


_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")
_PTR = {4: _U32, 8: _U64}


def _need(end: int, pos: int, n: int) -> None:
    if pos + n > end:
        raise PayloadError(f"payload too short: needs {n} bytes at +{pos}, has {max(0, end - pos)}")


def utf16z(data: bytes, pos: int, end: int) -> tuple[str, int]:
    """NUL-terminated UTF-16LE string at ``pos``; an unterminated one runs to ``end``."""
    stop = pos
    while True:
        stop = data.find(b"\x00\x00", stop, end)
        if stop < 0:
            cut = end - ((end - pos) & 1)
            return data[pos:cut].decode("utf-16-le", "replace"), end
        if (stop - pos) & 1:
            stop += 1
            continue
        return data[pos:stop].decode("utf-16-le", "replace"), stop + 2


def ansiz(data: bytes, pos: int, end: int) -> tuple[str, int]:
    """NUL-terminated 8-bit string (kernel image names, ALPC port names)."""
    stop = data.find(b"\x00", pos, end)
    if stop < 0:
        return data[pos:end].decode("latin-1"), end
    return data[pos:stop].decode("latin-1"), stop + 1


def sid_at(data: bytes, pos: int, end: int, ptr: int, null_token: bool = False) -> tuple[str | None, int]:
    """The UserSID field of Process events: 0 (no SID, 4 bytes) or TOKEN_USER followed by the SID.

    ``null_token``: read a TOKEN_USER whose SID pointer is 0 as TOKEN_USER + SID anyway (some
    writers, sawbuck's among them, log the structure with a null pointer); only the layout
    check of :func:`classic_kernel` can tell the two apart, by the payload length.
    """
    _need(end, pos, 4)
    if _U32.unpack_from(data, pos)[0] == 0 and not null_token:
        return None, pos + 4
    start = pos + 2 * ptr  # SID_AND_ATTRIBUTES {PSID, Attributes} padded to two pointers
    try:
        text, length = sid_from_bytes(data, start, end)  # the one binary-SID decoder
    except SecurityDescriptorError as exc:
        raise PayloadError(f"UserSID: {exc.message}") from None
    return text, start + length


class _Strict:
    """Layout checks for payloads whose pointer size is not known for sure (classic headers):
    every string ends inside the payload and reads as text, and the layout ends where the
    payload does (up to alignment padding of zeros)."""

    @staticmethod
    def text(data: bytes, start: int, nxt: int, end: int, wide: bool, value: str) -> None:
        width = 2 if wide else 1
        if nxt > end or data[nxt - width : nxt] != bytes(width):
            raise PayloadError("a string runs past the payload")
        if value and not value.isprintable():
            raise PayloadError("a string holds what is not text")

    @staticmethod
    def addresses(fields: dict, names, ptr: int) -> None:
        """64-bit virtual addresses are canonical: below 0x8000_0000_0000 or from
        0xFFFF_8000_0000_0000 up (a 32-bit payload read as 64-bit puts other fields' bytes in the
        top half)."""
        if ptr != 8:
            return
        for name in names:
            v = fields.get(name)
            if v is not None and 0x0000800000000000 <= v < 0xFFFF800000000000:
                raise PayloadError(f"{name} {v:#x} is not an address")

    @staticmethod
    def done(data: bytes, off: int, end: int, ptr: int) -> None:
        if off > end:
            raise PayloadError(f"the layout runs {off - end} bytes past the payload")
        if end - off >= ptr or any(data[off:end]):
            raise PayloadError(f"the layout leaves {end - off} bytes of the payload unread")


def _utf16(data: bytes, pos: int, end: int, strict: bool) -> tuple[str, int]:
    text, nxt = utf16z(data, pos, end)
    if strict:
        _Strict.text(data, pos, nxt, end, True, text)
    return text, nxt


def _ansi(data: bytes, pos: int, end: int, strict: bool) -> tuple[str, int]:
    text, nxt = ansiz(data, pos, end)
    if strict:
        _Strict.text(data, pos, nxt, end, False, text)
    return text, nxt


# ---------------------------------------------------------------- Process (group 3)

_PROCESS_KINDS = {1: "process.start", 2: "process.end", 3: "process.rundown", 4: "process.rundown", 39: "process.end"}


def process(data: bytes, pos: int, end: int, ptr: int, version: int, opcode: int, strict: bool = False,
            null_token: bool = False):
    """Process Start/End/DCStart/DCEnd/Defunct in every version of the MOF classes:

    * V0: ProcessId and ParentId (pointer-sized), UserSID, ImageFileName (8-bit);
    * V1: PageDirectoryBase (pointer), ProcessId, ParentId, SessionId, ExitStatus, UserSID,
      ImageFileName;
    * V2: UniqueProcessKey (pointer) instead of PageDirectoryBase, then CommandLine (UTF-16);
    * V3: DirectoryTableBase (pointer) after ExitStatus; V4: Flags after it, and
      PackageFullName, ApplicationId after the command line.
    """
    if opcode == 11:  # Terminate: just the process id
        _need(end, pos, 4)
        return "process.other", {"event": "terminate"}, _U32.unpack_from(data, pos)[0], None
    kind = _PROCESS_KINDS.get(opcode)
    if kind is None:
        raise NotDecoded
    u = _PTR[ptr]
    fields: dict[str, Any] = {}
    if version == 0:
        _need(end, pos, 2 * ptr)
        pid, ppid = u.unpack_from(data, pos)[0], u.unpack_from(data, pos + ptr)[0]
        if strict and (pid | ppid) > 0xFFFFFFFF:
            raise PayloadError("process ids wider than 32 bits")
        pid &= 0xFFFFFFFF
        fields["parent_pid"] = ppid & 0xFFFFFFFF
        off = pos + 2 * ptr
    else:
        _need(end, pos, ptr + PROCESS_IDS.size)
        first = u.unpack_from(data, pos)[0]
        pid, ppid, session, exit_status = PROCESS_IDS.unpack_from(data, pos + ptr)
        if version == 1:
            fields["directory_table_base"] = first  # PageDirectoryBase
        else:
            fields["process_key"] = first
        fields.update(parent_pid=ppid, session_id=session, exit_status=exit_status)
        off = pos + ptr + PROCESS_IDS.size
        if version >= 3:
            _need(end, off, ptr)
            fields["directory_table_base"] = u.unpack_from(data, off)[0]
            off += ptr
        if version >= 4:
            _need(end, off, 4)
            fields["flags"] = _U32.unpack_from(data, off)[0]
            off += 4
    fields["user_sid"], off = sid_at(data, off, end, ptr, null_token)
    fields["image"], off = _ansi(data, off, end, strict)
    if version >= 2:
        fields["command_line"], off = _utf16(data, off, end, strict) if off < end or strict else ("", off)
    if version >= 4:
        fields["package_full_name"], off = _utf16(data, off, end, strict) if off < end or strict else ("", off)
        fields["application_id"], off = _utf16(data, off, end, strict) if off < end or strict else ("", off)
    if opcode == 39 and off + 8 <= end:
        fields["exit_time"] = _U64.unpack_from(data, off)[0]
        off += 8
    if strict:
        _Strict.addresses(fields, ("process_key",), ptr)
        _Strict.done(data, off, end, ptr)
    return kind, fields, pid, None


# ---------------------------------------------------------------- Thread (group 5)

_THREAD_KINDS = {1: "thread.start", 2: "thread.end", 3: "thread.rundown", 4: "thread.rundown"}


def thread(data: bytes, pos: int, end: int, ptr: int, version: int, opcode: int, strict: bool = False):
    """Thread Start/End/DCStart/DCEnd in every version of the MOF classes:

    * V0: TThreadId, ProcessId (note the order);
    * V1: ProcessId, TThreadId, then for Start/DCStart StackBase, StackLimit, UserStackBase,
      UserStackLimit, StartAddr, Win32StartAddr (pointers) and WaitMode (a byte);
    * V2: ProcessId, TThreadId, the six pointers, TebBase (pointer), SubProcessTag;
    * V3: Affinity in place of StartAddr, then BasePriority, PagePriority, IoPriority,
      ThreadFlags (bytes); V4: ThreadName (UTF-16) after them.
    """
    if opcode == 36:
        return cswitch(data, pos, end)
    kind = _THREAD_KINDS.get(opcode)
    if kind is None:
        raise NotDecoded
    _need(end, pos, 8)
    fields: dict[str, Any] = {}
    if version == 0:
        tid, pid = struct.unpack_from("<II", data, pos)
        off = pos + 8
    else:
        pid, tid = struct.unpack_from("<II", data, pos)
        off = pos + 8
    u = _PTR[ptr]
    if version == 1 and end - off >= 6 * ptr + 1:
        for name in ("stack_base", "stack_limit", "user_stack_base", "user_stack_limit", "start_address",
                     "win32_start_address"):
            fields[name] = u.unpack_from(data, off)[0]
            off += ptr
        fields["wait_mode"] = struct.unpack_from("<b", data, off)[0]
        off += 1
    elif version >= 2:
        names = ("stack_base", "stack_limit", "user_stack_base", "user_stack_limit",
                 "start_address" if version == 2 else "affinity", "win32_start_address", "teb_base")
        _need(end, pos, 8 + 7 * ptr + 4)
        for name in names:
            fields[name] = u.unpack_from(data, off)[0]
            off += ptr
        fields["sub_process_tag"] = _U32.unpack_from(data, off)[0]
        off += 4
        if version >= 3 and off + 4 <= end:
            fields["base_priority"], fields["page_priority"], fields["io_priority"], fields["thread_flags"] = (
                data[off], data[off + 1], data[off + 2], data[off + 3]
            )
            off += 4
        if version >= 4 and off < end:
            fields["thread_name"], off = _utf16(data, off, end, strict)
    if strict:
        _Strict.addresses(fields, ("stack_base", "stack_limit", "user_stack_base", "user_stack_limit", "start_address",
                                   "win32_start_address", "teb_base"), ptr)
        _Strict.done(data, off, end, ptr)
    return kind, fields, pid, tid


def cswitch(data: bytes, pos: int, end: int):
    _need(end, pos, CSWITCH.size)
    new, old, newp, oldp, _q, _s, reason, mode, state, _ideal, wait = CSWITCH.unpack_from(data, pos)
    fields = {
        "new_tid": new,
        "old_tid": old,
        "new_priority": newp,
        "old_priority": oldp,
        "old_wait_reason": reason,
        "old_wait_mode": mode,
        "old_state": state,
        "new_wait_time": wait,
    }
    return "thread.cswitch", fields, None, new


# ---------------------------------------------------------------- Image (group 0x14, hook 0x030A)

_IMAGE_KINDS = {10: "image.load", 2: "image.unload", 3: "image.rundown", 4: "image.rundown"}


def image(data: bytes, pos: int, end: int, ptr: int, version: int, opcode: int, strict: bool = False):
    """Image Load/UnLoad/DCStart/DCEnd in every version of the MOF classes:

    * V0 (Image_Load): BaseAddress (pointer), ModuleSize (u32), ImageFileName (UTF-16); no
      process id: the header's is the process's;
    * V1: ImageBase, ImageSize (pointers), ProcessId, FileName;
    * V2: ... ProcessId, ImageCheckSum, TimeDateStamp, Reserved0 (u32), DefaultBase (pointer),
      Reserved1-4 (u32), FileName; V3 splits Reserved0 into SignatureLevel, SignatureType.
    """
    kind = _IMAGE_KINDS.get(opcode)
    if kind is None:
        raise NotDecoded
    u = _PTR[ptr]
    if version == 0:
        _need(end, pos, ptr + 4)
        fields: dict[str, Any] = {"image_base": u.unpack_from(data, pos)[0],
                                  "image_size": _U32.unpack_from(data, pos + ptr)[0]}
        pid = FROM_HEADER
        off = pos + ptr + 4
    else:
        _need(end, pos, 2 * ptr + 4)
        fields = {"image_base": u.unpack_from(data, pos)[0], "image_size": u.unpack_from(data, pos + ptr)[0]}
        pid = _U32.unpack_from(data, pos + 2 * ptr)[0]
        off = pos + 2 * ptr + 4
        if version >= 2:
            # ImageCheckSum, TimeDateStamp, Reserved0 (v3: SignatureLevel, SignatureType),
            # DefaultBase, Reserved1-4
            _need(end, off, 12 + ptr + 16)
            fields["checksum"], fields["time_date_stamp"] = struct.unpack_from("<II", data, off)
            off += 8
            if version >= 3:
                fields["signature_level"], fields["signature_type"] = data[off], data[off + 1]
            off += 4
            fields["default_base"] = u.unpack_from(data, off)[0]
            off += ptr + 16
    if strict or off < end:
        fields["file_name"], off = _utf16(data, off, end, strict)
    else:
        fields["file_name"] = ""
    if strict:
        if fields["image_size"] > 0xFFFFFFFF:  # a PE image is smaller than 4 GiB
            raise PayloadError(f"image size {fields['image_size']:#x}")
        _Strict.addresses(fields, ("image_base", "default_base"), ptr)
        _Strict.done(data, off, end, ptr)
    return kind, fields, pid, FROM_HEADER


#: decoders of the kernel events that also come with a classic (EVENT_TRACE_HEADER) header
CLASSIC = {P.PROCESS: process, P.THREAD: thread, P.IMAGE: image}


def classic_kernel(provider: str, data: bytes, pos: int, end: int, ptr: int, version: int, opcode: int):
    """Process, Thread and Image events logged with a classic header (Windows 7-era traces).

    The payload's pointer size need not be the logger's: a 32-bit logger holds events of 64-bit
    writers and the other way round, and the classic header does not say which.  So the layout
    is checked against the payload: the logger's pointer size is tried first, then the other,
    and the one whose fields end where the payload ends, with text where strings are, is taken.
    Returns ``(kind, fields, pid, tid, pointer size)``; :class:`PayloadError` when neither fits.
    """
    decoder = CLASSIC[provider]
    tried = []
    for size in (ptr, 12 - ptr):
        forms = (False, True) if decoder is process else (None,)
        for form in forms:
            try:
                if form is None:
                    kind, fields, pid, tid = decoder(data, pos, end, size, version, opcode, strict=True)
                else:
                    # (forms are tried for process events only: the decoder is process)
                    kind, fields, pid, tid = process(data, pos, end, size, version, opcode, strict=True,
                                                     null_token=form)
            except (PayloadError, struct.error, IndexError, ValueError) as exc:
                tried.append(f"{8 * size}-bit: {exc}")
                continue
            return kind, fields, pid, tid, size
    raise PayloadError(f"version {version} payload of {end - pos} bytes fits no layout ({'; '.join(tried[:2])})")


# ---------------------------------------------------------------- ALPC (group 0x1A)

_ALPC_MSG_KINDS = {33: "alpc.send", 34: "alpc.receive", 35: "alpc.wait_reply"}


def alpc(data: bytes, pos: int, end: int, ptr: int, version: int, opcode: int):
    kind = _ALPC_MSG_KINDS.get(opcode)
    if kind is not None:
        _need(end, pos, 4)
        return kind, {"message_id": _U32.unpack_from(data, pos)[0]}, FROM_HEADER, FROM_HEADER
    if opcode == 36:
        _need(end, pos, ALPC_WAIT_NEW.size)
        name, _ = ansiz(data, pos + ALPC_WAIT_NEW.size, end)
        is_server_port = bool(ALPC_WAIT_NEW.unpack_from(data, pos)[0])
        return "alpc.wait_new", {"is_server_port": is_server_port, "port_name": name}, FROM_HEADER, FROM_HEADER
    if opcode == 37:
        _need(end, pos, 4)
        return "alpc.unwait", {"status": _U32.unpack_from(data, pos)[0]}, FROM_HEADER, FROM_HEADER
    # 38-41 (connect request/success/fail, close port): no public layout; kept raw with length.
    raise NotDecoded


# ---------------------------------------------------------------- Registry (group 9)

REGISTRY_KINDS = {
    10: "registry.create",
    11: "registry.open",
    12: "registry.delete",
    13: "registry.query",
    14: "registry.set_value",
    15: "registry.delete_value",
    16: "registry.query_value",
    17: "registry.enum_key",
    18: "registry.enum_value",
    19: "registry.query_multiple_value",
    20: "registry.set_information",
    21: "registry.flush",
    22: "registry.kcb_create",
    23: "registry.kcb_delete",
    24: "registry.kcb_rundown",
    25: "registry.kcb_rundown",
    26: "registry.other",
    27: "registry.close",
    28: "registry.set_security",
    29: "registry.query_security",
}
#: opcodes whose string is a value name (the key comes from the KCB), per TraceEvent's NameIsKeyName
REGISTRY_VALUE_OPS = frozenset({13, 14, 15, 16, 18, 19})


def registry(data: bytes, pos: int, end: int, ptr: int, version: int, opcode: int):
    kind = REGISTRY_KINDS.get(opcode)
    if kind is None:
        raise NotDecoded
    if version >= 2:
        _need(end, pos, REGISTRY.size + ptr)
        initial, status, index = REGISTRY.unpack_from(data, pos)
        kcb = _PTR[ptr].unpack_from(data, pos + REGISTRY.size)[0]
        name, _ = utf16z(data, pos + REGISTRY.size + ptr, end)
    else:
        # v0/v1 (XP/2003): Status and KeyHandle are pointers, then ElapsedTime (and Index in v1).
        u = _PTR[ptr]
        _need(end, pos, 2 * ptr + 8)
        status = u.unpack_from(data, pos)[0] & 0xFFFFFFFF
        kcb = u.unpack_from(data, pos + ptr)[0]
        initial = struct.unpack_from("<q", data, pos + 2 * ptr)[0]
        off = pos + 2 * ptr + 8
        index = 0
        if version == 1:
            _need(end, off, 4)
            index = _U32.unpack_from(data, off)[0]
            off += 4
        name, _ = utf16z(data, off, end)
    fields: dict[str, Any] = {"initial_time": initial, "status": status, "index": index, "kcb": kcb, "key_name": name}
    if opcode in REGISTRY_VALUE_OPS:
        fields["value_name"] = name  # the recorded string names a value; the key is the KCB's
    return kind, fields, FROM_HEADER, FROM_HEADER


# ---------------------------------------------------------------- FileIo (group 4)


def file_io(data: bytes, pos: int, end: int, ptr: int, version: int, opcode: int):
    u = _PTR[ptr]
    if opcode == 64:  # Create: IrpPtr, [TTID (v2: after FileObject)], FileObject, options, attrs, share, path
        _need(end, pos, 3 * ptr + 12)
        irp = u.unpack_from(data, pos)[0]
        if version >= 3:
            file_object = u.unpack_from(data, pos + ptr)[0]
            ttid = _U32.unpack_from(data, pos + 2 * ptr)[0]
            off = pos + 2 * ptr + 4
        else:
            ttid = u.unpack_from(data, pos + ptr)[0] & 0xFFFFFFFF
            file_object = u.unpack_from(data, pos + 2 * ptr)[0]
            off = pos + 3 * ptr
        _need(end, off, FILE_IO_CREATE.size)
        options, attrs, share = FILE_IO_CREATE.unpack_from(data, off)
        path, _ = utf16z(data, off + FILE_IO_CREATE.size, end)
        fields = {"irp": irp, "file_object": file_object, "ttid": ttid, "create_options": options,
                  "file_attributes": attrs, "share_access": share, "open_path": path}
        return "file.create", fields, None, ttid
    if opcode == 76:  # OperationEnd: IrpPtr, ExtraInfo, NtStatus
        _need(end, pos, 2 * ptr + 4)
        fields = {"op": "end", "irp": u.unpack_from(data, pos)[0], "extra_info": u.unpack_from(data, pos + ptr)[0],
                  "status": _U32.unpack_from(data, pos + 2 * ptr)[0]}
        return "file.op", fields, None, None
    if opcode in (0, 32, 35, 36):  # Name, FileCreate, FileDelete, FileRundown: FileObject, FileName
        _need(end, pos, ptr)
        name, _ = utf16z(data, pos + ptr, end)
        return "file.op", {"op": "name", "file_object": u.unpack_from(data, pos)[0], "file_name": name}, None, None
    raise NotDecoded


# ---------------------------------------------------------------- StackWalk (group 0x18)


def stack_walk(data: bytes, pos: int, end: int, ptr: int, version: int, opcode: int):
    u = _PTR[ptr]
    if opcode in (37, 38):  # StackKeyKernel / StackKeyUser: a reference to a cached stack
        _need(end, pos, STACK_WALK.size + ptr)
        event_ts, spid, stid = STACK_WALK.unpack_from(data, pos)
        fields = {"event_ts": event_ts, "stack_pid": spid, "stack_tid": stid,
                  "key": u.unpack_from(data, pos + STACK_WALK.size)[0], "part": "kernel" if opcode == 37 else "user"}
        return "stack", fields, spid, stid
    if opcode in (34, 35, 36):  # KeyCreate / KeyDelete / KeyRundown: the frames behind a key
        _need(end, pos, ptr)
        count = (end - pos - ptr) // ptr
        frames = list(struct.unpack_from(f"<{count}{'Q' if ptr == 8 else 'I'}", data, pos + ptr)) if count else []
        return "stack_key", {"key": u.unpack_from(data, pos)[0], "frames": frames}, None, None
    if opcode != 32:
        raise NotDecoded
    _need(end, pos, STACK_WALK.size)
    event_ts, spid, stid = STACK_WALK.unpack_from(data, pos)
    count = (end - pos - STACK_WALK.size) // ptr
    at = pos + STACK_WALK.size
    frames = list(struct.unpack_from(f"<{count}{'Q' if ptr == 8 else 'I'}", data, at)) if count else []
    return "stack", {"event_ts": event_ts, "stack_pid": spid, "stack_tid": stid, "frames": frames}, spid, stid


# ---------------------------------------------------------------- PerfInfo (group 0x0F)


def perf_info(data: bytes, pos: int, end: int, ptr: int, version: int, opcode: int):
    if opcode == 46:  # SampledProfile: InstructionPointer, ThreadId, Count
        _need(end, pos, ptr + 4)
        tid = _U32.unpack_from(data, pos + ptr)[0]
        return "sample", {"instruction_pointer": _PTR[ptr].unpack_from(data, pos)[0], "sampled_tid": tid}, None, tid
    raise NotDecoded


Decoder = Callable[[bytes, int, int, int, int, int], tuple]

#: Events whose payload is one fixed-size field at offset 0 in every version, as
#: ``(provider, opcode) -> (kind, struct, field name)``.  The record loop decodes these without a
#: call (they are most of a busy server's records); each must give exactly what its decoder
#: above gives (tests/sources/test_etl_kernel_simple.py checks it).
SIMPLE: dict[tuple[str, int], tuple[str, struct.Struct, str]] = {
    (P.ALPC, 33): ("alpc.send", _U32, "message_id"),
    (P.ALPC, 34): ("alpc.receive", _U32, "message_id"),
    (P.ALPC, 35): ("alpc.wait_reply", _U32, "message_id"),
    (P.ALPC, 37): ("alpc.unwait", _U32, "status"),
}

#: kernel group -> decoder (the image-under-process hook 0x030A is routed by the reader)
DECODERS: dict[str, Decoder] = {
    P.PROCESS: process,
    P.THREAD: thread,
    P.IMAGE: image,
    P.ALPC: alpc,
    P.REGISTRY: registry,
    P.FILE_IO: file_io,
    P.STACK_WALK: stack_walk,
    P.PERF_INFO: perf_info,
}
