"""SMB1 and SMB2 as a carrier of named pipes: which bytes go into and come out of each pipe.

ncacn_np runs DCE/RPC over a named pipe opened on the server's IPC$ share.  rpctrace follows,
per TCP connection (port 445, or 139 after the NetBIOS session request):

* SMB2 ([MS-SMB2] 2.2): CREATE (pipe name -> FileId), WRITE (into the pipe), READ (out of it),
  IOCTL FSCTL_PIPE_TRANSCEIVE (a write and a read in one exchange), CLOSE; compound messages
  (NextCommand), interim STATUS_PENDING answers, STATUS_BUFFER_OVERFLOW (a partial pipe read,
  data still valid).  Encrypted (0xFD 'SMB') and compressed (0xFC 'SMB') messages cannot be
  read: they are counted.
* SMB1 ([MS-CIFS] 2.2.4): NT_CREATE_ANDX (name -> FID), WRITE_ANDX, READ_ANDX, TRANSACTION
  with TransactNmPipe (setup 0x0026, FID), CLOSE, following AndX chains.

Requests and responses are paired by MessageId (SMB2) or (TID, PID, UID, MID) (SMB1).  The
data of each pipe is cut into DCE/RPC fragments by two :class:`~.dcerpc.PduStream` (one per
direction) feeding one :class:`~.dcerpc.Association` per pipe.  A pipe whose create was not
captured is still followed once its first bytes look like a DCE/RPC header (the pipe name is
then unknown).  Tables are bounded: :data:`MAX_PENDING` requests awaiting an answer and
:data:`MAX_FILES` open files per connection; a message is at most :data:`MAX_MESSAGE` bytes.
"""

from __future__ import annotations

import struct
from typing import Any, Callable

from rpctrace.sources.net.dcerpc import Association, Endpoints, PduStream, looks_like_pdu
from rpctrace.sources.layout import Layout

__all__ = ["SmbConnection", "looks_like_smb"]

NETBIOS = Layout("netbios_session", ">", (("type", "B"), ("length_high", "B"), ("length", "H")))

SMB2_HEADER = Layout("smb2_header", "<", (
    ("protocol", "4s"), ("structure_size", "H"), ("credit_charge", "H"), ("status", "I"), ("command", "H"),
    ("credits", "H"), ("flags", "I"), ("next_command", "I"), ("message_id", "Q"), ("async_or_reserved", "I"),
    ("tree_id", "I"), ("session_id", "Q"), ("signature", "16s"),
))  # fmt: skip
SMB2_CREATE_REQ = Layout("smb2_create_request", "<", (
    ("structure_size", "H"), ("security_flags", "B"), ("oplock", "B"), ("impersonation", "I"),
    ("create_flags", "Q"), ("reserved", "Q"), ("desired_access", "I"), ("file_attributes", "I"),
    ("share_access", "I"), ("disposition", "I"), ("options", "I"), ("name_offset", "H"), ("name_length", "H"),
    ("contexts_offset", "I"), ("contexts_length", "I"),
))  # fmt: skip
SMB2_CREATE_RESP = Layout("smb2_create_response", "<", (
    ("structure_size", "H"), ("oplock", "B"), ("flags", "B"), ("action", "I"), ("creation_time", "Q"),
    ("access_time", "Q"), ("write_time", "Q"), ("change_time", "Q"), ("allocation_size", "Q"),
    ("end_of_file", "Q"), ("file_attributes", "I"), ("reserved", "I"), ("file_id", "16s"),
))  # fmt: skip
SMB2_CLOSE_REQ = Layout("smb2_close_request", "<", (("structure_size", "H"), ("flags", "H"), ("reserved", "I"),
                                                    ("file_id", "16s")))
SMB2_READ_REQ = Layout("smb2_read_request", "<", (
    ("structure_size", "H"), ("padding", "B"), ("flags", "B"), ("length", "I"), ("offset", "Q"), ("file_id", "16s"),
))  # fmt: skip
SMB2_READ_RESP = Layout("smb2_read_response", "<", (
    ("structure_size", "H"), ("data_offset", "B"), ("reserved", "B"), ("data_length", "I"),
))  # fmt: skip
SMB2_WRITE_REQ = Layout("smb2_write_request", "<", (
    ("structure_size", "H"), ("data_offset", "H"), ("length", "I"), ("offset", "Q"), ("file_id", "16s"),
))  # fmt: skip
SMB2_IOCTL = Layout("smb2_ioctl", "<", (  # request and response share the first fields
    ("structure_size", "H"), ("reserved", "H"), ("ctl_code", "I"), ("file_id", "16s"), ("input_offset", "I"),
    ("input_count", "I"), ("third", "I"), ("fourth", "I"), ("fifth", "I"),
))  # fmt: skip
#: the request's (OutputOffset, OutputCount) are the 4th and 5th u32 after the FileId; the
#: response's are the 3rd and 4th (its MaxInputResponse field does not exist)

SMB1_HEADER = Layout("smb1_header", "<", (
    ("protocol", "4s"), ("command", "B"), ("status", "I"), ("flags", "B"), ("flags2", "H"), ("pid_high", "H"),
    ("security", "8s"), ("reserved", "H"), ("tid", "H"), ("pid", "H"), ("uid", "H"), ("mid", "H"),
))  # fmt: skip
SMB1_ANDX = Layout("smb1_andx", "<", (("andx_command", "B"), ("andx_reserved", "B"), ("andx_offset", "H")))
SMB1_NT_CREATE_REQ = Layout("smb1_nt_create_andx_request", "<", (
    ("andx", "4s"), ("reserved", "B"), ("name_length", "H"), ("flags", "I"), ("root_fid", "I"),
    ("desired_access", "I"), ("allocation_size", "Q"), ("attributes", "I"), ("share_access", "I"),
    ("disposition", "I"), ("options", "I"), ("impersonation", "I"), ("security_flags", "B"),
))  # fmt: skip
SMB1_NT_CREATE_RESP = Layout("smb1_nt_create_andx_response", "<", (("andx", "4s"), ("oplock", "B"), ("fid", "H")))
SMB1_WRITE_REQ = Layout("smb1_write_andx_request", "<", (
    ("andx", "4s"), ("fid", "H"), ("offset", "I"), ("timeout", "I"), ("write_mode", "H"), ("remaining", "H"),
    ("data_length_high", "H"), ("data_length", "H"), ("data_offset", "H"),
))  # fmt: skip
SMB1_READ_REQ = Layout("smb1_read_andx_request", "<", (("andx", "4s"), ("fid", "H")))
SMB1_READ_RESP = Layout("smb1_read_andx_response", "<", (
    ("andx", "4s"), ("available", "H"), ("compaction", "H"), ("reserved", "H"), ("data_length", "H"),
    ("data_offset", "H"), ("data_length_high", "H"),
))  # fmt: skip
SMB1_CLOSE_REQ = Layout("smb1_close_request", "<", (("fid", "H"),))
SMB1_TRANS_REQ = Layout("smb1_transaction_request", "<", (
    ("total_param", "H"), ("total_data", "H"), ("max_param", "H"), ("max_data", "H"), ("max_setup", "B"),
    ("reserved1", "B"), ("flags", "H"), ("timeout", "I"), ("reserved2", "H"), ("param_count", "H"),
    ("param_offset", "H"), ("data_count", "H"), ("data_offset", "H"), ("setup_count", "B"), ("reserved3", "B"),
))  # fmt: skip
SMB1_TRANS_RESP = Layout("smb1_transaction_response", "<", (
    ("total_param", "H"), ("total_data", "H"), ("reserved1", "H"), ("param_count", "H"), ("param_offset", "H"),
    ("param_displacement", "H"), ("data_count", "H"), ("data_offset", "H"), ("data_displacement", "H"),
    ("setup_count", "B"), ("reserved2", "B"),
))  # fmt: skip
U16 = Layout("u16", "<", (("value", "H"),))

SMB2_CREATE, SMB2_CLOSE, SMB2_READ, SMB2_WRITE, SMB2_IOCTL_CMD = 5, 6, 8, 9, 11
SMB2_FLAGS_RESPONSE, SMB2_FLAGS_ASYNC = 0x1, 0x2
FSCTL_PIPE_TRANSCEIVE = 0x0011C017
STATUS_PENDING = 0x00000103
STATUS_BUFFER_OVERFLOW = 0x80000005
SMB1_NT_CREATE_ANDX, SMB1_READ_ANDX, SMB1_WRITE_ANDX, SMB1_TRANSACTION, SMB1_CLOSE = 0xA2, 0x2E, 0x2F, 0x25, 0x04
ANDX_COMMANDS = frozenset({SMB1_NT_CREATE_ANDX, SMB1_READ_ANDX, SMB1_WRITE_ANDX, 0x75, 0x73, 0x74, 0x2D})
TRANS_TRANSACT_NMPIPE = 0x0026
WRITE_MODE_RAW, WRITE_MODE_MSG_START = 0x0004, 0x0008
FLAGS2_UNICODE = 0x8000

#: requests awaiting their answer, per connection
MAX_PENDING = 4096
#: open files followed per connection
MAX_FILES = 1024
#: largest SMB message accepted (SMB2's largest read/write is 8 MiB plus headers)
MAX_MESSAGE = 16 * 1024 * 1024
#: AndX commands followed in one SMB1 message
MAX_ANDX = 16
#: SMB2 commands followed in one compound message
MAX_COMPOUND = 64

SMB_MAGICS = (b"\xffSMB", b"\xfeSMB", b"\xfdSMB", b"\xfcSMB")


def looks_like_smb(data: bytes) -> bool:
    """NetBIOS session message holding SMB1/2/3, or a NetBIOS session request (port 139)."""
    if len(data) >= 8 and data[0] == 0 and data[4:8] in SMB_MAGICS:
        return True
    return len(data) >= 4 and data[0] in (0x81, 0x82, 0x83, 0x85) and data[1] <= 1


class _Pipe:
    __slots__ = ("assoc", "streams", "name", "dcerpc", "checked")

    def __init__(self, assoc: Association, name: str | None):
        self.assoc = assoc
        self.name = name
        self.streams: dict[int, PduStream] = {}
        self.dcerpc = False
        self.checked = 0


class SmbConnection:
    """The SMB layer of one TCP connection; ``data(side, chunk, frame, ts)`` in stream order."""

    def __init__(self, conn_id: str, addresses: tuple[str, str], ports: tuple[int, int], emit, damage,
                 epm_lookup=None, epm_learn=None):
        self.conn_id = conn_id
        self.addresses = addresses
        self.ports = ports
        self.emit = emit
        self.damage = damage
        self.epm_lookup = epm_lookup
        self.epm_learn = epm_learn
        self.bufs = {0: bytearray(), 1: bytearray()}
        self.lost = {0: False, 1: False}
        self.client_side: int | None = None
        self.pending2: dict[int, tuple[int, bytes | None, str | None]] = {}  # message id -> (command, file id, name)
        self.pending1: dict[tuple, list[tuple[int, int | None, str | None]]] = {}
        self.pipes: dict[Any, _Pipe] = {}
        self.opened: dict[Any, tuple[str, int, int]] = {}  # file -> (name, frame, ts) of its create
        self.undecodable = 0

    # -- framing --------------------------------------------------------------------------
    def gap(self, side: int) -> None:
        self.bufs[side].clear()
        self.lost[side] = True
        for pipe in self.pipes.values():
            for stream in pipe.streams.values():
                stream.gap()

    def data(self, side: int, chunk: bytes, frame: int, ts: int) -> None:
        buf = self.bufs[side]
        if self.lost[side]:
            if not looks_like_smb(chunk):
                return
            self.lost[side] = False
        buf += chunk
        while len(buf) >= 4:
            kind, high, low = NETBIOS.unpack_from(buf, 0)
            length = (high << 16) | low
            if kind != 0:
                if kind not in (0x81, 0x82, 0x83, 0x84, 0x85):
                    self._desync(side, frame, f"NetBIOS session packet type 0x{kind:02x}")
                    return
            elif length > MAX_MESSAGE:
                self._desync(side, frame, f"SMB message of {length} bytes (more than {MAX_MESSAGE})")
                return
            if len(buf) < 4 + length:
                return
            msg = bytes(buf[4:4 + length])
            del buf[:4 + length]
            if kind == 0:
                try:
                    self._message(side, msg, frame, ts)
                except (IndexError, ValueError, UnicodeDecodeError, struct.error) as exc:
                    self.damage(frame, f"SMB message on {self.conn_id} is malformed: {exc}")

    def _desync(self, side: int, frame: int, why: str) -> None:
        self.damage(frame, f"{self.conn_id}: {why}; skipping to the next SMB message")
        self.bufs[side].clear()
        self.lost[side] = True

    def _message(self, side: int, msg: bytes, frame: int, ts: int) -> None:
        magic = msg[:4]
        if magic == b"\xfeSMB":
            self._smb2(side, msg, frame, ts)
        elif magic == b"\xffSMB":
            self._smb1(side, msg, frame, ts)
        elif magic in (b"\xfdSMB", b"\xfcSMB"):
            self.undecodable += 1  # encrypted or compressed: nothing to read
        else:
            self.damage(frame, f"{self.conn_id}: a NetBIOS message that is not SMB ({magic.hex()})")

    # -- pipes ----------------------------------------------------------------------------------
    def _pipe(self, key: Any, name: str | None, fid_text: str, create: bool) -> _Pipe:
        pipe = self.pipes.get(key)
        if pipe is None:
            if len(self.pipes) >= MAX_FILES:
                self.pipes.pop(next(iter(self.pipes)))
            cs = self.client_side if self.client_side is not None else 0
            ends = Endpoints("NP", self.addresses, self.ports, f"{self.conn_id}/{fid_text}", pipe=name, fid=fid_text,
                             client_side=cs)
            assoc = Association(ends, self.emit, self.epm_lookup, self.epm_learn, self.damage)
            pipe = self.pipes[key] = _Pipe(assoc, name)
        elif create and name is not None:
            pipe.name = pipe.assoc.ends.pipe = name
        return pipe

    def _pipe_data(self, key: Any, fid_text: str, side: int, data: bytes, frame: int, ts: int) -> None:
        if not data:
            return
        pipe = self.pipes.get(key)
        if pipe is None:
            if not looks_like_pdu(data):
                return  # a file of a share, or a pipe whose DCE/RPC start was not captured
            opened = self.opened.pop(key, None)
            pipe = self._pipe(key, opened[0] if opened else None, fid_text, False)
            cs = self.client_side if self.client_side is not None else 0
            fields = {"transport": "NP", "connection": pipe.assoc.ends.connection,
                      "client_address": self.addresses[cs], "client_port": self.ports[cs],
                      "server_address": self.addresses[1 - cs], "server_port": self.ports[1 - cs],
                      "pipe": pipe.name, "fid": fid_text, "frame": opened[1] if opened else frame,
                      "create_seen": opened is not None}
            self.emit("net.pipe_open", opened[2] if opened else ts, opened[1] if opened else frame, fields)
        if not pipe.dcerpc:
            if not looks_like_pdu(data):
                pipe.checked += 1
                if pipe.checked > 4:
                    self.pipes.pop(key, None)  # not DCE/RPC: stop following it
                return
            pipe.dcerpc = True
        stream = pipe.streams.get(side)
        if stream is None:
            stream = pipe.streams[side] = PduStream(pipe.assoc, side, f"{self.conn_id} pipe {pipe.name or fid_text}")
        stream.data(data, frame, ts)

    def _opened(self, key: Any, name: str, frame: int, ts: int) -> None:
        """A create answered: remember the name until the file shows itself a DCE/RPC pipe."""
        opened = self.opened
        opened.pop(key, None)
        if len(opened) >= MAX_FILES:
            opened.pop(next(iter(opened)))
        opened[key] = (_pipe_name(name), frame, ts)

    def _closed(self, key: Any) -> None:
        self.opened.pop(key, None)
        pipe = self.pipes.pop(key, None)
        if pipe is not None:
            pipe.assoc.finish()

    def finish(self) -> None:
        for pipe in self.pipes.values():
            pipe.assoc.finish()
        self.pipes.clear()
        self.opened.clear()
        self.pending1.clear()
        self.pending2.clear()

    # -- SMB2 -------------------------------------------------------------------------------------
    def _smb2(self, side: int, msg: bytes, frame: int, ts: int) -> None:
        at = 0
        last_fid: bytes | None = None
        for _ in range(MAX_COMPOUND):
            if len(msg) - at < SMB2_HEADER.size:
                raise ValueError(f"SMB2 header cut short ({len(msg) - at} bytes)")
            h = SMB2_HEADER.unpack_from(msg, at)
            status, command, flags, next_cmd, mid = h[3], h[4], h[6], h[7], h[8]
            end = at + next_cmd if next_cmd else len(msg)
            if end > len(msg) or (next_cmd and next_cmd < SMB2_HEADER.size):
                raise ValueError(f"SMB2 NextCommand {next_cmd} runs past the message")
            part = msg[at:end]
            if flags & SMB2_FLAGS_RESPONSE:
                if self.client_side is None:
                    self.client_side = 1 - side
                if not (status == STATUS_PENDING and flags & SMB2_FLAGS_ASYNC):
                    got = self.pending2.pop(mid, None)
                    if got is not None:
                        last_fid = self._smb2_response(side, part, got, status, frame, ts, last_fid)
            else:
                if self.client_side is None:
                    self.client_side = side
                last_fid = self._smb2_request(side, part, command, mid, frame, ts, last_fid)
            if not next_cmd:
                return
            at = end

    def _smb2_request(self, side, part, command, mid, frame, ts, last_fid) -> bytes | None:
        body = SMB2_HEADER.size
        fid = None
        name = None
        if command == SMB2_CREATE:
            c = SMB2_CREATE_REQ.read(part, body)
            off, n = c["name_offset"], c["name_length"]
            name = part[off:off + n].decode("utf-16-le", "replace") if off + n <= len(part) else None
        elif command == SMB2_WRITE:
            _s, off, length, _o, fid = SMB2_WRITE_REQ.unpack_from(part, body)
            fid = _related(fid, last_fid)
            self._pipe_data(fid, _fid_text(fid), side, part[off:off + length], frame, ts)
        elif command == SMB2_READ:
            fid = _related(SMB2_READ_REQ.unpack_from(part, body)[5], last_fid)
        elif command == SMB2_IOCTL_CMD:
            _s, _r, ctl, fid, in_off, in_count, _a, _b, _c = SMB2_IOCTL.unpack_from(part, body)
            if ctl != FSCTL_PIPE_TRANSCEIVE:
                return last_fid
            fid = _related(fid, last_fid)
            self._pipe_data(fid, _fid_text(fid), side, part[in_off:in_off + in_count], frame, ts)
        elif command == SMB2_CLOSE:
            fid = _related(SMB2_CLOSE_REQ.unpack_from(part, body)[3], last_fid)
            self._closed(fid)
        else:
            return last_fid
        if len(self.pending2) >= MAX_PENDING:
            self.pending2.pop(next(iter(self.pending2)))
        self.pending2[mid] = (command, fid, name)
        return fid if fid is not None else last_fid

    def _smb2_response(self, side, part, got, status, frame, ts, last_fid) -> bytes | None:
        command, fid, name = got
        body = SMB2_HEADER.size
        ok = status == 0 or status == STATUS_BUFFER_OVERFLOW
        if not ok:
            return last_fid
        if command == SMB2_CREATE:
            if len(part) - body < SMB2_CREATE_RESP.size:
                return last_fid  # an error answer's short body
            fid = SMB2_CREATE_RESP.unpack_from(part, body)[12]
            self._opened(fid, name or "", frame, ts)
            return fid
        if command == SMB2_READ and len(part) - body >= SMB2_READ_RESP.size:
            _s, off, _r, length = SMB2_READ_RESP.unpack_from(part, body)
            self._pipe_data(fid, _fid_text(fid), side, part[off:off + length], frame, ts)
        elif command == SMB2_IOCTL_CMD and len(part) - body >= SMB2_IOCTL.size:
            _s, _r, ctl, rfid, _io, _ic, out_off, out_count, _f = SMB2_IOCTL.unpack_from(part, body)
            self._pipe_data(fid if fid is not None else rfid, _fid_text(fid if fid is not None else rfid), side,
                            part[out_off:out_off + out_count], frame, ts)
        return last_fid

    # -- SMB1 ---------------------------------------------------------------------------------------
    def _smb1(self, side: int, msg: bytes, frame: int, ts: int) -> None:
        if len(msg) < SMB1_HEADER.size + 1:
            raise ValueError(f"SMB1 header cut short ({len(msg)} bytes)")
        h = SMB1_HEADER.unpack_from(msg, 0)
        command, status, flags, flags2, tid, pid, uid, mid = h[1], h[2], h[3], h[4], h[8], h[9], h[10], h[11]
        reply = bool(flags & 0x80)
        if self.client_side is None:
            self.client_side = 1 - side if reply else side
        key = (tid, pid, uid, mid)
        unicode = bool(flags2 & FLAGS2_UNICODE)
        at = SMB1_HEADER.size
        if reply:
            chain = self.pending1.pop(key, None)
            if chain is None:
                return
            ok = status == 0 or status == STATUS_BUFFER_OVERFLOW
            for cmd, fid, name in chain:
                if at + 1 > len(msg):
                    return
                wc = msg[at]
                words = at + 1
                if ok and wc:
                    self._smb1_response(side, msg, cmd, words, wc, fid, name, frame, ts)
                if cmd not in ANDX_COMMANDS or wc < 2:
                    return
                nxt, off = msg[words], U16.unpack_from(msg, words + 2)[0]
                if nxt == 0xFF or off <= at or off >= len(msg):
                    return
                at = off
            return
        chain = []
        cmd = command
        for _ in range(MAX_ANDX):
            if at + 1 > len(msg):
                break
            wc = msg[at]
            words = at + 1
            chain.append(self._smb1_request(side, msg, cmd, words, wc, unicode, frame, ts))
            if cmd not in ANDX_COMMANDS or wc < 2:
                break
            nxt, off = msg[words], U16.unpack_from(msg, words + 2)[0]
            if nxt == 0xFF or off <= at or off >= len(msg):
                break
            cmd, at = nxt, off
        if any(c[0] is not None for c in chain):
            if len(self.pending1) >= MAX_PENDING:
                self.pending1.pop(next(iter(self.pending1)))
            self.pending1[key] = [(c if c[0] is not None else (-1, None, None)) for c in chain]

    def _smb1_request(self, side, msg, cmd, words, wc, unicode, frame, ts) -> tuple:
        bytes_at = words + 2 * wc + 2  # after ByteCount
        if cmd == SMB1_NT_CREATE_ANDX and wc >= 24:
            c = SMB1_NT_CREATE_REQ.read(msg, words)
            start = bytes_at
            if unicode and start & 1:
                start += 1  # pad to a 16-bit boundary from the header's start
            n = c["name_length"]
            raw = msg[start:start + n]
            name = raw.decode("utf-16-le", "replace") if unicode else raw.decode("latin-1")
            return (cmd, None, name.rstrip("\0"))
        if cmd == SMB1_WRITE_ANDX and wc >= 12:
            w = SMB1_WRITE_REQ.read(msg, words)
            length = w["data_length"] | (w["data_length_high"] << 16 if wc >= 14 else 0)
            off = w["data_offset"]
            data = msg[off:off + length]
            mode = w["write_mode"]
            if mode & WRITE_MODE_MSG_START and mode & WRITE_MODE_RAW and len(data) >= 2:
                data = data[2:]  # a raw-mode message start carries the message length first
            fid = w["fid"]
            self._pipe_data(("fid1", fid), f"{fid:04x}", side, data, frame, ts)
            return (cmd, fid, None)
        if cmd == SMB1_READ_ANDX and wc >= 10:
            fid = SMB1_READ_REQ.unpack_from(msg, words)[1]
            return (cmd, fid, None)
        if cmd == SMB1_TRANSACTION and wc >= 14:
            t = SMB1_TRANS_REQ.read(msg, words)
            setup = words + SMB1_TRANS_REQ.size
            if t["setup_count"] >= 2 and U16.unpack_from(msg, setup)[0] == TRANS_TRANSACT_NMPIPE:
                fid = U16.unpack_from(msg, setup + 2)[0]
                off, n = t["data_offset"], t["data_count"]
                self._pipe_data(("fid1", fid), f"{fid:04x}", side, msg[off:off + n], frame, ts)
                return (cmd, fid, None)
            return (None, None, None)
        if cmd == SMB1_CLOSE and wc >= 1:
            fid = SMB1_CLOSE_REQ.unpack_from(msg, words)[0]
            self._closed(("fid1", fid))
            return (None, None, None)
        return (None, None, None)

    def _smb1_response(self, side, msg, cmd, words, wc, fid, name, frame, ts) -> None:
        if cmd == SMB1_NT_CREATE_ANDX and wc >= 3:
            new = SMB1_NT_CREATE_RESP.unpack_from(msg, words)[2]
            self._opened(("fid1", new), name or "", frame, ts)
        elif cmd == SMB1_READ_ANDX and wc >= 12 and fid is not None:
            r = SMB1_READ_RESP.read(msg, words)
            length = r["data_length"] | (r["data_length_high"] << 16)
            off = r["data_offset"]
            self._pipe_data(("fid1", fid), f"{fid:04x}", side, msg[off:off + length], frame, ts)
        elif cmd == SMB1_TRANSACTION and wc >= 10 and fid is not None:
            t = SMB1_TRANS_RESP.read(msg, words)
            off, n = t["data_offset"], t["data_count"]
            self._pipe_data(("fid1", fid), f"{fid:04x}", side, msg[off:off + n], frame, ts)


def _related(fid: bytes, last: bytes | None) -> bytes:
    """A related compound command names the previous command's file as all-ones."""
    if fid == b"\xff" * 16 and last is not None:
        return last
    return fid


def _fid_text(fid: bytes | None) -> str:
    return fid.hex() if fid is not None else "?"


def _pipe_name(name: str) -> str:
    """``lsarpc``, ``\\lsarpc`` and ``\\PIPE\\lsarpc`` all name pipe ``lsarpc``."""
    name = name.rstrip("\0").replace("/", "\\")
    low = name.lower()
    for prefix in ("\\pipe\\", "pipe\\"):
        if low.startswith(prefix):
            name = name[len(prefix):]
            break
    return name.lstrip("\\")


Emit = Callable[[str, int, int, dict], None]
