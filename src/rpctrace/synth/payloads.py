"""Event payload encoders, written from the documented layouts (shared/reference/etw-and-alpc-facts.md).

Why a separate module: the payload layouts are the part of the writer most likely to be wrong,
so each one is declared once, here, next to the source it was taken from, and the tests decode
them independently (with dissect.etl's manifests, and with their own ``struct`` calls).  Nothing
here imports rpctrace's reader.

Conventions:

* Pointer-sized fields follow the logger's pointer size (8 or 4).
* "UnicodeString"/WString = NUL-terminated UTF-16LE; the ALPC PortName and the Process
  ImageFileName are NUL-terminated 8-bit strings (PerfView's ``GetUTF8StringAt``; EPROCESS
  ImageFileName).
* GUIDs are written in Windows (``bytes_le``) order.
* Kernel (MOF) event identities are (group, opcode, version); the group is the byte in the
  record header, the provider GUID a consumer shows comes from the group (Image Load is group 3
  opcode 10 but is reported under the Image GUID).
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from typing import Sequence

# --------------------------------------------------------------------------- identities

EVENTTRACE_GUID = "68fdd900-4a3e-11d1-84f4-0000f80464e3"
PROCESS_GUID = "3d6fa8d0-fe05-11d0-9dda-00c04fd7ba7c"
THREAD_GUID = "3d6fa8d1-fe05-11d0-9dda-00c04fd7ba7c"
IMAGE_GUID = "2cb15d1d-5fc1-11d2-abe1-00a0c911f518"
REGISTRY_GUID = "ae53722e-c863-11d2-8659-00c04fa321a1"
STACKWALK_GUID = "def2fe46-7bd6-4b80-bd94-f57fe20d0ce3"
ALPC_GUID = "45d8cccd-539f-4b72-a8b7-5c683142609a"
RPC_GUID = "6ad52b32-d609-4be9-ae07-ce8dae937e39"

GROUP_HEADER = 0x00
GROUP_PROCESS = 0x03
GROUP_THREAD = 0x05
GROUP_REGISTRY = 0x09
GROUP_IMAGE = 0x14
GROUP_STACKWALK = 0x18
GROUP_ALPC = 0x1A

# Opcodes
OP_START, OP_END, OP_DCSTART, OP_DCEND = 1, 2, 3, 4
OP_IMAGE_LOAD = 10  # logged under GROUP_PROCESS (hook 0x030A), reported as Image/Load
OP_STACK = 32
OP_ALPC_SEND, OP_ALPC_RECEIVE, OP_ALPC_WAIT_REPLY, OP_ALPC_WAIT_NEW, OP_ALPC_UNWAIT = 33, 34, 35, 36, 37
REG_CREATE, REG_OPEN, REG_DELETE, REG_QUERY, REG_SET_VALUE, REG_DELETE_VALUE, REG_QUERY_VALUE = range(10, 17)
REG_ENUM_KEY, REG_ENUM_VALUE, REG_QUERY_MULTIPLE_VALUE, REG_SET_INFORMATION, REG_FLUSH = range(17, 22)
REG_KCB_CREATE, REG_KCB_DELETE, REG_KCB_RUNDOWN_BEGIN, REG_KCB_RUNDOWN_END = 22, 23, 24, 25
REG_CLOSE, REG_SET_SECURITY, REG_QUERY_SECURITY = 27, 28, 29

#: Registry opcode -> normalized kind (docs/events.md).
REGISTRY_KINDS = {
    REG_CREATE: "registry.create",
    REG_OPEN: "registry.open",
    REG_DELETE: "registry.delete",
    REG_QUERY: "registry.query",
    REG_SET_VALUE: "registry.set_value",
    REG_DELETE_VALUE: "registry.delete_value",
    REG_QUERY_VALUE: "registry.query_value",
    REG_ENUM_KEY: "registry.enum_key",
    REG_ENUM_VALUE: "registry.enum_value",
    REG_QUERY_MULTIPLE_VALUE: "registry.query_multiple_value",
    REG_SET_INFORMATION: "registry.set_information",
    REG_FLUSH: "registry.flush",
    REG_CLOSE: "registry.close",
    REG_SET_SECURITY: "registry.set_security",
    REG_QUERY_SECURITY: "registry.query_security",
    REG_KCB_CREATE: "registry.kcb_create",
    REG_KCB_DELETE: "registry.kcb_delete",
    REG_KCB_RUNDOWN_BEGIN: "registry.kcb_rundown",
    REG_KCB_RUNDOWN_END: "registry.kcb_rundown",
}
#: Registry operations whose string is a value name, not a key name (PerfView NameIsKeyName).
REGISTRY_VALUE_OPS = frozenset({REG_QUERY, REG_SET_VALUE, REG_DELETE_VALUE, REG_QUERY_VALUE, REG_ENUM_VALUE,
                                REG_QUERY_MULTIPLE_VALUE})
REGISTRY_VALUE_NAME_OPS = frozenset({REG_SET_VALUE, REG_DELETE_VALUE, REG_QUERY_VALUE})

ALPC_KINDS = {
    OP_ALPC_SEND: "alpc.send",
    OP_ALPC_RECEIVE: "alpc.receive",
    OP_ALPC_WAIT_REPLY: "alpc.wait_reply",
    OP_ALPC_WAIT_NEW: "alpc.wait_new",
    OP_ALPC_UNWAIT: "alpc.unwait",
}

# Event versions as real Windows 10 files carry them (reference §1, §4).
VER_HEADER = 2
VER_PROCESS = 4
VER_THREAD = 3
VER_IMAGE = 3
VER_REGISTRY = 2
VER_ALPC = 2
VER_STACKWALK = 2


class RpcEvent:
    """Descriptor of one Microsoft-Windows-RPC event (from the provider manifest).

    Task/opcode/level/version come from Microsoft-Windows-RPC.xml.  Channel and keyword are
    **GUESS**: the manifest declares no channels; real events carry keyword 0x4000000000000000
    for the Debug channel (SO 41504738), which is the second channel's keyword bit, so channel
    17 (channels are numbered from 16; EEInfo, with bit 63, is the first).
    """

    __slots__ = ("id", "version", "channel", "level", "opcode", "task", "keyword", "kind")

    def __init__(self, id: int, task: int, opcode: int, kind: str, level: int = 4):
        self.id = id
        self.version = 1
        self.channel = 17
        self.level = level
        self.opcode = opcode
        self.task = task
        self.keyword = 0x4000000000000000
        self.kind = kind


TASK_RPC_CLIENT_CALL, TASK_RPC_SERVER_CALL, TASK_FUNCTION_TRACE = 1, 2, 4
WIN_START, WIN_STOP = 1, 2
RPC_CLIENT_START = RpcEvent(5, TASK_RPC_CLIENT_CALL, WIN_START, "rpc.client_start")
RPC_SERVER_START = RpcEvent(6, TASK_RPC_SERVER_CALL, WIN_START, "rpc.server_start")
RPC_CLIENT_STOP = RpcEvent(7, TASK_RPC_CLIENT_CALL, WIN_STOP, "rpc.client_stop")
RPC_SERVER_STOP = RpcEvent(8, TASK_RPC_SERVER_CALL, WIN_STOP, "rpc.server_stop")
RPC_INTERFACE_REGISTER = RpcEvent(14, TASK_FUNCTION_TRACE, WIN_START, "rpc.interface_register")
RPC_ENDPOINT_BIND = RpcEvent(16, TASK_FUNCTION_TRACE, WIN_START, "rpc.endpoint_bind")

PROTOCOL_LRPC = 3  # ProtocolSequences map: 1 TCP, 2 Named Pipes, 3 LRPC, 4 RPC/HTTP
RPC_C_AUTHN_LEVEL_PKT_PRIVACY = 6
RPC_C_AUTHN_KERNEL = 20  # "LRPC calls show 20"
RPC_C_IMP_LEVEL_IMPERSONATE = 3
#: What an MC-generated provider logs for a NULL string argument.  **GUESS** that the RPC
#: runtime's NetworkAddress/Options of an LRPC call are NULL pointers logged this way.
NULL_STRING = "NULL"

# --------------------------------------------------------------------------- primitives


def utf16z(text: str) -> bytes:
    """NUL-terminated UTF-16LE (manifest UnicodeString, MOF WString)."""
    return (text + "\0").encode("utf-16-le")


def ansiz(text: str) -> bytes:
    """NUL-terminated 8-bit string (MOF ``string`` without ``Format("w")``)."""
    return text.encode("latin-1", "replace") + b"\0"


def guid_le(text: str) -> bytes:
    """A GUID as Windows stores it in memory and in event records (``bytes_le``)."""
    return uuid.UUID(text).bytes_le


def sid_bytes(sid: str) -> bytes:
    """Binary SID: revision, sub-authority count, 6-byte big-endian authority, u32 LE subs."""
    parts = sid.split("-")
    if len(parts) < 3 or parts[0].upper() != "S":
        raise ValueError(f"not a SID: {sid}")
    rev, auth = int(parts[1]), int(parts[2])
    subs = [int(p) for p in parts[3:]]
    return struct.pack(f"<BB6s{len(subs)}I", rev, len(subs), auth.to_bytes(6, "big"), *subs)


def service_sid(service: str) -> str:
    """NT SERVICE\\<name> SID per MS-LSAT 3.1.1.1.2: SHA-1 of the upper-cased UTF-16LE name."""
    digest = hashlib.sha1(service.upper().encode("utf-16-le")).digest()
    subs = struct.unpack("<5I", digest)
    return "S-1-5-80-" + "-".join(str(s) for s in subs)


def security_descriptor_allow(sids_masks: Sequence[tuple[str, int]]) -> bytes:
    """A minimal self-relative SECURITY_DESCRIPTOR with a DACL of ACCESS_ALLOWED ACEs.

    Used for RPC event 14's SD field (an interface's security descriptor).
    """
    aces = b""
    for sid, mask in sids_masks:
        sb = sid_bytes(sid)
        aces += struct.pack("<BBHI", 0, 0, 8 + len(sb), mask) + sb
    acl = struct.pack("<BBHHH", 2, 0, 8 + len(aces), len(sids_masks), 0) + aces
    # Revision 1, Sbz1, Control = SE_SELF_RELATIVE | SE_DACL_PRESENT, owner/group/sacl absent.
    return struct.pack("<BBHIIII", 1, 0, 0x8004, 0, 0, 0, 20) + acl


# --------------------------------------------------------------------------- encoders


class PayloadEncoder:
    """Encoders for one pointer size.  Each returns the payload bytes (no record header).

    Where a hot path needs speed, :mod:`rpctrace.synth.emit` fuses the fixed parts of these
    layouts with the record header into one precompiled struct; the layouts are the ones
    declared here (``ALPC_U32``, ``REGISTRY_HEAD`` ...).
    """

    def __init__(self, pointer_size: int):
        if pointer_size not in (4, 8):
            raise ValueError("pointer size must be 4 or 8")
        self.pointer_size = pointer_size
        p = "Q" if pointer_size == 8 else "I"
        self.ptr = p
        # Process V4 head: UniqueProcessKey, ProcessId, ParentId, SessionId, ExitStatus,
        # DirectoryTableBase, Flags; then UserSID (TOKEN_USER + SID), ImageFileName (8-bit),
        # CommandLine, PackageFullName, ApplicationId (UTF-16).
        self.process_head = struct.Struct(f"<{p}IIIi{p}I")
        # TOKEN_USER: SID_AND_ATTRIBUTES {PSID, Attributes} padded to 2 pointers.
        self.token_user = struct.Struct(f"<{p}I{'4x' if pointer_size == 8 else ''}")
        # Thread V3: ProcessId, TThreadId, StackBase, StackLimit, UserStackBase,
        # UserStackLimit, Affinity, Win32StartAddr, TebBase, SubProcessTag, BasePriority,
        # PagePriority, IoPriority, ThreadFlags.
        self.thread_v3 = struct.Struct(f"<II7{p}IBBBB")
        # Image V3: ImageBase, ImageSize, ProcessId, ImageChecksum, TimeDateStamp,
        # SignatureLevel, SignatureType, Reserved0, DefaultBase, Reserved1-4; then FileName.
        self.image_head = struct.Struct(f"<{p}{p}IIIBBH{p}16x")
        # Registry V2: InitialTime, Status, Index, KeyHandle (the KCB); then KeyName.
        self.registry_head = struct.Struct(f"<qII{p}")
        # StackWalk Stack: EventTimeStamp, StackProcess, StackThread; then frames.
        self.stack_head = struct.Struct("<QII")

    # -- kernel: process / thread / image ----------------------------------------------
    def user_sid(self, sid: str | None, psid_value: int) -> bytes:
        """UserSID field: TOKEN_USER (PSID, Attributes, padding) then the SID; 4 zero bytes if none."""
        if not sid:
            return bytes(4)
        return self.token_user.pack(psid_value, 0) + sid_bytes(sid)

    def process(
        self,
        *,
        process_key: int,
        pid: int,
        parent_pid: int,
        session_id: int,
        exit_status: int,
        directory_table_base: int,
        flags: int,
        user_sid: str | None,
        psid_value: int,
        image: str,
        command_line: str,
        package_full_name: str = "",
        application_id: str = "",
    ) -> bytes:
        """Process V4 (TypeGroup1): Start/End/DCStart/DCEnd."""
        return (
            self.process_head.pack(process_key, pid, parent_pid, session_id, exit_status, directory_table_base, flags)
            + self.user_sid(user_sid, psid_value)
            + ansiz(image)
            + utf16z(command_line)
            + utf16z(package_full_name)
            + utf16z(application_id)
        )

    def thread(
        self,
        *,
        pid: int,
        tid: int,
        stack_base: int,
        stack_limit: int,
        user_stack_base: int,
        user_stack_limit: int,
        affinity: int,
        win32_start_address: int,
        teb_base: int,
        sub_process_tag: int,
        base_priority: int,
        page_priority: int,
        io_priority: int,
        thread_flags: int,
    ) -> bytes:
        """Thread V3 (TypeGroup1): Start/End/DCStart/DCEnd."""
        return self.thread_v3.pack(
            pid,
            tid,
            stack_base,
            stack_limit,
            user_stack_base,
            user_stack_limit,
            affinity,
            win32_start_address,
            teb_base,
            sub_process_tag,
            base_priority,
            page_priority,
            io_priority,
            thread_flags,
        )

    def image(
        self,
        *,
        image_base: int,
        image_size: int,
        pid: int,
        checksum: int,
        time_date_stamp: int,
        default_base: int,
        file_name: str,
        signature_level: int = 0,
        signature_type: int = 0,
    ) -> bytes:
        """Image V3: Load/UnLoad/DCStart/DCEnd."""
        return self.image_head.pack(
            image_base, image_size, pid, checksum, time_date_stamp, signature_level, signature_type, 0, default_base
        ) + utf16z(file_name)

    # -- kernel: process / thread / image in every MOF version (classic-header traces) -------
    def process_version(self, version: int, *, pid: int, parent_pid: int, image: str, user_sid: str | None = None,
                        psid_value: int = 0, process_key: int = 0, session_id: int = 0, exit_status: int = 0,
                        directory_table_base: int = 0, flags: int = 0, command_line: str = "",
                        package_full_name: str = "", application_id: str = "") -> bytes:
        """Process TypeGroup1 of MOF version 0-4 (learn.microsoft.com Process_V0..V4 classes):
        V0 ProcessId, ParentId (pointer-sized), UserSID, ImageFileName; V1 PageDirectoryBase,
        ProcessId, ParentId, SessionId, ExitStatus, UserSID, ImageFileName; V2 UniqueProcessKey in
        place of PageDirectoryBase and CommandLine at the end; V3 DirectoryTableBase after
        ExitStatus; V4 Flags after it, PackageFullName and ApplicationId at the end.  For V1 the
        pointer is the directory table base."""
        p = self.ptr
        if version == 0:
            head = struct.pack(f"<{p}{p}", pid, parent_pid)
        elif version == 1:
            head = struct.pack(f"<{p}IIIi", directory_table_base, pid, parent_pid, session_id, exit_status)
        else:
            head = struct.pack(f"<{p}IIIi", process_key, pid, parent_pid, session_id, exit_status)
            if version >= 3:
                head += struct.pack(f"<{p}", directory_table_base)
            if version >= 4:
                head += struct.pack("<I", flags)
        body = head + self.user_sid(user_sid, psid_value) + ansiz(image)
        if version >= 2:
            body += utf16z(command_line)
        if version >= 4:
            body += utf16z(package_full_name) + utf16z(application_id)
        return body

    def thread_version(self, version: int, opcode: int, *, pid: int, tid: int, stack_base: int = 0,
                       stack_limit: int = 0, user_stack_base: int = 0, user_stack_limit: int = 0,
                       start_address: int = 0, win32_start_address: int = 0, teb_base: int = 0,
                       sub_process_tag: int = 0, wait_mode: int = 0, base_priority: int = 0, page_priority: int = 0,
                       io_priority: int = 0, thread_flags: int = 0, thread_name: str | None = None) -> bytes:
        """Thread TypeGroup1 of MOF version 0-4: V0 TThreadId, ProcessId; V1 ProcessId,
        TThreadId and, for Start/DCStart only (Thread_V1_TypeGroup1), StackBase, StackLimit,
        UserStackBase, UserStackLimit, StartAddr, Win32StartAddr and WaitMode (a byte); V2 the
        six pointers, TebBase, SubProcessTag; V3 Affinity in place of StartAddr (``start_address``
        is written there) and four priority bytes; V4 ThreadName after them."""
        p = self.ptr
        if version == 0:
            return struct.pack("<II", tid, pid)
        head = struct.pack("<II", pid, tid)
        six = struct.pack(f"<6{p}", stack_base, stack_limit, user_stack_base, user_stack_limit, start_address,
                          win32_start_address)
        if version == 1:
            return head + (six + struct.pack("<b", wait_mode) if opcode in (1, 3) else b"")
        body = head + six + struct.pack(f"<{p}I", teb_base, sub_process_tag)
        if version >= 3:
            body += struct.pack("<BBBB", base_priority, page_priority, io_priority, thread_flags)
        if version >= 4 and thread_name is not None:
            body += utf16z(thread_name)
        return body

    def image_version(self, version: int, *, image_base: int, image_size: int, file_name: str, pid: int = 0,
                      checksum: int = 0, time_date_stamp: int = 0, default_base: int = 0,
                      signature_level: int = 0, signature_type: int = 0) -> bytes:
        """Image Load/UnLoad/DCStart/DCEnd of MOF version 0-3: V0 (Image_Load) BaseAddress
        (pointer), ModuleSize (u32), ImageFileName; V1 ImageBase, ImageSize (pointers), ProcessId,
        FileName; V2 adds ImageCheckSum, TimeDateStamp, Reserved0, DefaultBase, Reserved1-4
        before the name; V3 splits Reserved0 into SignatureLevel and SignatureType."""
        p = self.ptr
        if version == 0:
            return struct.pack(f"<{p}I", image_base, image_size) + utf16z(file_name)
        head = struct.pack(f"<{p}{p}I", image_base, image_size, pid)
        if version == 1:
            return head + utf16z(file_name)
        tail = struct.pack(f"<IIBBH{p}16x", checksum, time_date_stamp,
                           signature_level if version >= 3 else 0, signature_type if version >= 3 else 0, 0,
                           default_base)
        return head + tail + utf16z(file_name)

    # -- kernel: ALPC, registry, stacks ---------------------------------------------------
    @staticmethod
    def alpc_message(message_id: int) -> bytes:
        """ALPC Send (33) / Receive (34) / Wait-For-Reply (35): MessageID u32."""
        return ALPC_U32.pack(message_id)

    @staticmethod
    def alpc_wait_new(is_server_port: bool, port_name: str) -> bytes:
        """ALPC Wait-For-New-Message (36): IsServerPort u32, PortName 8-bit string."""
        return ALPC_U32.pack(1 if is_server_port else 0) + ansiz(port_name)

    @staticmethod
    def alpc_unwait(status: int) -> bytes:
        """ALPC Unwait (37): Status u32 (NTSTATUS of the wait)."""
        return ALPC_U32.pack(status & 0xFFFFFFFF)

    def registry(self, *, initial_time: int, status: int, index: int, kcb: int, name: str) -> bytes:
        """Registry V2 (all operations and KCB events): InitialTime, Status, Index, KCB, name."""
        return self.registry_head.pack(initial_time, status & 0xFFFFFFFF, index, kcb) + utf16z(name)

    def stack(self, *, event_ts: int, pid: int, tid: int, frames: Sequence[int]) -> bytes:
        """StackWalk Stack (32): EventTimeStamp (raw QPC), StackProcess, StackThread, frames."""
        return self.stack_head.pack(event_ts, pid, tid) + self.frames(frames)

    def frames(self, frames: Sequence[int]) -> bytes:
        return struct.pack(f"<{len(frames)}{self.ptr}", *frames)

    # -- Microsoft-Windows-RPC ------------------------------------------------------------
    @staticmethod
    def rpc_call_start(
        *,
        interface_uuid: str,
        procnum: int,
        protocol: int,
        network_address: str,
        endpoint: str,
        options: str,
        auth_level: int,
        auth_service: int,
        impersonation_level: int,
    ) -> bytes:
        """RPC 5 / 6 (RpcClientCallStart / RpcServerCallStart), template field order."""
        return (
            guid_le(interface_uuid)
            + struct.pack("<II", procnum, protocol)
            + utf16z(network_address)
            + utf16z(endpoint)
            + utf16z(options)
            + struct.pack("<III", auth_level, auth_service, impersonation_level)
        )

    @staticmethod
    def rpc_call_stop(status: int) -> bytes:
        """RPC 7 / 8: Status u32."""
        return ALPC_U32.pack(status & 0xFFFFFFFF)

    @staticmethod
    def rpc_interface_register(
        *, interface_uuid: str, type_mgr_uuid: str, flags: int, max_calls: int, sd: bytes
    ) -> bytes:
        """RPC 14 (RPC interface registered): InterfaceUuid, TypeMgrUuid, Flags, MaxCalls, SDSize, SD."""
        return guid_le(interface_uuid) + guid_le(type_mgr_uuid) + struct.pack("<III", flags, max_calls, len(sd)) + sd

    @staticmethod
    def rpc_endpoint_bind(
        *,
        protocol: str,
        endpoint: str,
        network_address: str,
        pending_queue_size: int,
        endpoint_flags: int,
        nic_flags: int,
    ) -> bytes:
        """RPC 16 (RPC Server bound to protocol): Protocol, Endpoint, NetworkAddress (strings), 3 u32."""
        return (
            utf16z(protocol)
            + utf16z(endpoint)
            + utf16z(network_address)
            + struct.pack("<III", pending_queue_size, endpoint_flags, nic_flags)
        )


ALPC_U32 = struct.Struct("<I")
