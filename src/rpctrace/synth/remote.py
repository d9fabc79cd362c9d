"""A matching pair: a network capture of remote calls and the server's ETL trace, with ground truth.

The server is a domain controller's ``lsass.exe`` serving Netlogon over TCP (dynamic port
49676, found by clients through the endpoint mapper on port 135) and LSARPC over the named pipe
``\\PIPE\\lsarpc`` (SMB2, the server's endpoint ``\\PIPE\\lsass``).  Client machines
(10.0.0.x) open connections and make calls; the server's trace holds, per call, the worker
thread's Microsoft-Windows-RPC 6 (protocol TCP or named pipes, endpoint, interface, opnum,
auth), its registry work, and RPC 8; some server calls make a nested LRPC call to Dnscache.  One
story call fails in the server: the client 10.0.0.5:52311 calls NetrServerAuthenticate3, the
worker's registry open is denied (0xC0000022) and the call faults with ERROR_ACCESS_DENIED (5).

The capture is taken on the server with its own clock: capture time = trace time - offset (a
few milliseconds to seconds, chosen by the seed), microsecond timestamps.  Or the packets go into
the server's trace itself, as ``netsh trace capture=yes`` (NDIS-PacketCapture events) or
``pktmon`` (PktMon events) record them (:mod:`rpctrace.synth.packetetw`): then there is one
clock (offset 0) and 100 ns timestamps, and the same seed gives the same frames.  One TCP connection
starts before the capture (its handshake and bind are not in the file): its calls name their
interface only through the endpoint mapper's answer seen on another connection.

Ground truth (``truth``): the offset, and per call the client address and port, the connection,
call id, interface, opnum, request and response times (capture clock), the server process,
thread, start and end (trace clock), the status on the wire and the server's failures.
"""

from __future__ import annotations

import heapq
import json
import random
import socket
from pathlib import Path
from typing import Any

from rpctrace.synth import catalog as C
from rpctrace.synth import payloads as P
from rpctrace.synth import pcapfile as W
from rpctrace.synth.emit import Thread, Trace
from rpctrace.synth.simulate import Sim
from rpctrace.synth.world import CPUS, MS, US, RegOp, World, filetime as _filetime

__all__ = ["synthesize_remote", "NETLOGON_IF", "LSARPC_IF", "EPM_IF"]

NETLOGON_IF = "12345678-1234-abcd-ef00-01234567cffb"
LSARPC_IF = "12345778-1234-abcd-ef00-0123456789ab"
EPM_IF = "e1af8308-5d1f-11c9-91a4-08002b14a0fa"
NETLOGON_OPS = {4: "NetrServerReqChallenge", 26: "NetrServerAuthenticate3", 29: "NetrLogonGetDomainInfo",
                21: "NetrLogonGetCapabilities", 45: "NetrLogonSamLogonWithFlags"}
LSARPC_OPS = {44: "LsarOpenPolicy2", 45: "LsarGetUserName", 14: "LsarLookupNames", 0: "LsarClose"}
SERVER_IP = "10.0.0.1"
NETLOGON_PORT = 49676
STATUS_ACCESS_DENIED = 0xC0000022
ERROR_ACCESS_DENIED = 5
RPC_C_AUTHN_NETLOGON, RPC_C_AUTHN_WINNT = 68, 10


class _Conn:
    __slots__ = ("flow", "kind", "ip", "port", "call_id", "fid", "mid", "free_at", "ctx")

    def __init__(self, flow, kind, ip, port):
        self.flow = flow
        self.kind = kind  # "tcp" or "np"
        self.ip, self.port = ip, port
        self.call_id = 1
        self.fid = b""
        self.mid = 0
        self.free_at = 0
        self.ctx = 0


def synthesize_remote(capture: str | Path | None, trace: str | Path, truth: str | Path | None = None, *, seed: int = 1,
                      calls: int = 200, clients: int = 8, workers: int = 6, gap_us: int = 400, packets: str = "pcap",
                      fragment: int | None = None, appearances: int = 2) -> dict[str, Any]:
    """Write the capture and the server trace; return (and write to ``truth``) the ground truth.

    ``calls`` background calls arrive about every ``gap_us`` microseconds over ``clients``
    client machines (each with a Netlogon TCP connection and an LSARPC pipe), served by
    ``workers`` lsass worker threads: small gaps give a busy pair, many calls of the same
    procedure in flight at once.

    ``packets`` says where the frames go: ``"pcap"`` into ``capture`` (the capture's own clock,
    ``offset`` from the trace's), ``"ndis"`` into the server's trace as NDIS-PacketCapture events
    (what ``netsh trace capture=yes`` records: one file, one clock, offset 0; ``fragment`` splits
    frames longer than that many bytes over several events), ``"pktmon"`` as PktMon events (each
    packet at ``appearances`` components).  The same seed gives the same frames and calls in
    every mode (``capture`` is not written, and may be None, unless ``packets="pcap"``).
    """
    from rpctrace.synth.etlfile import Clock, EtlWriter
    from rpctrace.synth.packetetw import NdisPackets, PktmonPackets

    if packets not in ("pcap", "ndis", "pktmon"):
        raise ValueError(f"packets must be 'pcap', 'ndis' or 'pktmon', not {packets!r}")
    if packets == "pcap" and capture is None:
        raise ValueError("packets='pcap' needs a capture path")

    rng = random.Random(f"rpctrace.synth.remote:{seed}")
    r = rng.random
    world = World(rng, 8, CPUS)
    dns = world.add_service("Dnscache")
    lsass = next(p for p in world.procs if p.image == "lsass.exe")
    for dll in ("netlogon.dll", "lsasrv.dll"):
        if not any(i.name == dll for i in lsass.images):
            lsass.images.append(world.dll_image(dll))
    pool: list[Thread] = [world.new_thread(lsass, worker=True) for _ in range(workers)]
    start_ft = _filetime(2024, 3, 4, 8) + rng.randrange(0, 3600) * 10**7
    header_qpc = rng.randrange(2 * 3600, 9 * 3600) * 10**7
    clock = Clock(start_ft, header_qpc)
    offset = rng.randrange(2 * MS, 3000 * MS)  # trace FILETIME - capture FILETIME
    if packets != "pcap":
        offset = 0  # the packets are events of the trace: its clock
    ctl = world.controller
    writer = EtlWriter(trace, clock=clock, pointer_size=8, cpus=CPUS, buffer_size=0x10000, controller_pid=ctl.pid,
                       controller_tid=ctl.tid, logfile_name="C:\\Windows\\Temp\\dc01-rpc.etl")
    tr = Trace(writer, track=False, keep_events=False)
    sim = Sim(world, tr, rng, track=False)
    t = sim.rundown(header_qpc + 300, start=True)
    t = sim.register_servers(t + 2 * MS)
    for sequence, ep in (("ncacn_ip_tcp", str(NETLOGON_PORT)), ("ncacn_np", "\\pipe\\lsass"), ("ncacn_ip_tcp", "135")):
        tr.rpc_endpoint_bind(lsass.threads[0], t, ep, protocol=sequence)
        t += 20

    params = "\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Services\\Netlogon\\Parameters"
    hklm = world.kcb("\\REGISTRY\\MACHINE")
    pk = world.kcb(params)
    read_op = RegOp(P.REG_QUERY_VALUE, None, pk, "DisablePasswordChange", params, index=2)
    denied_key = "\\REGISTRY\\MACHINE\\SECURITY\\Policy\\Secrets\\$MACHINE.ACC"
    denied_op = RegOp(P.REG_OPEN, None, hklm, denied_key[len("\\REGISTRY\\MACHINE\\"):], denied_key)

    frames: list[tuple[int, int, bytes]] = []  # (capture ticks, order, frame)
    order = [0]
    server_ip = socket.inet_aton(SERVER_IP)
    tick = 10 if packets == "pcap" else 1  # a pcap keeps microseconds, an ETL trace 100 ns ticks
    etw: NdisPackets | PktmonPackets | None = None
    if packets == "ndis":
        etw = NdisPackets(writer, CPUS, fragment=fragment)
        etw.attach(t)
    elif packets == "pktmon":
        etw = PktmonPackets(writer, CPUS, appearances=appearances)
        etw.components(t)

    def cap(ticks_trace_qpc: int, data: list[bytes], step: int = 3) -> int:
        """Frames at a trace-clock QPC time: into the capture (its clock), or events of the trace."""
        ticks = clock.filetime(ticks_trace_qpc) - offset
        for i, fr in enumerate(data):
            if etw is not None:
                etw.frame(ticks_trace_qpc + i * step, fr, send=fr[26:30] == server_ip)
            else:
                frames.append((ticks + i * step, order[0], fr))
            order[0] += 1
        return ticks_trace_qpc + len(data) * step

    truth_calls: list[dict] = []
    conns: list[_Conn] = []
    capture_start_qpc = t
    # -- clients: EPM lookup on 135, then a Netlogon connection, and an LSARPC pipe over SMB2
    story_ip, story_port = "10.0.0.5", 52311
    for i in range(clients):
        ip = f"10.0.0.{i + 5}"
        late = i == clients - 1 and clients > 1  # its Netlogon connection predates the capture
        tq = t + i * 300 * US
        if not late:
            epm = W.TcpFlow((ip, 49700 + i), (SERVER_IP, 135), rng.getrandbits(32), rng.getrandbits(32))
            tq = cap(tq, epm.handshake())
            tq = cap(tq, epm.send(0, W.dcerpc_bind(1, [(0, EPM_IF, 3, 0)])))
            tq = cap(tq + 80 * US, epm.send(1, W.dcerpc_bind_ack(1, "135", 1)))
            tq = cap(tq + 40 * US, epm.send(0, W.dcerpc_request(2, 0, 3, W.epm_map_request_stub(NETLOGON_IF, 1, 0))))
            answer = W.epm_map_response_stub(NETLOGON_IF, 1, 0, NETLOGON_PORT, SERVER_IP)
            tq = cap(tq + 120 * US, epm.send(1, W.dcerpc_response(2, 0, answer)))
            tq = cap(tq + 30 * US, epm.close())
        port = story_port if ip == story_ip else 52000 + 17 * i
        flow = W.TcpFlow((ip, port), (SERVER_IP, NETLOGON_PORT), rng.getrandbits(32), rng.getrandbits(32))
        c = _Conn(flow, "tcp", ip, port)
        auth = (RPC_C_AUTHN_NETLOGON, 6, bytes(32))
        if not late:
            tq = cap(tq + 50 * US, flow.handshake())
            tq = cap(tq, flow.send(0, W.dcerpc_bind(1, [(0, NETLOGON_IF, 1, 0)], auth=auth)))
            tq = cap(tq + 90 * US, flow.send(1, W.dcerpc_bind_ack(1, str(NETLOGON_PORT), 1, auth=auth)))
        else:
            c.call_id = 40 + i  # calls went on before the capture started
        c.free_at = tq
        conns.append(c)
        # the LSARPC pipe
        smb = W.TcpFlow((ip, 49800 + i), (SERVER_IP, 445), rng.getrandbits(32), rng.getrandbits(32))
        p = _Conn(smb, "np", ip, 49800 + i)
        p.fid = rng.getrandbits(128).to_bytes(16, "little")
        tq = cap(tq + 60 * US, smb.handshake())
        tq = cap(tq, smb.send(0, W.smb2(W.SMB2_CREATE, 5, W.smb2_create_request("lsarpc"))))
        tq = cap(tq + 70 * US, smb.send(1, W.smb2(W.SMB2_CREATE, 5, W.smb2_create_response(p.fid), response=True)))
        bind = W.dcerpc_bind(1, [(0, LSARPC_IF, 0, 0)])
        tq = cap(tq + 30 * US, smb.send(0, W.smb2(W.SMB2_WRITE, 6, W.smb2_write_request(p.fid, bind))))
        tq = cap(tq + 40 * US, smb.send(1, W.smb2(W.SMB2_WRITE, 6, W.smb2_write_response(len(bind)), response=True)))
        tq = cap(tq + 10 * US, smb.send(0, W.smb2(W.SMB2_READ, 7, W.smb2_read_request(p.fid, 4280))))
        ack = W.dcerpc_bind_ack(1, "\\PIPE\\lsass", 1)
        tq = cap(tq + 50 * US, smb.send(1, W.smb2(W.SMB2_READ, 7, W.smb2_read_response(ack), response=True)))
        p.mid, p.call_id, p.free_at = 8, 2, tq
        conns.append(p)
    t = max(c.free_at for c in conns) + 1 * MS

    # -- the calls
    worker_free = [(0, i) for i in range(len(pool))]
    heapq.heapify(worker_free)
    arrival = t
    plan: list[tuple[int, _Conn, int, str | None]] = []
    story_conn = next(c for c in conns if c.kind == "tcp" and c.ip == story_ip)
    story_at = int(calls * 0.4)
    for n in range(calls):
        arrival += 1 + int(rng.expovariate(1.0) * gap_us * US)
        if n == story_at:
            plan.append((arrival, story_conn, 26, "story"))
            continue
        c = conns[int(r() * len(conns))]
        if c.kind == "tcp":
            op = rng.choice([4, 29, 21, 45, 45, 45])
        else:
            op = rng.choice([44, 45, 14, 0])
        plan.append((arrival, c, op, None))
    # Requests are sent in time order (a connection's next call waits for its previous
    # answer), and the server dispatches them in arrival order (its endpoint's completion
    # port): each server start follows the previous one.
    queue = [(arrival, n, c, op, story) for n, (arrival, c, op, story) in enumerate(plan)]
    heapq.heapify(queue)
    last_start = 0
    while queue:
        arrival, n, c, op, story = heapq.heappop(queue)
        if c.free_at > arrival:
            heapq.heappush(queue, (c.free_at, n, c, op, story))
            continue
        tq = arrival
        iface = NETLOGON_IF if c.kind == "tcp" else LSARPC_IF
        cid = c.call_id
        c.call_id += 1
        stub = bytes(24 + int(r() * 200))
        if c.kind == "tcp":
            req = W.dcerpc_request(cid, 0, op, stub, auth=(RPC_C_AUTHN_NETLOGON, 6, bytes(32)))
            t_req = cap(tq, c.flow.send(0, req))
        else:
            req = W.dcerpc_request(cid, 0, op, stub)
            mid = c.mid
            c.mid += 1
            t_req = cap(tq, c.flow.send(0, W.smb2(W.SMB2_IOCTL, mid, W.smb2_ioctl_request(c.fid, req))))
        # the server: a worker takes it
        wf, wi = heapq.heappop(worker_free)
        w = pool[wi]
        ts = max(t_req + 30 * US + int(r() * 40 * US), wf + 5 * US, last_start + 1 * US)
        last_start = ts
        proto = 1 if c.kind == "tcp" else 2
        ep = str(NETLOGON_PORT) if c.kind == "tcp" else "\\PIPE\\lsass"
        fields: dict[str, Any] = {
            "interface_uuid": iface, "procnum": op, "protocol": proto, "network_address": P.NULL_STRING,
            "endpoint": ep, "options": P.NULL_STRING, "auth_level": 6 if c.kind == "tcp" else 1,
            "auth_service": RPC_C_AUTHN_NETLOGON if c.kind == "tcp" else RPC_C_AUTHN_WINNT,
            "impersonation_level": 2}
        act = sim.activity()
        tr.rpc(w, ts, P.RPC_SERVER_START, act, P.PayloadEncoder.rpc_call_start(**fields), None)
        srv_start = ts
        failures = []
        status = 0
        ts += 10 * US + int(r() * 30 * US)
        if story:
            ts = sim.reg(w, ts, read_op, 0, None, None, None)
            ts += 20 * US
            sim.reg(w, ts, denied_op, STATUS_ACCESS_DENIED, None, None, None)
            failures.append({"kind": "registry.open", "path": "HKLM\\" + denied_key[len("\\REGISTRY\\MACHINE\\"):],
                             "status": STATUS_ACCESS_DENIED, "tid": w.tid})
            ts += 25 * US
            status = ERROR_ACCESS_DENIED
        else:
            if r() < 0.5:
                ts = sim.reg(w, ts, read_op, 0, None, None, None)
            nested = None
            if r() < 0.1:
                nested = sim.call(w, dns, C.DNS_IF, 0, ts + 5 * US)
                ts = w.free_at + 5 * US
            ts += int(r() * 150 * US)
            _ = nested
        tr.rpc(w, ts, P.RPC_SERVER_STOP, act, P.PayloadEncoder.rpc_call_stop(status), None)
        srv_end = ts
        w.free_at = ts + 5 * US
        heapq.heappush(worker_free, (ts + 5 * US, wi))
        t_resp = ts + 20 * US + int(r() * 40 * US)
        if status:
            pdu = W.dcerpc_fault(cid, 0, status)
        elif c.kind == "tcp":
            pdu = W.dcerpc_response(cid, 0, bytes(40), auth=(RPC_C_AUTHN_NETLOGON, 6, bytes(32)))
        else:
            pdu = W.dcerpc_response(cid, 0, bytes(40))
        resp_frames = c.flow.send(1, pdu) if c.kind == "tcp" else c.flow.send(
            1, W.smb2(W.SMB2_IOCTL, mid, W.smb2_ioctl_response(c.fid, pdu), response=True))
        req_ticks = clock.filetime(tq) - offset
        resp_ticks = clock.filetime(t_resp) - offset
        t_end = cap(t_resp, resp_frames)
        c.free_at = t_end + 10 * US
        truth_calls.append({
            "client": {"address": c.ip, "port": c.port}, "server": {"address": SERVER_IP,
                                                                    "port": NETLOGON_PORT if c.kind == "tcp" else 445},
            "protocol": "TCP" if c.kind == "tcp" else "NP", "pipe": "lsarpc" if c.kind == "np" else None,
            "call_id": cid, "interface": iface, "opnum": op,
            "procedure": (NETLOGON_OPS if c.kind == "tcp" else LSARPC_OPS)[op],
            "request_ts": req_ticks - req_ticks % tick, "response_ts": resp_ticks - resp_ticks % tick,
            "server_pid": w.pid, "server_tid": w.tid, "server_image": "lsass.exe",
            "server_start": clock.filetime(srv_start), "server_end": clock.filetime(srv_end),
            "wire_status": status, "failures": failures, "story": bool(story),
        })
        if order[0] > 4096:
            writer.drain(tq - 50 * MS)
    t_end = max(c.free_at for c in conns) + 2 * MS
    busy = [th.free_at for p in world.procs for th in p.threads if th.free_at < (1 << 62)]
    t_end = max([t_end] + busy) + 1 * MS
    t_end = sim.rundown(t_end, start=False)
    writer.close(t_end + 20)
    if etw is None:
        assert capture is not None  # packets="pcap" (no etw) without a capture path was refused above
        frames.sort()
        with open(capture, "wb") as fh:
            pw = W.PcapWriter(fh)
            for ticks, _o, fr in frames:
                pw.frame(ticks, fr)
    doc = {"scenario": "remote", "seed": seed, "packets": packets, "offset": offset,
           "server": {"address": SERVER_IP, "name": "DC01", "pid": lsass.pid, "image": "lsass.exe"},
           "capture_start": clock.filetime(capture_start_qpc) - offset, "frames": order[0],
           "packet_events": etw.events if etw is not None else 0, "calls": truth_calls}
    if truth is not None:
        Path(truth).write_text(json.dumps(doc, indent=1))
    return doc
