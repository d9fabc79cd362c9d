"""KernelTraceControl ImageID events: the build identity of each loaded image.

When WPR or xperf merge a trace (``xperf -merge``, ``wpr -stop``; PerfView does the same through
KernelTraceControl.dll's CreateMergedTraceFile), they open every binary the image events name
on the recording machine and add *synthetic* classic events, each right after its image event
(same timestamp): the image's TimeDateStamp and its PDB's GUID, age and name.  These are what a
symbol store indexes PDBs by, so a trace that has them can be symbolized on another machine.

Layouts (facts from PerfView's TraceEvent ``SymbolTraceEventParser``, checked on the merged
trace tests/data/net.4.5.2.x64.etl.zip, which holds 3,590 ImageID and 3,534 DbgID_RSDS events;
``P`` is the pointer size):

* classic (EVENT_TRACE_HEADER) records whose header GUID is the ImageID task,
  ``b3e675d7-2554-4f18-830b-2762732560de``, version 2; the opcode tells the event;
* opcode 0 **ImageID**: ImageBase (P), ImageSize (P), ProcessId u32 (0 in the samples' kernel
  images), TimeDateStamp u32, OriginalFileName UTF-16 NUL-terminated;
* opcode 36 (0x24) **DbgID_RSDS**: ImageBase (P), ProcessId u32, GUID (16 bytes, Windows
  order), Age u32, PdbFileName UTF-8 NUL-terminated;
* other opcodes (0x20 None, 0x25 DbgID_ILRSDS, 0x26 DbgPPDB, 0x28 DbgDeterm, 0x40 FileVersion)
  stay ``raw``.

Normalized kinds and fields (docs/events.md): ``image.id`` (``image_base``, ``image_size``,
``process_id``, ``time_date_stamp``, ``original_file_name``) and ``image.dbgid``
(``image_base``, ``process_id``, ``pdb_guid``, ``pdb_age``, ``pdb_name``).
"""

from __future__ import annotations

import struct
import uuid

#: the classic header GUID of KernelTraceControl's ImageID events (its "task" GUID)
IMAGE_ID_GUID = "b3e675d7-2554-4f18-830b-2762732560de"
OP_IMAGE_ID = 0
OP_DBGID_RSDS = 0x24
#: longest file name kept (a record is at most 64 KiB anyway)
MAX_NAME_CHARS = 4096

_U32 = struct.Struct("<I")
_PTR = {4: struct.Struct("<I"), 8: struct.Struct("<Q")}


def decode(opcode: int, data: bytes, pos: int, end: int, ptr: int) -> tuple[str, dict] | None:
    """``(kind, fields)`` of an ImageID record's payload ``data[pos:end]``, or ``None`` when the
    opcode is not decoded or the payload is too short for its layout (the record stays raw)."""
    p = _PTR.get(ptr)
    if p is None:
        return None
    if opcode == OP_IMAGE_ID:
        fixed = 2 * ptr + 8
        if end - pos < fixed:
            return None
        base = p.unpack_from(data, pos)[0]
        size = p.unpack_from(data, pos + ptr)[0]
        pid, tds = struct.unpack_from("<II", data, pos + 2 * ptr)
        return "image.id", {"image_base": base, "image_size": size, "process_id": pid, "time_date_stamp": tds,
                            "original_file_name": _utf16z(data, pos + fixed, end)}
    if opcode == OP_DBGID_RSDS:
        fixed = ptr + 24
        if end - pos < fixed:
            return None
        base = p.unpack_from(data, pos)[0]
        pid = _U32.unpack_from(data, pos + ptr)[0]
        guid = str(uuid.UUID(bytes_le=bytes(data[pos + ptr + 4:pos + ptr + 20])))
        age = _U32.unpack_from(data, pos + ptr + 20)[0]
        return "image.dbgid", {"image_base": base, "process_id": pid, "pdb_guid": guid, "pdb_age": age,
                               "pdb_name": _utf8z(data, pos + fixed, end)}
    return None


def _utf16z(data: bytes, pos: int, end: int) -> str:
    stop = min(end, pos + 2 * MAX_NAME_CHARS)
    at = pos
    while at + 1 < stop:
        if data[at] == 0 and data[at + 1] == 0:
            break
        at += 2
    return bytes(data[pos:at]).decode("utf-16-le", "replace")


def _utf8z(data: bytes, pos: int, end: int) -> str:
    stop = min(end, pos + MAX_NAME_CHARS)
    nul = data.find(b"\x00", pos, stop)
    return bytes(data[pos:nul if nul >= 0 else stop]).decode("utf-8", "replace")
