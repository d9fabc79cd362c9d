"""The Process Monitor log format: the file header, the record header, event classes and
operation codes (what procmon-parser reads, declared here for the checks rpctrace does before it
trusts a log, and for the events it reads again when the tables are cut; :mod:`.partial`)."""

from __future__ import annotations

import struct

from rpctrace.sources.layout import Layout

PML_MAGIC = b"PML_"
PML_VERSIONS = (9,)  # what procmon-parser reads (Process Monitor 3.x logs)
HEADER_SIZE = 0x3A8
#: the capturing machine's computer name in the header: UTF-16LE, 16 characters with the NUL
#: (procmon-parser reads the same field: ``Header.computer_name``, 0x20 bytes after the
#: pointer-size flag)
COMPUTER_NAME = (0x0C, 0x20)
#: the event record header procmon-parser reads (52 bytes; its docs/PML Format.md names the
#: fields); the stack (``stacktrace_depth`` pointers) and the details follow
RECORD = Layout("PML event", "<", (
    ("process_index", "I"),
    ("thread_id", "I"),
    ("event_class", "I"),
    ("operation", "H"),
    ("reserved1", "H"),
    ("reserved2", "I"),
    ("duration", "Q"),
    ("date", "Q"),  # FILETIME
    ("result", "I"),
    ("stacktrace_depth", "H"),
    ("reserved3", "H"),
    ("details_size", "I"),
    ("extra_details_offset", "I"),
))
U16 = struct.Struct("<H")
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")

CLASS_PROCESS, CLASS_REGISTRY, CLASS_FILE_SYSTEM, CLASS_PROFILING, CLASS_NETWORK, CLASS_IPC = 1, 2, 3, 4, 5, 6
CLASSES = frozenset({CLASS_PROCESS, CLASS_REGISTRY, CLASS_FILE_SYSTEM, CLASS_PROFILING, CLASS_NETWORK, CLASS_IPC})

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
REG_VALUE_OPS = frozenset({4, 5, 10})  # the path names a value: key\value
REG_OPEN_OPS = frozenset({0, 1})
FILE_CREATE_OPS = frozenset({20, 21, 39})  # IRP_MJ_CREATE, _CREATE_NAMED_PIPE, _CREATE_MAILSLOT
FILE_CREATE = 20

#: Process class operations
P_DEFINED, P_CREATE, P_EXIT, T_CREATE, T_EXIT, LOAD_IMAGE, T_PROFILE, P_START = 0, 1, 2, 3, 4, 5, 6, 7
