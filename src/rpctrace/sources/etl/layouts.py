"""The ETL structures rpctrace reads, declared once as named field tables.

Each :class:`~rpctrace.sources.layout.Layout` is the documented structure with its fields named
after the documentation (snake_case), in file order; the ``struct.Struct`` the readers unpack with
is built from it, and ``offset(name)`` gives a field's offset.  The optional C module reads the
same structures: its offsets and sizes come from ``_layouts.h``, which ``tools/gen_c_layouts.py``
writes from :data:`C_LAYOUTS` (tests/sources/test_etl_layouts.py fails when the checked-in header
is not what these tables say, and checks key offsets against the reference).

Sources: ../shared/reference/etl-container-and-thread-ids.md §4 (CSwitch), §5.1
(WMI_BUFFER_HEADER), §5.2 (record headers, extended data items), §5.3 (TRACE_LOGFILE_HEADER);
etw-and-alpc-facts.md §1 (ALPC), §3a (Registry), §4 (Process, StackWalk).  The classic
EVENT_TRACE_HEADER and EVENT_INSTANCE_GUID_HEADER are those of Windows' evntrace.h as they are
written to the file (the classic records of Windows 7-era traces).

Structures whose fields follow a pointer-sized one are declared from their fixed head; the
decoders add the logger's pointer size for the rest.  Unused bytes are padding codes (``x``): they
keep their name and offset but yield no value, so the hot loops unpack only what they use.
"""

from __future__ import annotations

from rpctrace.sources.layout import Layout

# ---------------------------------------------------------------- container (container.py)

#: WMI_BUFFER_HEADER (0x48 bytes), the head of every buffer (§5.1).  ``processor_index`` is a u16
#: processor index with BufferFlag PROC_INDEX, else (before Windows 8) a byte ProcessorNumber and
#: a byte Alignment; ``offset`` is the filled size ("FilledBytes"); ``clock_info`` packs
#: ClockType:3/Frequency:61.  The last 16 bytes are not read.
WMI_BUFFER_HEADER = Layout("WMI_BUFFER_HEADER", "<", (
    ("buffer_size", "I"),
    ("saved_offset", "I"),
    ("current_offset", "I"),
    ("reference_count", "i"),
    ("time_stamp", "Q"),
    ("sequence_number", "q"),
    ("clock_info", "Q"),
    ("processor_index", "H"),
    ("logger_id", "H"),
    ("state", "I"),
    ("offset", "I"),
    ("buffer_flag", "H"),
    ("buffer_type", "H"),
    ("reserved", "16x"),
))

#: TRACE_LOGFILE_HEADER (the payload of the first record of buffer 0, §5.3) up to
#: CpuSpeedInMHz: the part whose offsets do not depend on the pointer size.  LoggerName and
#: LogFileName (pointers) and TIME_ZONE_INFORMATION follow.
TRACE_LOGFILE_HEADER = Layout("TRACE_LOGFILE_HEADER", "<", (
    ("buffer_size", "I"),
    ("version", "I"),
    ("provider_version", "I"),
    ("number_of_processors", "I"),
    ("end_time", "Q"),
    ("timer_resolution", "I"),
    ("maximum_file_size", "I"),
    ("log_file_mode", "I"),
    ("buffers_written", "I"),
    ("start_buffers", "I"),
    ("pointer_size", "I"),
    ("events_lost", "I"),
    ("cpu_speed_in_mhz", "I"),
))
#: TIME_ZONE_INFORMATION inside TRACE_LOGFILE_HEADER (§5.3)
TIME_ZONE_INFORMATION_SIZE = 0xAC
#: the end of TRACE_LOGFILE_HEADER, after the time zone (8-aligned: BootTime is a LARGE_INTEGER);
#: ``reserved_flags`` is the clock type (1 QPC, 2 system time, 3 CPU cycles).  LoggerName and
#: LogFileName follow as NUL-terminated UTF-16.
TRACE_LOGFILE_CLOCK = Layout("TRACE_LOGFILE_CLOCK", "<", (
    ("boot_time", "Q"),
    ("perf_freq", "Q"),
    ("start_time", "Q"),
    ("reserved_flags", "I"),
    ("buffers_lost", "I"),
))

# ---------------------------------------------------------------- record headers (records.py)
# The first u32 of a record is its marker: byte 3 the 0xC0 flags, byte 2 the header type (§5.2).

_KERNEL_HEAD = (
    ("version", "H"),
    ("header_type", "x"),
    ("marker_flags", "x"),
    ("size", "H"),
    ("opcode", "B"),
    ("group", "B"),
)
_COMPACT_FIELDS = _KERNEL_HEAD + (
    ("thread_id", "I"),
    ("process_id", "I"),
    ("time_stamp", "Q"),  # SystemTime in Windows' SYSTEM_TRACE_HEADER
)
#: SYSTEM_TRACE_HEADER (SYSTEM32/SYSTEM64, 0x20 bytes): the MOF header of kernel events
SYSTEM_TRACE_HEADER = Layout("SYSTEM_TRACE_HEADER", "<", _COMPACT_FIELDS + (
    ("kernel_time", "I"),
    ("user_time", "I"),
))
#: the compact form (COMPACT32/COMPACT64, 0x18 bytes): SYSTEM_TRACE_HEADER without the CPU
#: times.  It is the head both forms share, which the record loops unpack for either.
COMPACT_TRACE_HEADER = Layout("COMPACT_TRACE_HEADER", "<", _COMPACT_FIELDS)
#: PERFINFO_TRACE_HEADER (PERFINFO32/PERFINFO64, 0x10 bytes): no thread or process id
PERFINFO_TRACE_HEADER = Layout("PERFINFO_TRACE_HEADER", "<", _KERNEL_HEAD + (("time_stamp", "Q"),))

#: EVENT_HEADER (EVENT32/EVENT64, 0x50 bytes) of manifest and TraceLogging providers.
#: ``provider_id`` and ``activity_id`` are GUIDs in Windows' bytes_le order; ``processor_time``
#: is the KernelTime/UserTime pair.  Extended data items (with ``flags`` & 1) and the user data
#: follow.
EVENT_HEADER = Layout("EVENT_HEADER", "<", (
    ("size", "H"),
    ("header_type", "x"),
    ("marker_flags", "x"),
    ("flags", "H"),
    ("event_property", "H"),
    ("thread_id", "I"),
    ("process_id", "I"),
    ("time_stamp", "Q"),
    ("provider_id", "16s"),
    ("id", "H"),
    ("version", "B"),
    ("channel", "B"),
    ("level", "B"),
    ("opcode", "B"),
    ("task", "H"),
    ("keyword", "Q"),
    ("processor_time", "Q"),
    ("activity_id", "16s"),
))
#: an extended data item as it is written after EVENT_HEADER (8-aligned): ``item_size`` =
#: 8 + the 8-aligned ``data_size``; ``linkage`` bit 0 says another item follows
EVENT_HEADER_EXTENDED_DATA_ITEM = Layout("EVENT_HEADER_EXTENDED_DATA_ITEM", "<", (
    ("item_size", "H"),
    ("ext_type", "H"),
    ("linkage", "H"),
    ("data_size", "H"),
))

#: EVENT_EXTENDED_ITEM_STACK_TRACE64/32 (extended types 6 and 5): MatchId, then the frames
#: (u64 or u32 each) to the end of the item
EXT_STACK_TRACE = Layout("EVENT_EXTENDED_ITEM_STACK_TRACE", "<", (("match_id", "Q"),))

_TRACE_FIELDS = (
    ("size", "H"),
    ("header_type", "x"),
    ("marker_flags", "x"),
    ("type", "B"),  # the opcode
    ("level", "B"),
    ("version", "H"),
    ("thread_id", "I"),
    ("process_id", "I"),
    ("time_stamp", "Q"),
    ("guid", "16s"),
    ("processor_time", "Q"),
)
#: EVENT_TRACE_HEADER (FULL32/FULL64, 0x30 bytes): the classic header of MOF providers
EVENT_TRACE_HEADER = Layout("EVENT_TRACE_HEADER", "<", _TRACE_FIELDS)
#: EVENT_INSTANCE_GUID_HEADER (INSTANCE32/INSTANCE64, 0x48 bytes): EVENT_TRACE_HEADER with the
#: instance ids and the parent's GUID
EVENT_INSTANCE_GUID_HEADER = Layout("EVENT_INSTANCE_GUID_HEADER", "<", _TRACE_FIELDS + (
    ("instance_id", "I"),
    ("parent_instance_id", "I"),
    ("parent_guid", "16s"),
))

# ---------------------------------------------------------------- kernel payloads (kernel.py)

#: CSwitch (Thread group, opcode 36; MOF class Thread_V2): the first 20 of its 24 bytes (the
#: last u32 is Reserved and not read).  ``previous_c_state`` is NewThreadQuantum in older headers.
CSWITCH = Layout("CSwitch", "<", (
    ("new_thread_id", "I"),
    ("old_thread_id", "I"),
    ("new_thread_priority", "b"),
    ("old_thread_priority", "b"),
    ("previous_c_state", "B"),
    ("spare_byte", "b"),
    ("old_thread_wait_reason", "b"),
    ("old_thread_wait_mode", "b"),
    ("old_thread_state", "b"),
    ("old_thread_wait_ideal_processor", "b"),
    ("new_thread_wait_time", "I"),
))
#: Process_V1+ after UniqueProcessKey (v1: PageDirectoryBase), a pointer: the ids, the session
#: and the exit status
PROCESS_IDS = Layout("Process_TypeGroup1 ids", "<", (
    ("process_id", "I"),
    ("parent_id", "I"),
    ("session_id", "I"),
    ("exit_status", "i"),
))
#: Registry (version 2+): the fixed head; KeyHandle (the KCB, a pointer) and KeyName (UTF-16) follow
REGISTRY = Layout("Registry_TypeGroup1", "<", (
    ("initial_time", "q"),
    ("status", "I"),
    ("index", "I"),
))
#: ALPC WaitForNewMessage (opcode 36): IsServerPort, then PortName (a NUL-terminated 8-bit string)
ALPC_WAIT_NEW = Layout("ALPC_WaitForNewMessage", "<", (("is_server_port", "I"),))
#: StackWalk Stack (opcode 32) and StackKeyKernel/User (37, 38): the head before the frames (or
#: the key), which are pointers
STACK_WALK = Layout("StackWalk_Event", "<", (
    ("event_time_stamp", "Q"),
    ("stack_process", "I"),
    ("stack_thread", "I"),
))
#: FileIo Create after IrpPtr, TTID and FileObject: the options, then OpenPath (UTF-16)
FILE_IO_CREATE = Layout("FileIo_Create tail", "<", (
    ("create_options", "I"),
    ("file_attributes", "I"),
    ("share_access", "I"),
))

# ---------------------------------------------------------------- Microsoft-Windows-RPC (manifest.py)
# The Python side decodes RPC payloads from their manifest templates (manifest.TEMPLATES, the
# fields in order with their types); the C record loop and engine read the fixed runs of the call
# events at fixed offsets, declared here.  tests/sources/test_etl_layouts.py checks that each is
# the template's run (same names, same sizes, same order).

#: RpcClientCallStart/RpcServerCallStart (ids 5, 6, version 1) up to the strings:
#: NetworkAddress, Endpoint and Options (UTF-16, NUL-terminated) follow
RPC_CALL_START = Layout("RPC call start head", "<", (
    ("interface_uuid", "16s"),
    ("procnum", "I"),
    ("protocol", "I"),
))
#: the same events after the three strings
RPC_CALL_START_TAIL = Layout("RPC call start tail", "<", (
    ("auth_level", "I"),
    ("auth_service", "I"),
    ("impersonation_level", "I"),
))
#: RpcClientCallStop/RpcServerCallStop (ids 7, 8, version 1)
RPC_CALL_STOP = Layout("RPC call stop", "<", (("status", "I"),))

#: The layouts the C module reads, by the prefix of their macros in ``_layouts.h``
#: (``<PREFIX>_<FIELD>`` is a field's offset, ``<PREFIX>_SIZE`` the structure's size).
C_LAYOUTS: dict[str, Layout] = {
    "SYS": SYSTEM_TRACE_HEADER,
    "COMPACT": COMPACT_TRACE_HEADER,
    "PERF": PERFINFO_TRACE_HEADER,
    "EVH": EVENT_HEADER,
    "EXT": EVENT_HEADER_EXTENDED_DATA_ITEM,
    "EXT_STACK": EXT_STACK_TRACE,
    "FULL": EVENT_TRACE_HEADER,
    "INSTANCE": EVENT_INSTANCE_GUID_HEADER,
    "REG": REGISTRY,
    "ALPC_WAIT_NEW": ALPC_WAIT_NEW,
    "STACK": STACK_WALK,
    "RPC_START": RPC_CALL_START,
    "RPC_START_TAIL": RPC_CALL_START_TAIL,
    "RPC_STOP": RPC_CALL_STOP,
}
