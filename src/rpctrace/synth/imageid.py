"""KernelTraceControl ImageID / DbgID_RSDS records, as WPR and xperf merge them into a trace.

Written from the documented layouts (docs/events.md, "Image identities"; the facts come from
PerfView's TraceEvent ``SymbolTraceEventParser`` and were checked against a real merged trace),
never by calling the reader:

* a classic EVENT_TRACE_HEADER record (0x30 bytes: Size u16, HeaderType u8, MarkerFlags u8,
  Type (opcode) u8, Level u8, Version u16, ThreadId u32, ProcessId u32, TimeStamp u64,
  Guid, ProcessorTime u64) whose Guid is the ImageID task ``b3e675d7-...``, version 2;
* opcode 0 ImageID: ImageBase, ImageSize (pointer-sized), ProcessId u32, TimeDateStamp u32,
  OriginalFileName (UTF-16, NUL-terminated);
* opcode 36 DbgID_RSDS: ImageBase (pointer-sized), ProcessId u32, GUID, Age u32, PdbFileName
  (UTF-8, NUL-terminated).

A merge writes both right after each image event, with its timestamp; the header's thread id is
not set (0xFFFFFFFF) and its process id is the image's process (0 for kernel modules).
"""

from __future__ import annotations

import struct
import uuid

IMAGE_ID_GUID = "b3e675d7-2554-4f18-830b-2762732560de"
OP_IMAGE_ID = 0
OP_DBGID_RSDS = 0x24
VERSION = 2
HDR_FULL32, HDR_FULL64 = 0x0A, 0x14
#: Size, HeaderType, MarkerFlags, Type, Level, Version, ThreadId, ProcessId, TimeStamp, Guid, ProcessorTime
FULL_HEADER = struct.Struct("<HBBBBHIIQ16sQ")
assert FULL_HEADER.size == 0x30
NO_ID = 0xFFFFFFFF


def _pad8(data: bytes) -> bytes:
    return data + bytes(-len(data) & 7)


def full_record(pointer_size: int, opcode: int, pid: int, ts: int, payload: bytes, tid: int = NO_ID) -> bytes:
    """One classic record of the ImageID task (padded to 8 bytes)."""
    htype = HDR_FULL64 if pointer_size == 8 else HDR_FULL32
    head = FULL_HEADER.pack(0x30 + len(payload), htype, 0xC0, opcode, 0, VERSION, tid, pid, ts,
                            uuid.UUID(IMAGE_ID_GUID).bytes_le, 0)
    return _pad8(head + payload)


def image_id_payload(pointer_size: int, base: int, size: int, pid: int, time_date_stamp: int, name: str) -> bytes:
    p = "Q" if pointer_size == 8 else "I"
    return struct.pack(f"<{p}{p}II", base, size, pid, time_date_stamp) + (name + "\0").encode("utf-16-le")


def dbgid_payload(pointer_size: int, base: int, pid: int, guid: str, age: int, pdb_name: str) -> bytes:
    p = "Q" if pointer_size == 8 else "I"
    return (struct.pack(f"<{p}I", base, pid) + uuid.UUID(guid).bytes_le + struct.pack("<I", age)
            + pdb_name.encode("utf-8") + b"\0")


def records(pointer_size: int, ts: int, pid: int, base: int, size: int, time_date_stamp: int, file_name: str,
            guid: str, age: int, pdb_name: str) -> list[tuple[bytes, str, dict]]:
    """The ImageID and DbgID_RSDS records of one image event, each with its normalized kind and
    fields (docs/events.md) for the ground truth."""
    idf = {"image_base": base, "image_size": size, "process_id": pid, "time_date_stamp": time_date_stamp,
           "original_file_name": file_name}
    dbg = {"image_base": base, "process_id": pid, "pdb_guid": guid, "pdb_age": age, "pdb_name": pdb_name}
    return [
        (full_record(pointer_size, OP_IMAGE_ID, pid, ts,
                     image_id_payload(pointer_size, base, size, pid, time_date_stamp, file_name)), "image.id", idf),
        (full_record(pointer_size, OP_DBGID_RSDS, pid, ts,
                     dbgid_payload(pointer_size, base, pid, guid, age, pdb_name)), "image.dbgid", dbg),
    ]
