"""One trace being written: turns "thread T did X at time t" into a record with the right header.

Why this layer: the scenarios think in processes, threads and calls; the container thinks in
CPUs, header types and bytes.  This module is where the reference's table of *which header each
event kind uses* is applied (etl-container-and-thread-ids.md §1):

=====================================  ===========================================
Process Start/End                      SYSTEM v4 (header ids = creator / exiting thread)
Process DCStart/DCEnd                  PERFINFO v4
Thread Start/End/DCStart/DCEnd         SYSTEM v3
Image Load (group 3, opcode 10)        SYSTEM v3
Image DCStart/DCEnd                    PERFINFO v3 (payload PID != 0), SYSTEM (kernel, PID 0)
StackWalk Stack (32)                   PERFINFO v2
Registry (all, with KCB events)        SYSTEM v2
ALPC 33-37                             SYSTEM v2 (**GUESS** in the reference; SYSTEM chosen)
Microsoft-Windows-RPC                  EVENT_HEADER, version 1
=====================================  ===========================================

It is also where the ground truth's normalized events are made, when asked: each record's
``tag`` is ``(call_id, kind, event_dict_or_None)``; the event dicts follow docs/events.md
(kinds, field names, and the pid/tid attribution rules for each header type).  When the trace
is too large to keep its events, tags are still made if lost buffers must be accounted for,
and nothing at all is built otherwise - the hot methods (``alpc``, ``rpc``, ``registry``,
``stack``) then do one ``struct.pack`` and one list append.
"""

from __future__ import annotations

import struct
import uuid
from typing import Any, Sequence

from rpctrace.synth import imageid
from rpctrace.synth import payloads as P
from rpctrace.synth.catalog import pdb_identity
from rpctrace.synth.etlfile import (
    EVENT_HEADER,
    EVENT_HEADER_FLAG_EXTENDED_INFO,
    MARKER_FLAGS,
    PERFINFO_HEADER,
    SYSTEM_HEADER,
    SYSTEM_HEADER_FMT,
    EtlWriter,
    ext_item,
    pad8,
)
from rpctrace.synth.stackcache import StackCache


class Thread:
    """A thread as the writer sees it: ids, the CPU it currently runs on, and rundown values."""

    __slots__ = (
        "tid",
        "pid",
        "proc",
        "cpu",
        "free_at",
        "kt",
        "ut",
        "stack_base",
        "stack_limit",
        "user_stack_base",
        "user_stack_limit",
        "affinity",
        "win32_start",
        "teb",
        "tag",
        "priority",
        "name",
        "started_at",
        "ended_at",
    )

    def __init__(self, tid: int, proc: "Proc", cpu: int):
        self.tid = tid
        self.pid = proc.pid
        self.proc = proc
        self.cpu = cpu
        self.free_at = 0
        self.kt = 0
        self.ut = 0
        self.stack_base = self.stack_limit = self.user_stack_base = self.user_stack_limit = 0
        self.affinity = 0
        self.win32_start = 0
        self.teb = 0
        self.tag = 0
        self.priority = 8
        self.name = ""
        self.started_at: int | None = None  # QPC of Thread/Start when created in the trace
        self.ended_at: int | None = None


class Image:
    """A mapped module: what Image events carry, plus symbol offsets for stacks."""

    __slots__ = ("base", "size", "path", "name", "checksum", "time_date_stamp", "symbols")

    def __init__(self, base: int, size: int, path: str, checksum: int, tds: int, symbols: dict[str, int]):
        self.base = base
        self.size = size
        self.path = path
        self.name = path.rsplit("\\", 1)[-1]
        self.checksum = checksum
        self.time_date_stamp = tds
        self.symbols = symbols  # function name -> RVA


class Proc:
    """A process: what Process events carry, plus its threads and images."""

    __slots__ = (
        "pid",
        "ppid",
        "image",
        "command_line",
        "user_sid",
        "session",
        "key",
        "dtb",
        "flags",
        "service",
        "threads",
        "images",
        "started_at",
        "ended_at",
        "exit_status",
        "psid",
    )

    def __init__(self, pid: int, ppid: int, image: str, command_line: str, user_sid: str, session: int):
        self.pid = pid
        self.ppid = ppid
        self.image = image
        self.command_line = command_line
        self.user_sid = user_sid
        self.session = session
        self.key = 0
        self.dtb = 0
        self.flags = 0
        self.service: str | None = None
        self.threads: list[Thread] = []
        self.images: list[Image] = []
        self.started_at: int | None = None
        self.ended_at: int | None = None
        self.exit_status = 0
        self.psid = 0


def nt_to_user_path(nt_path: str) -> str:
    """``\\REGISTRY\\MACHINE\\X`` -> ``HKLM\\X``; ``\\REGISTRY\\USER\\X`` -> ``HKU\\X``."""
    up = nt_path.upper()
    for prefix, short in (("\\REGISTRY\\MACHINE", "HKLM"), ("\\REGISTRY\\USER", "HKU")):
        if up.startswith(prefix) and (len(up) == len(prefix) or up[len(prefix)] == "\\"):
            return short + nt_path[len(prefix):]
    return nt_path


class Trace:
    """Emits the events of one trace into an :class:`EtlWriter` (see the module docstring)."""

    def __init__(self, writer: EtlWriter, *, track: bool, keep_events: bool):
        self.w = writer
        self.add = writer.add
        self._pend = writer.pending  # direct per-CPU appends on the hot paths
        self.clock = writer.clock
        self.enc = P.PayloadEncoder(writer.pointer_size)
        self.ptr = writer.pointer_size
        t = writer.types
        self.sys_t = t.system
        self.pi_t = t.perfinfo
        self.ev_t = t.event
        self.track = track
        self.keep = keep_events and track
        # Fused header + fixed payload for the commonest record (ALPC with one u32): 0x24 bytes
        # of record, padded to 0x28.
        self._alpc = struct.Struct("<" + SYSTEM_HEADER_FMT + "I4x")
        self._sys = SYSTEM_HEADER
        self._pi = PERFINFO_HEADER
        self._evh = EVENT_HEADER
        self._rpc_provider = P.guid_le(P.RPC_GUID)
        self.thread_pid: dict[int, int] = {}  # the reader's thread table, for PERFINFO events
        self.kernel_start = 0x8000000000000000 if self.ptr == 8 else 0x80000000
        self.cache: StackCache | None = None  # stack caching (references + definitions), when on
        self._stays: dict[int, tuple[int, tuple[int, ...], int]] = {}  # tid -> (first event, user part, return)

    def enable_stack_cache(self, slots: int = 64) -> "StackCache":
        """Log stacks as Windows does with stack caching on (:mod:`rpctrace.synth.stackcache`)."""
        self.cache = StackCache(self, slots)
        self.w.before_drain.append(self.cache.flush)
        self.w.before_close.append(self._cache_rundown)
        return self.cache

    def _cache_rundown(self) -> None:
        cache = self.cache
        if cache is None:  # (registered by enable_stack_cache, which set it)
            return
        cache.flush(None)
        last = max([cache.last_ts] + [ts for lst in self.w.pending for ts, _r, _t in lst] + self.w.last_ts)
        cache.rundown(last + 1)

    # ------------------------------------------------------------------ helpers
    def _event(self, ts, pid, tid, cpu, provider, eid, opcode, version, kind, fields) -> dict[str, Any]:
        return {
            "ts": ts,
            "pid": pid,
            "tid": tid,
            "cpu": cpu,
            "provider": provider,
            "id": eid,
            "opcode": opcode,
            "version": version,
            "kind": kind,
            "fields": fields,
            "stack": None,
        }

    def _sysrec(self, group, opcode, version, tid, pid, ts, payload, kt=0, ut=0) -> bytes:
        return pad8(
            self._sys.pack(version, self.sys_t, MARKER_FLAGS, 0x20 + len(payload), opcode, group, tid, pid, ts, kt, ut)
            + payload
        )

    def _pirec(self, group, opcode, version, ts, payload) -> bytes:
        return pad8(self._pi.pack(version, self.pi_t, MARKER_FLAGS, 0x10 + len(payload), opcode, group, ts) + payload)

    # ------------------------------------------------------------------ ALPC (hot)
    def alpc(self, th: Thread, ts: int, opcode: int, value: int, call: Any = None) -> None:
        """ALPC Send/Receive/Wait-For-Reply (value = MessageID) or Unwait (value = Status)."""
        rec = self._alpc.pack(
            P.VER_ALPC, self.sys_t, MARKER_FLAGS, 0x24, opcode, P.GROUP_ALPC, th.tid, th.pid, ts, th.kt, th.ut, value
        )
        if self.track:
            kind = P.ALPC_KINDS[opcode]
            ev = None
            if self.keep:
                fields = {"status": value} if opcode == P.OP_ALPC_UNWAIT else {"message_id": value}
                ev = self._event(ts, th.pid, th.tid, th.cpu, P.ALPC_GUID, 0, opcode, P.VER_ALPC, kind, fields)
            self._pend[th.cpu].append((ts, rec, (call, kind, ev)))
        else:
            self._pend[th.cpu].append((ts, rec, None))

    def alpc_wait_new(self, th: Thread, ts: int, port_name: str, is_server_port: bool = True, call: Any = None) -> None:
        """ALPC Wait-For-New-Message: the thread blocks for the next message on ``port_name``."""
        payload = P.PayloadEncoder.alpc_wait_new(is_server_port, port_name)
        rec = self._sysrec(P.GROUP_ALPC, P.OP_ALPC_WAIT_NEW, P.VER_ALPC, th.tid, th.pid, ts, payload, th.kt, th.ut)
        if self.track:
            ev = None
            if self.keep:
                fields = {"is_server_port": bool(is_server_port), "port_name": port_name}
                ev = self._event(
                    ts, th.pid, th.tid, th.cpu, P.ALPC_GUID, 0, P.OP_ALPC_WAIT_NEW, P.VER_ALPC, "alpc.wait_new", fields
                )
            self.add(th.cpu, ts, rec, (call, "alpc.wait_new", ev))
        else:
            self.add(th.cpu, ts, rec)

    # ------------------------------------------------------------------ RPC (hot)
    def rpc(
        self,
        th: Thread,
        ts: int,
        desc: P.RpcEvent,
        activity_le: bytes,
        payload: bytes,
        fields: dict[str, Any] | None,
        call: Any = None,
        related_le: bytes | None = None,
    ) -> None:
        """A Microsoft-Windows-RPC event (EVENT_HEADER).  ``fields`` is the normalized payload
        (without the activity ids, which are added here), needed only when events are kept."""
        if related_le is None:
            body = payload
            flags = 0
        else:
            body = ext_item(1, related_le, False) + payload
            flags = EVENT_HEADER_FLAG_EXTENDED_INFO
        rec = self._evh.pack(
            0x50 + len(body),
            self.ev_t,
            MARKER_FLAGS,
            flags,
            0,
            th.tid,
            th.pid,
            ts,
            self._rpc_provider,
            desc.id,
            desc.version,
            desc.channel,
            desc.level,
            desc.opcode,
            desc.task,
            desc.keyword,
            (th.ut << 32) | th.kt,
            activity_le,
        ) + body
        r = len(rec) & 7
        if r:
            rec += bytes(8 - r)
        if self.track:
            ev = None
            if self.keep:
                f = dict(fields or {})
                if activity_le != _NULL_GUID:
                    f["activity_id"] = _guid_text(activity_le)
                if related_le is not None:
                    f["related_activity_id"] = _guid_text(related_le)
                ev = self._event(ts, th.pid, th.tid, th.cpu, P.RPC_GUID, desc.id, desc.opcode, desc.version, desc.kind, f)
            self._pend[th.cpu].append((ts, rec, (call, desc.kind, ev)))
        else:
            self._pend[th.cpu].append((ts, rec, None))

    # ------------------------------------------------------------------ registry (hot)
    def registry(
        self,
        th: Thread,
        ts: int,
        opcode: int,
        initial_time: int,
        status: int,
        index: int,
        kcb: int,
        name: str,
        path: str | None,
        call: Any = None,
        name_bytes: bytes | None = None,
    ) -> dict | None:
        """A Registry v2 event on ``th``; ``path`` is the resolved full key (``\\REGISTRY\\...``)."""
        if name_bytes is None:
            name_bytes = P.utf16z(name)
        payload = self.enc.registry_head.pack(initial_time, status & 0xFFFFFFFF, index, kcb) + name_bytes
        rec = self._sysrec(P.GROUP_REGISTRY, opcode, P.VER_REGISTRY, th.tid, th.pid, ts, payload, th.kt, th.ut)
        kind = P.REGISTRY_KINDS[opcode]
        ev = None
        if self.track:
            if self.keep:
                # KCB events share the Registry v2 layout, so they carry the same fields
                fields: dict[str, Any] = {"initial_time": initial_time, "status": status, "index": index,
                                          "kcb": kcb, "key_name": name}
                if opcode in P.REGISTRY_VALUE_NAME_OPS:
                    fields["value_name"] = name
                if path is not None:
                    fields["path"] = nt_to_user_path(path)
                ev = self._event(ts, th.pid, th.tid, th.cpu, P.REGISTRY_GUID, 0, opcode, P.VER_REGISTRY, kind, fields)
            self._pend[th.cpu].append((ts, rec, (call, kind, ev)))
        else:
            self._pend[th.cpu].append((ts, rec, None))
        return ev

    def stack(
        self, th: Thread, event_ts: int, frames: Sequence[int], frames_bytes: bytes | None = None,
        owner: dict | None = None, call: Any = None, user_at: int | None = None,
    ) -> None:
        """The StackWalk records for the event ``th`` logged at ``event_ts``.

        By default one Stack record (logged 1 tick later) holds every frame.  With stack caching
        on, the kernel and user parts are cache references (1 and 2 ticks later).  With
        ``user_at``, the user part is deferred: walked when the thread returns to user mode at
        ``user_at`` and logged then, naming the first event of the thread's stay in the kernel;
        an event logged while the thread is still in the kernel shares that user part.
        """
        if self.cache is not None or user_at is not None:
            self._stack_parts(th, event_ts, frames, owner, call, user_at)
            return
        if frames_bytes is None:
            frames_bytes = self.enc.frames(frames)
        ts = event_ts + 1
        payload = self.enc.stack_head.pack(event_ts, th.pid, th.tid) + frames_bytes
        rec = self._pirec(P.GROUP_STACKWALK, P.OP_STACK, P.VER_STACKWALK, ts, payload)
        if self.track:
            ev = None
            if self.keep:
                fields = {
                    "event_ts": self.clock.filetime(event_ts),
                    "stack_pid": th.pid,
                    "stack_tid": th.tid,
                    "frames": list(frames),
                }
                # PERFINFO: tid from the payload, pid from the thread table.
                ev = self._event(ts, self.thread_pid.get(th.tid), th.tid, th.cpu, P.STACKWALK_GUID, 0, P.OP_STACK,
                                 P.VER_STACKWALK, "stack", fields)
                ev["_owner"] = owner
            self._pend[th.cpu].append((ts, rec, (call, "stack", ev)))
        else:
            self._pend[th.cpu].append((ts, rec, None))

    def _stack_parts(self, th: Thread, event_ts: int, frames: Sequence[int], owner: dict | None, call: Any,
                     user_at: int | None) -> None:
        n = 0
        while n < len(frames) and frames[n] >= self.kernel_start:
            n += 1
        kernel, user = tuple(frames[:n]), tuple(frames[n:])
        user_ts, user_event_ts, log_user = event_ts + 2, event_ts, bool(user)
        if user_at is not None and user:
            stay = self._stays.get(th.tid)
            if stay is not None and stay[2] > event_ts:  # still in the kernel: the stay's user part
                user, log_user = stay[1], False
            else:
                self._stays[th.tid] = (event_ts, user, user_at)
                user_ts = user_at
        truth = list(kernel) + list(user)
        if kernel:
            self._part(th, event_ts + 1, "kernel", event_ts, kernel, call, owner, truth)
            owner = None
        if log_user:
            self._part(th, user_ts, "user", user_event_ts, user, call, owner, truth)

    def _part(self, th: Thread, ts: int, part: str, event_ts: int, frames: tuple[int, ...], call: Any,
              owner: dict | None, truth: list[int]) -> None:
        """One part of a stack: a cache reference, or a Stack record holding only that part."""
        if self.cache is not None:
            self.cache.reference(th.cpu, ts, part, th.pid, th.tid, event_ts, frames, call, owner, truth)
            return
        payload = self.enc.stack_head.pack(event_ts, th.pid, th.tid) + self.enc.frames(frames)
        rec = self._pirec(P.GROUP_STACKWALK, P.OP_STACK, P.VER_STACKWALK, ts, payload)
        if self.track:
            ev = None
            if self.keep:
                fields = {"event_ts": self.clock.filetime(event_ts), "stack_pid": th.pid, "stack_tid": th.tid,
                          "frames": list(frames)}
                ev = self._event(ts, th.pid, th.tid, th.cpu, P.STACKWALK_GUID, 0, P.OP_STACK, P.VER_STACKWALK,
                                 "stack", fields)
                if owner is not None:
                    ev["_owner"] = owner
                    ev["_stack"] = truth
            self.add(th.cpu, ts, rec, (call, "stack", ev))
        else:
            self.add(th.cpu, ts, rec)

    # ------------------------------------------------------------------ process / thread / image
    def process_event(self, opcode: int, ts: int, cpu: int, proc: Proc, hdr: Thread | None) -> None:
        """Process Start/End (SYSTEM, header = creating / exiting thread) or DCStart/DCEnd (PERFINFO)."""
        payload = self.enc.process(
            process_key=proc.key,
            pid=proc.pid,
            parent_pid=proc.ppid,
            session_id=proc.session,
            exit_status=proc.exit_status if opcode in (P.OP_END, P.OP_DCEND) else 0,
            directory_table_base=proc.dtb,
            flags=proc.flags,
            user_sid=proc.user_sid,
            psid_value=proc.psid,
            image=proc.image,
            command_line=proc.command_line,
        )
        if opcode in (P.OP_DCSTART, P.OP_DCEND):
            rec = self._pirec(P.GROUP_PROCESS, opcode, P.VER_PROCESS, ts, payload)
        else:
            assert hdr is not None
            rec = self._sysrec(P.GROUP_PROCESS, opcode, P.VER_PROCESS, hdr.tid, hdr.pid, ts, payload, hdr.kt, hdr.ut)
        kind = {P.OP_START: "process.start", P.OP_END: "process.end"}.get(opcode, "process.rundown")
        ev = None
        if self.keep:
            fields = {
                "process_key": proc.key,
                "parent_pid": proc.ppid,
                "session_id": proc.session,
                "exit_status": proc.exit_status if opcode in (P.OP_END, P.OP_DCEND) else 0,
                "directory_table_base": proc.dtb,
                "flags": proc.flags,
                "user_sid": proc.user_sid,
                "image": proc.image,
                "command_line": proc.command_line,
                "package_full_name": "",
                "application_id": "",
            }
            ev = self._event(ts, proc.pid, None, cpu, P.PROCESS_GUID, 0, opcode, P.VER_PROCESS, kind, fields)
        self.add(cpu, ts, rec, (None, kind, ev) if self.track else None)

    def thread_event(self, opcode: int, ts: int, cpu: int, th: Thread, hdr: Thread) -> None:
        """Thread Start/End/DCStart/DCEnd, all SYSTEM v3; the header holds ``hdr`` (creator,
        exiting thread, or the rundown thread), the payload the thread itself."""
        self.thread_pid[th.tid] = th.pid
        payload = self.enc.thread(
            pid=th.pid,
            tid=th.tid,
            stack_base=th.stack_base,
            stack_limit=th.stack_limit,
            user_stack_base=th.user_stack_base,
            user_stack_limit=th.user_stack_limit,
            affinity=th.affinity,
            win32_start_address=th.win32_start,
            teb_base=th.teb,
            sub_process_tag=th.tag,
            base_priority=th.priority,
            page_priority=5,
            io_priority=2,
            thread_flags=0,
        )
        rec = self._sysrec(P.GROUP_THREAD, opcode, P.VER_THREAD, hdr.tid, hdr.pid, ts, payload, hdr.kt, hdr.ut)
        kind = {P.OP_START: "thread.start", P.OP_END: "thread.end"}.get(opcode, "thread.rundown")
        ev = None
        if self.keep:
            fields = {
                "stack_base": th.stack_base,
                "stack_limit": th.stack_limit,
                "user_stack_base": th.user_stack_base,
                "user_stack_limit": th.user_stack_limit,
                "affinity": th.affinity,
                "win32_start_address": th.win32_start,
                "teb_base": th.teb,
                "sub_process_tag": th.tag,
                "base_priority": th.priority,
                "page_priority": 5,
                "io_priority": 2,
                "thread_flags": 0,
            }
            ev = self._event(ts, th.pid, th.tid, cpu, P.THREAD_GUID, 0, opcode, P.VER_THREAD, kind, fields)
        self.add(cpu, ts, rec, (None, kind, ev) if self.track else None)

    def image_event(self, opcode: int, ts: int, cpu: int, pid: int, img: Image, hdr: Thread) -> None:
        """Image Load (SYSTEM, logged as group 3 / opcode 10) or DCStart/DCEnd (PERFINFO when the
        payload PID is not 0, SYSTEM for kernel modules)."""
        payload = self.enc.image(
            image_base=img.base,
            image_size=img.size,
            pid=pid,
            checksum=img.checksum,
            time_date_stamp=img.time_date_stamp,
            default_base=img.base,
            file_name=img.path,
        )
        tid: int | None
        if opcode == P.OP_IMAGE_LOAD:
            rec = self._sysrec(P.GROUP_PROCESS, opcode, P.VER_IMAGE, hdr.tid, hdr.pid, ts, payload, hdr.kt, hdr.ut)
            tid = hdr.tid
        elif pid != 0:
            rec = self._pirec(P.GROUP_IMAGE, opcode, P.VER_IMAGE, ts, payload)
            tid = None
        else:
            rec = self._sysrec(P.GROUP_IMAGE, opcode, P.VER_IMAGE, hdr.tid, hdr.pid, ts, payload, hdr.kt, hdr.ut)
            tid = hdr.tid
        kind = "image.load" if opcode == P.OP_IMAGE_LOAD else "image.rundown"
        ev = None
        if self.keep:
            fields = {
                "image_base": img.base,
                "image_size": img.size,
                "checksum": img.checksum,
                "time_date_stamp": img.time_date_stamp,
                "signature_level": 0,
                "signature_type": 0,
                "default_base": img.base,
                "file_name": img.path,
            }
            ev = self._event(ts, pid, tid, cpu, P.IMAGE_GUID, 0, opcode, P.VER_IMAGE, kind, fields)
        self.add(cpu, ts, rec, (None, kind, ev) if self.track else None)
        self._image_identity(ts, cpu, pid, img)

    def _image_identity(self, ts: int, cpu: int, pid: int, img: Image) -> None:
        """The ImageID and DbgID_RSDS records a WPR/xperf merge adds after each image event."""
        guid, age, pdb_name = pdb_identity(img.name, self.ptr)
        for rec, kind, fields in imageid.records(self.ptr, ts, pid, img.base, img.size, img.time_date_stamp, img.name,
                                                 guid, age, pdb_name):
            ev = None
            if self.keep:
                opcode = imageid.OP_IMAGE_ID if kind == "image.id" else imageid.OP_DBGID_RSDS
                ev = self._event(ts, pid, None, cpu, imageid.IMAGE_ID_GUID, 0, opcode, imageid.VERSION, kind, fields)
            self.add(cpu, ts, rec, (None, kind, ev) if self.track else None)

    # ------------------------------------------------------------------ RPC registration
    def rpc_interface_register(self, th: Thread, ts: int, interface_uuid: str, flags: int, max_calls: int,
                               sd: bytes) -> None:
        nil = "00000000-0000-0000-0000-000000000000"
        payload = self.enc.rpc_interface_register(
            interface_uuid=interface_uuid, type_mgr_uuid=nil, flags=flags, max_calls=max_calls, sd=sd
        )
        fields = {"interface_uuid": interface_uuid, "type_mgr_uuid": nil, "flags": flags, "max_calls": max_calls,
                  "sd_size": len(sd), "sd": sd.hex()}
        self.rpc(th, ts, P.RPC_INTERFACE_REGISTER, _NULL_GUID, payload, fields)

    def rpc_endpoint_bind(self, th: Thread, ts: int, endpoint: str, protocol: str = "ncalrpc") -> None:
        payload = self.enc.rpc_endpoint_bind(
            protocol=protocol, endpoint=endpoint, network_address=P.NULL_STRING, pending_queue_size=10,
            endpoint_flags=0, nic_flags=0,
        )
        fields = {"protocol": protocol, "endpoint": endpoint, "network_address": P.NULL_STRING,
                  "pending_queue_size": 10, "endpoint_flags": 0, "nic_flags": 0}
        self.rpc(th, ts, P.RPC_ENDPOINT_BIND, _NULL_GUID, payload, fields)


_NULL_GUID = bytes(16)


def _guid_text(le: bytes) -> str:
    return str(uuid.UUID(bytes_le=le))
