"""Network captures of remote RPC calls, written from the documented layouts.

Why rpctrace writes captures: public captures are few and never come with the server's trace,
so the join of a remote call with the server's RPC events needs both written together
(:mod:`rpctrace.synth.remote`).  Written here from the specifications, never with rpctrace's
reader (this package must not import it); tshark is the independent check in the tests.

* pcap (libpcap, microsecond timestamps, Ethernet link type), Ethernet II / IPv4 / TCP with
  correct header checksums; segments cut at the MSS;
* DCE/RPC connection-oriented PDUs (C706 chapter 12, [MS-RPCE] 2.2.2): bind, bind_ack,
  request, response, fault, optional auth verifier;
* SMB2 over NetBIOS session ([MS-SMB2] 2.2): CREATE, WRITE, READ, IOCTL FSCTL_PIPE_TRANSCEIVE;
* the endpoint mapper's ept_map request and answer with protocol towers ([MS-RPCE] 2.2.1.2).
"""

from __future__ import annotations

import socket
import struct
import uuid as _uuid
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["PcapWriter", "TcpFlow", "dcerpc_bind", "dcerpc_bind_ack", "dcerpc_request", "dcerpc_response",
           "dcerpc_fault", "epm_map_request_stub", "epm_map_response_stub", "smb2", "EPOCH_1970_TICKS"]

EPOCH_1970_TICKS = 11_644_473_600 * 10_000_000
NDR_UUID = "8a885d04-1ceb-11c9-9fe8-08002b104860"
MSS = 1460


def _checksum(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class PcapWriter:
    """A classic pcap file (magic a1b2c3d4 little-endian, microseconds, link type 1)."""

    def __init__(self, fh: BinaryIO, snaplen: int = 262144):
        self.fh = fh
        self.count = 0
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1))

    def frame(self, ticks: int, data: bytes) -> None:
        """One frame at ``ticks`` (FILETIME); the capture keeps microseconds."""
        us = (ticks - EPOCH_1970_TICKS) // 10
        sec, usec = divmod(us, 1_000_000)
        self.fh.write(struct.pack("<IIII", sec, usec, len(data), len(data)) + data)
        self.count += 1


def ethernet_ipv4_tcp(src: str, sport: int, dst: str, dport: int, seq: int, ack: int, flags: int, payload: bytes,
                      ip_id: int = 0) -> bytes:
    """One Ethernet II frame carrying IPv4 and TCP (checksums computed)."""
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 0xFAF0, 0, 0)
    pseudo = s + d + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
    csum = _checksum(pseudo + tcp + payload)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ip_id & 0xFFFF, 0x4000, 128, 6, 0, s, d)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    mac_s = b"\x00\x15\x5d" + s[1:]
    mac_d = b"\x00\x15\x5d" + d[1:]
    return mac_d + mac_s + b"\x08\x00" + ip + tcp + payload


class TcpFlow:
    """Both directions of one TCP connection: sequence numbers and frames."""

    def __init__(self, client: tuple[str, int], server: tuple[str, int], isn_c: int, isn_s: int):
        self.client, self.server = client, server
        self.seq = {0: isn_c, 1: isn_s}  # side 0 = client
        self.ip_id = {0: isn_c & 0xFFFF, 1: isn_s & 0xFFFF}

    def _frame(self, side: int, flags: int, payload: bytes) -> bytes:
        a, b = (self.client, self.server) if side == 0 else (self.server, self.client)
        self.ip_id[side] += 1
        return ethernet_ipv4_tcp(a[0], a[1], b[0], b[1], self.seq[side], self.seq[1 - side], flags, payload,
                                 self.ip_id[side])

    def _exchange(self, first: int, answer: int) -> list[bytes]:
        """Client ``first``, server ``answer`` (each takes a sequence number), client's ACK."""
        frames = [self._frame(0, first, b"")]
        self.seq[0] += 1
        frames.append(self._frame(1, answer, b""))
        self.seq[1] += 1
        frames.append(self._frame(0, 0x10, b""))
        return frames

    def handshake(self) -> list[bytes]:
        return self._exchange(0x02, 0x12)  # SYN, SYN-ACK, ACK

    def send(self, side: int, payload: bytes, mss: int = MSS) -> list[bytes]:
        """The data segments (PSH on the last) carrying ``payload`` from ``side``."""
        frames = []
        for at in range(0, len(payload), mss):
            chunk = payload[at:at + mss]
            last = at + mss >= len(payload)
            frames.append(self._frame(side, 0x18 if last else 0x10, chunk))
            self.seq[side] += len(chunk)
        return frames

    def close(self) -> list[bytes]:
        return self._exchange(0x11, 0x11)  # FIN-ACK both ways, ACK


# -- DCE/RPC (little-endian NDR, drep 10 00 00 00) -------------------------------------------
def _pdu(ptype: int, call_id: int, body: bytes, flags: int = 0x03, auth: tuple[int, int, bytes] | None = None) -> bytes:
    trailer = b""
    auth_len = 0
    if auth is not None:
        auth_type, auth_level, token = auth
        pad = (-len(body)) & 3
        body += b"\0" * pad
        trailer = struct.pack("<BBBBI", auth_type, auth_level, pad, 0, 0) + token
        auth_len = len(token)
    frag = 16 + len(body) + len(trailer)
    return struct.pack("<BBBB4sHHI", 5, 0, ptype, flags, b"\x10\0\0\0", frag, auth_len, call_id) + body + trailer


def dcerpc_bind(call_id: int, contexts: list[tuple[int, str, int, int]], auth=None, alter: bool = False) -> bytes:
    """bind (or alter_context): contexts (id, interface uuid, major, minor), NDR transfer syntax."""
    body = struct.pack("<HHIB3x", 4280, 4280, 0, len(contexts))
    for ctx, iface, major, minor in contexts:
        body += struct.pack("<HBx", ctx, 1) + _uuid.UUID(iface).bytes_le + struct.pack("<HH", major, minor)
        body += _uuid.UUID(NDR_UUID).bytes_le + struct.pack("<I", 2)
    return _pdu(14 if alter else 11, call_id, body, auth=auth)


def dcerpc_bind_ack(call_id: int, secondary: str, n_results: int, auth=None) -> bytes:
    sec = secondary.encode("ascii") + b"\0"
    body = struct.pack("<HHIH", 4280, 4280, 0x12345, len(sec)) + sec
    body += b"\0" * ((-(16 + len(body))) & 3)
    body += struct.pack("<B3x", n_results)
    for _ in range(n_results):
        body += struct.pack("<HH", 0, 0) + _uuid.UUID(NDR_UUID).bytes_le + struct.pack("<I", 2)
    return _pdu(12, call_id, body, auth=auth)


def dcerpc_request(call_id: int, ctx: int, opnum: int, stub: bytes, auth=None, flags: int = 0x03) -> bytes:
    return _pdu(0, call_id, struct.pack("<IHH", len(stub), ctx, opnum) + stub, flags=flags, auth=auth)


def dcerpc_response(call_id: int, ctx: int, stub: bytes, auth=None, flags: int = 0x03) -> bytes:
    return _pdu(2, call_id, struct.pack("<IHBx", len(stub), ctx, 0) + stub, flags=flags, auth=auth)


def dcerpc_fault(call_id: int, ctx: int, status: int) -> bytes:
    return _pdu(3, call_id, struct.pack("<IHBxII", 0, ctx, 0, status, 0))


# -- endpoint mapper ---------------------------------------------------------------------------
def tower(iface: str, major: int, minor: int, port: int, address: str) -> bytes:
    """A protocol tower for ncacn_ip_tcp: interface, NDR, RPC CO, TCP port, IP address."""
    floors = [
        (b"\x0d" + _uuid.UUID(iface).bytes_le + struct.pack("<H", major), struct.pack("<H", minor)),
        (b"\x0d" + _uuid.UUID(NDR_UUID).bytes_le + struct.pack("<H", 2), struct.pack("<H", 0)),
        (b"\x0b", struct.pack("<H", 0)),
        (b"\x07", struct.pack(">H", port)),
        (b"\x09", socket.inet_aton(address)),
    ]
    out = struct.pack("<H", len(floors))
    for lhs, rhs in floors:
        out += struct.pack("<H", len(lhs)) + lhs + struct.pack("<H", len(rhs)) + rhs
    return out


def epm_map_request_stub(iface: str, major: int, minor: int) -> bytes:
    """ept_map request: object (null uuid pointer), map_tower, entry_handle, max_towers."""
    t = tower(iface, major, minor, 0, "0.0.0.0")
    stub = struct.pack("<I", 1) + bytes(16)  # object: referent, nil uuid
    stub += struct.pack("<III", 2, len(t), len(t)) + t
    stub += b"\0" * ((-len(stub)) & 3)
    stub += bytes(20) + struct.pack("<I", 4)
    return stub


def epm_map_response_stub(iface: str, major: int, minor: int, port: int, address: str) -> bytes:
    """ept_map answer with one tower naming ``port``."""
    t = tower(iface, major, minor, port, address)
    stub = bytes(20) + struct.pack("<I", 1)  # entry_handle, num_towers
    stub += struct.pack("<III", 4, 0, 1) + struct.pack("<I", 3)  # max, offset, actual, referent
    stub += struct.pack("<II", len(t), len(t)) + t
    stub += b"\0" * ((-len(stub)) & 3)
    stub += struct.pack("<I", 0)
    return stub


# -- SMB2 ----------------------------------------------------------------------------------------
SMB2_CREATE, SMB2_READ, SMB2_WRITE, SMB2_IOCTL, SMB2_CLOSE = 5, 8, 9, 11, 6
FSCTL_PIPE_TRANSCEIVE = 0x0011C017


def smb2(command: int, message_id: int, body: bytes, response: bool = False, status: int = 0, tree_id: int = 1,
         session_id: int = 0x1000000000041) -> bytes:
    """An SMB2 message (sync header) in a NetBIOS session message."""
    header = struct.pack("<4sHHIHHIIQIIQ16s", b"\xfeSMB", 64, 1, status, command, 1, 1 if response else 0, 0,
                         message_id, 0, tree_id, session_id, bytes(16))
    msg = header + body
    return struct.pack(">I", len(msg)) + msg


def smb2_create_request(name: str) -> bytes:
    raw = name.encode("utf-16-le")
    body = struct.pack("<HBBIQQIIIIIHHII", 57, 0, 0, 2, 0, 0, 0x0012019F, 0, 7, 1, 0x400040, 64 + 56, len(raw), 0, 0)
    return body + raw


def smb2_create_response(file_id: bytes) -> bytes:
    return struct.pack("<HBBIQQQQQQII16sII", 89, 0, 0, 1, 0, 0, 0, 0, 4096, 0, 0x80, 0, file_id, 0, 0) + b"\0" * 8


def smb2_write_request(file_id: bytes, data: bytes) -> bytes:
    return struct.pack("<HHIQ16sIIHHI", 49, 64 + 48, len(data), 0, file_id, 0, 0, 0, 0, 0) + data


def smb2_write_response(count: int) -> bytes:
    return struct.pack("<HHIIHH", 17, 0, count, 0, 0, 0) + b"\0"


def smb2_read_request(file_id: bytes, length: int) -> bytes:
    return struct.pack("<HBBIQ16sIIIHH", 49, 0x50, 0, length, 0, file_id, 0, 0, 0, 0, 0) + b"\0"


def smb2_read_response(data: bytes) -> bytes:
    return struct.pack("<HBBIII", 17, 64 + 16, 0, len(data), 0, 0) + data


def smb2_ioctl_request(file_id: bytes, data: bytes, max_out: int = 4280) -> bytes:
    return struct.pack("<HHI16sIIIIIIII", 57, 0, FSCTL_PIPE_TRANSCEIVE, file_id, 64 + 56, len(data), 0, 64 + 56, 0,
                       max_out, 1, 0) + data


def smb2_ioctl_response(file_id: bytes, data: bytes) -> bytes:
    return struct.pack("<HHI16sIIIIII", 49, 0, FSCTL_PIPE_TRANSCEIVE, file_id, 64 + 48, 0, 64 + 48, len(data), 0,
                       0) + data


@dataclass
class _BusyFlow:
    """One connection or pipe of :func:`write_busy_capture` and the ids its next call takes."""

    flow: TcpFlow
    fid: bytes | None  # the pipe's SMB2 file id; None for a TCP connection
    call_id: int
    message_id: int  # the next SMB2 message id (pipes)


def write_busy_capture(path, packets: int, *, connections: int = 64, pipes: int = 16, seed: int = 1) -> dict:
    """A capture of about ``packets`` frames of remote calls for benchmarks, written as it goes
    (memory stays flat): ``connections`` Netlogon TCP connections and ``pipes`` LSARPC pipes over
    SMB2, calls round-robin, one request and one response segment each, 50 us apart.
    Returns counts (frames, calls)."""
    import random

    rng = random.Random(f"rpctrace.synth.busy-capture:{seed}")
    iface_tcp = "12345678-1234-abcd-ef00-01234567cffb"
    iface_np = "12345778-1234-abcd-ef00-0123456789ab"
    t = EPOCH_1970_TICKS + 1_700_000_000 * 10_000_000
    flows: list[_BusyFlow] = []
    with open(path, "wb") as fh:
        pw = PcapWriter(fh)

        def out(frames):
            nonlocal t
            for fr in frames:
                pw.frame(t, fr)
                t += 500  # 50 us
        for i in range(connections + pipes):
            client = (f"10.{1 + i // 250}.{i % 250}.{10 + i % 200}", 50000 + i)
            if i < connections:
                flow = TcpFlow(client, ("10.0.0.1", 49676), rng.getrandbits(32), rng.getrandbits(32))
                out(flow.handshake())
                out(flow.send(0, dcerpc_bind(1, [(0, iface_tcp, 1, 0)])))
                out(flow.send(1, dcerpc_bind_ack(1, "49676", 1)))
                flows.append(_BusyFlow(flow, None, 2, 0))
            else:
                flow = TcpFlow(client, ("10.0.0.1", 445), rng.getrandbits(32), rng.getrandbits(32))
                fid = rng.getrandbits(128).to_bytes(16, "little")
                out(flow.handshake())
                out(flow.send(0, smb2(SMB2_CREATE, 1, smb2_create_request("lsarpc"))))
                out(flow.send(1, smb2(SMB2_CREATE, 1, smb2_create_response(fid), response=True)))
                bind = dcerpc_bind(1, [(0, iface_np, 0, 0)])
                out(flow.send(0, smb2(SMB2_WRITE, 2, smb2_write_request(fid, bind))))
                out(flow.send(1, smb2(SMB2_WRITE, 2, smb2_write_response(len(bind)), response=True)))
                out(flow.send(0, smb2(SMB2_READ, 3, smb2_read_request(fid, 4280))))
                out(flow.send(1, smb2(SMB2_READ, 3, smb2_read_response(dcerpc_bind_ack(1, "\\PIPE\\lsass", 1)),
                                      response=True)))
                flows.append(_BusyFlow(flow, fid, 2, 4))
        calls = 0
        k = 0
        stub = bytes(120)
        while pw.count + 2 <= packets:
            entry = flows[k % len(flows)]
            flow, pipe, cid, mid = entry.flow, entry.fid, entry.call_id, entry.message_id
            k += 1
            op = (45, 26, 4, 29)[cid & 3] if pipe is None else (44, 45, 14, 0)[cid & 3]
            req = dcerpc_request(cid, 0, op, stub)
            resp = dcerpc_response(cid, 0, stub) if cid % 97 else dcerpc_fault(cid, 0, 5)
            if pipe is None:
                out(flow.send(0, req))
                out(flow.send(1, resp))
            else:
                out(flow.send(0, smb2(SMB2_IOCTL, mid, smb2_ioctl_request(pipe, req))))
                out(flow.send(1, smb2(SMB2_IOCTL, mid, smb2_ioctl_response(pipe, resp), response=True)))
            entry.call_id += 1
            entry.message_id += 1
            calls += 1
        return {"frames": pw.count, "calls": calls}
