"""Fuzz every rpctrace reader with inputs mutated from the real samples.

    python benchmarks/fuzz.py [--target etl|pml|evtx|xml|sd|sddl|hive|pcap|pdb|pe ...] [--count N] [--seconds S]
                              [--seed N] [--out DIR] [--workers 2] [--timeout 10] [--memory-mb 1024]
    python benchmarks/fuzz.py --target T --replay FILE        # run one saved input in this process
    python benchmarks/fuzz.py --target T --minimize FILE      # shrink a crashing input (same signature)

Targets and what one input goes through (the reader's documented error is a *clean* error):

======  =========================================================================  =========================
target  run on each input                                                          clean error
======  =========================================================================  =========================
etl     ``EtlReader(path)`` strict and ``keep_going`` (events fully consumed), then  InputError
        ``rpctrace.trace.load([path])`` (strict on even inputs, keep_going on odd),
        then ``pipeline.correlate_files`` (the streamed path: the C engine where built;
        operations failed/all/report) and every call's record and table line
pml     ``PmlReader`` (strict on even inputs, keep_going on odd), events consumed     InputError
evtx    ``EvtxReader`` (same alternation)                                           InputError
xml     ``EventXmlReader`` (same alternation)                                       InputError
sd      ``parse_binary`` then ``to_sddl`` and ``to_dict``                           SecurityDescriptorError
sddl    ``parse_sddl`` then ``to_sddl``                                             SecurityDescriptorError
hive    ``Hive(path).iter_security()`` consumed, each descriptor ``parse_binary``'d  HiveError (raised or
                                                                                    yielded), SD errors
pcap    ``NetReader`` (strict on even inputs, keep_going on odd), events consumed     InputError
        into ``wire_calls``
pdb     ``load_pdb(path)``: symbolic's PDB reader and symcache writer in rpctrace's  InputError (also for a
        PDB reader process (a child of the worker, under its limits), then lookups   reader that died or
        of the test modules' functions and inline sites, names undecorated           timed out)
pe      ``read_pe(path)`` (pefile headers, sections, debug directory, CodeView)      InputError
======  =========================================================================  =========================

Seeds come from the real samples, read at run time: tests/data (ETL traces, trimmed to a few
buffers of a few dozen records each so one input costs milliseconds, and a real pktmon trace whole; Procmon logs reduced to a
window of events with the tables they need), ../shared/samples/evtx (GPL: read from ../shared
only, never copied), ../shared/samples/hives (the small SECURITY and SAM hives; security
descriptors of every hive), SDDL rendered from those descriptors, and small XML exports written
here, and the PE/PDB pairs of tests/data/symbols (clang + lld-link builds, with full and
public-only PDBs) for ``pdb`` and ``pe``.  The ETL target also gets traces of the trace writer (``rpctrace.synth``, trimmed, one
compressed; and two holding packets as netsh trace and pktmon record them, which the streamed path
of the target decodes through the frame decoder), because no public trace holds ALPC, RPC or
registry events, nor remote RPC traffic in packet events.

Mutations (1 to 16 per input): bit flips, random bytes, "interesting" integers (0, 0xFFFFFFFF,
0x7FFFFFFF, 0x80000000, the field's own value +-1, the file size...) written at the header and
length-field offsets of each seed, inserts (random bytes, dictionary tokens, copied chunks),
deletes, truncations, duplicated chunks and splices between two seeds of the same target.
Input *i* of a target depends only on (--seed, target, i), so a run is reproducible.

Each input runs in a pool of worker processes (``multiprocessing``, spawn): a worker limits its
address space to --memory-mb (RLIMIT_AS), and the parent kills and restarts a worker whose input
runs longer than --timeout seconds.  Outcomes: ok, clean (the documented error, one line, naming
the file), crash (any other exception, a clean error on several lines, or a dead worker), hang
(timeout), oom (MemoryError, also when a reader caught it and reported it as a clean error, or a
worker killed by a failed native allocation).  Every crash, hang and oom input is saved under
--out with its traceback; the exit status is 1 when any happened.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import lzma
import os
import platform
import random
import re
import shutil
import struct
import sys
import tempfile
import time
import traceback
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
SHARED = (ROOT / ".." / "shared" / "samples").resolve()
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

TARGETS = ("etl", "pml", "evtx", "xml", "sd", "sddl", "hive", "pcap", "pdb", "pe")
FILE_SUFFIX = {"etl": ".etl", "pml": ".pml", "evtx": ".evtx", "xml": ".xml", "hive": ".hive", "pcap": ".pcap",
               "pdb": ".pdb", "pe": ".dll"}
OUTCOMES = ("ok", "clean", "crash", "hang", "oom")
DEFAULT_TIMEOUT = 10.0
DEFAULT_MEMORY_MB = 1024
SAVE_PER_SIGNATURE = 3


# ============================================================================ seeds


@dataclasses.dataclass
class Seed:
    """One starting input: its bytes, where its header/length fields are, where its data lives."""

    name: str
    data: bytes
    fields: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # (offset, width)
    hot: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # [start, end) ranges


class MissingSamples(RuntimeError):
    pass


def _need(path: Path) -> Path:
    if not path.exists():
        raise MissingSamples(f"{path} is missing (fuzz seeds come from tests/data and ../shared/samples)")
    return path


# ---------------------------------------------------------------------------- ETL

_BUF = struct.Struct("<IIIiQqQHHIIHH")
_SIZE_AT_4 = {0x01, 0x02, 0x03, 0x04, 0x10, 0x11}  # SYSTEM, COMPACT, PERFINFO: u16 size at +4
_SIZE_IN_MARKER = {0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x12, 0x13, 0x14, 0x15}


def etl_buffers(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, size, flags) of each buffer of a (valid) trace."""
    out = []
    off = 0
    while off + 0x48 <= len(data):
        size, *_rest = _BUF.unpack_from(data, off)
        flags = _rest[-2]
        if size < 0x48 or off + size > len(data):
            break
        out.append((off, size, flags))
        off += size
    return out


def etl_records(area: bytes) -> list[tuple[int, int, int]]:
    """(position, size, header type) of each record of an uncompressed record area."""
    out = []
    pos = 0
    while pos + 8 <= len(area):
        marker = struct.unpack_from("<I", area, pos)[0]
        if marker == 0xFFFFFFFF:
            break
        top, htype = marker >> 24, (marker >> 16) & 0xFF
        if top == 0xC0 and htype in _SIZE_AT_4:
            size = struct.unpack_from("<H", area, pos + 4)[0]
        elif (top == 0xC0 and htype in _SIZE_IN_MARKER) or (top & 0xF0) == 0x90:
            size = marker & 0xFFFF
        else:
            break
        if size < 8 or pos + size > len(area):
            break
        out.append((pos, size, htype if top == 0xC0 else 0x0F))
        pos += (size + 7) & ~7
    return out


def etl_trim(data: bytes, keep: list[int] | None = None, max_records: int = 40) -> bytes:
    """A smaller trace: buffers ``keep`` (indexes; buffer 0 always) with at most ``max_records``
    records each.  Compressed buffers are kept whole; BufferSize/SavedOffset/CurrentOffset/
    Offset of a trimmed buffer name its new end, as in traces whose buffers are not full."""
    bufs = etl_buffers(data)
    chosen = [0] + [i for i in (keep if keep is not None else range(1, len(bufs))) if 0 < i < len(bufs)]
    out = bytearray()
    for i in chosen:
        off, size, flags = bufs[i]
        if flags & 0x40:
            out += data[off:off + size]
            continue
        head = bytearray(data[off:off + 0x48])
        area = data[off + 0x48:off + size]
        recs = etl_records(area)[: max_records + (1 if i == 0 else 0)]
        end = 0
        for pos, rsize, _t in recs:
            end = pos + ((rsize + 7) & ~7)
        end = min(end, len(area))
        new = 0x48 + end
        struct.pack_into("<III", head, 0, new, new, new)
        struct.pack_into("<I", head, 0x30, new)
        out += head + area[:end]
    # the logfile header's BuffersWritten (+0x24 of its payload, behind the 0x20-byte record
    # header) says how many buffers the trimmed trace holds, or every seed reads as cut short
    if len(out) >= 0x48 + 0x20 + 0x28:
        struct.pack_into("<I", out, 0x48 + 0x20 + 0x24, len(chosen))
    return bytes(out)


def etl_compress(data: bytes) -> bytes:
    """Compress buffers 1.. of an uncompressed trace as Windows compressed-mode loggers do (the
    layout rpctrace.synth writes) and set EVENT_TRACE_COMPRESSED_MODE in the logfile header."""
    from rpctrace.synth.xpress import compress

    out = bytearray()
    for i, (off, size, _flags) in enumerate(etl_buffers(data)):
        if i == 0:
            buf0 = bytearray(data[off:off + size])
            mode_at = 0x48 + 0x20 + 32
            mode = struct.unpack_from("<I", buf0, mode_at)[0]
            struct.pack_into("<I", buf0, mode_at, mode | 0x04000000)
            out += buf0
            continue
        head = bytearray(data[off:off + 0x48])
        filled = struct.unpack_from("<I", head, 0x30)[0]
        area = data[off + 0x48:off + (filled if 0x48 <= filled <= size else size)]
        stream = compress(area)
        struct.pack_into("<I", head, 0, 0x48 + len(stream))
        struct.pack_into("<II", head, 4, 0x48 + len(area), 0x48 + len(area))
        struct.pack_into("<I", head, 0x30, 0x48 + len(area))
        struct.pack_into("<H", head, 0x34, struct.unpack_from("<H", head, 0x34)[0] | 0x40)
        out += head + stream
    return bytes(out)


def etl_fields(data: bytes) -> list[tuple[int, int]]:
    """Buffer header fields, the logfile header's fields and every record header's size fields."""
    fields: list[tuple[int, int]] = []
    for i, (off, size, flags) in enumerate(etl_buffers(data)):
        fields += [(off, 4), (off + 4, 4), (off + 8, 4), (off + 0x2C, 4), (off + 0x30, 4), (off + 0x34, 2),
                   (off + 0x36, 2), (off + 0x10, 8), (off + 0x28, 2)]
        if i == 0:
            lfh = off + 0x48 + 0x20
            fields += [(lfh + o, w) for o, w in ((0, 4), (4, 4), (12, 4), (16, 8), (32, 4), (36, 4), (44, 4),
                                                 (48, 4), (52, 4))]
        if flags & 0x40:
            continue
        for pos, rsize, htype in etl_records(data[off + 0x48:off + size])[:64]:
            at = off + 0x48 + pos
            fields += [(at, 4), (at + 2, 1)]  # the marker, the header type
            if htype in _SIZE_AT_4:  # version, size, opcode, group, (thread id)
                fields += [(at, 1), (at, 2), (at + 4, 2), (at + 6, 1), (at + 7, 1), (at + 8, 4)]
            elif htype in (0x12, 0x13):  # size, flags (extended items), property, event id, version, opcode
                fields += [(at, 2), (at + 4, 2), (at + 6, 2), (at + 0x28, 2), (at + 0x2A, 1), (at + 0x2D, 1)]
                if rsize > 0x58:
                    fields += [(at + 0x50, 2), (at + 0x52, 2), (at + 0x54, 2), (at + 0x56, 2)]
            else:
                fields += [(at, 2)]
            for k in range(0x10 if htype in (0x10, 0x11) else 0x18, min(rsize, 0x60), 4):
                fields.append((at + k, 4))  # payload words: lengths, counts, pointers
    return [f for f in fields if f[0] + f[1] <= len(data)]


def _unzip_etls(name: str) -> dict[str, bytes]:
    with zipfile.ZipFile(_need(DATA / name)) as zf:
        return {Path(n).name: zf.read(n) for n in zf.namelist() if n.lower().endswith(".etl")}


def etl_seeds() -> list[Seed]:
    raw: dict[str, bytes] = {}
    raw["smallEtlFile.etl"] = _need(DATA / "smallEtlFile.etl").read_bytes()
    raw["lxcore_kernel.etl"] = _need(DATA / "lxcore_kernel.etl").read_bytes()
    for name in ("AMSITrace.etl", "ShutdownPerfDiagLogger.etl"):
        raw[name] = lzma.decompress(_need(DATA / (name + ".xz")).read_bytes())
    for z in ("primitive-types.etl.zip", "net.4.5.2.x64.etl.zip", "diaghub-dotnetcore3.1-win-x64-diagsession.zip",
              "sawbuck-win7-classic-kernel.zip"):
        raw.update(_unzip_etls(z))
    made: list[tuple[str, bytes]] = [
        ("smallEtlFile.etl", raw["smallEtlFile.etl"]),
        ("primitive-types.etl", raw["primitive-types.etl"]),
        ("lxcore_kernel.etl", raw["lxcore_kernel.etl"]),
        ("diaghub.user_injected.1.etl (compressed)", raw["diaghub.user_injected.1.etl"]),
        ("AMSITrace.etl[0,1,5]", etl_trim(raw["AMSITrace.etl"], [1, 5], 40)),
        ("ShutdownPerfDiagLogger.etl[0,1,20,48]", etl_trim(raw["ShutdownPerfDiagLogger.etl"], [1, 20, 48], 30)),
        ("net.4.5.2.x64.etl[0..7]", etl_trim(raw["net.4.5.2.x64.etl"], list(range(1, 8)), 30)),
        ("net.4.5.2.x64.etl[0,100,200,300]", etl_trim(raw["net.4.5.2.x64.etl"], [100, 200, 300], 30)),
        ("diaghub.etl[0,1,50]", etl_trim(raw["diaghub.etl"], [1, 50], 30)),
        ("diaghub.kernel.1.etl[0,1] (compressed)", etl_trim(raw["diaghub.kernel.1.etl"], [1], 30)),
        # Windows 7 classic-header Process/Image events, 64-bit payloads in a 32-bit logger
        ("image_data_64_v2.etl", etl_trim(raw["image_data_64_v2.etl"], None, 30)),
        ("process_data_64_v3.etl", etl_trim(raw["process_data_64_v3.etl"], None, 30)),
        # a real pktmon trace (PktMon 160 packet events among component and counter events)
        ("demikernel-PktMon.etl", _need(DATA / "net" / "demikernel-PktMon.etl").read_bytes()),
    ]
    made += _synth_etl_seeds()
    return [Seed(name, data, etl_fields(data)) for name, data in made]


def _synth_etl_seeds() -> list[tuple[str, bytes]]:
    """Traces of the trace writer (ALPC, RPC, registry, stacks: no public trace has them)."""
    from rpctrace import synth

    out = []
    with tempfile.TemporaryDirectory(prefix="rpctrace-fuzz-seed-") as tmp:
        for scenario, ptr in (("audiosrv-access-denied", 8), ("nested", 4), ("lost-events", 8)):
            path = os.path.join(tmp, f"{scenario}.etl")
            synth.synthesize(scenario, path, None, seed=1, calls=1, clients=1, pointer_size=ptr)
            data = Path(path).read_bytes()
            out.append((f"synth:{scenario}/{ptr * 8}-bit", etl_trim(data, None, 25)))
        out.append(("synth:audiosrv-access-denied/64-bit compressed", etl_compress(out[0][1])))
        # stacks as stack-cache references and definitions, deferred user parts
        path = os.path.join(tmp, "keys.etl")
        synth.synthesize("audiosrv-access-denied", path, None, seed=1, calls=1, clients=1, stack_cache=2)
        out.append(("synth:audiosrv-access-denied/64-bit stack keys", etl_trim(Path(path).read_bytes(), None, 40)))
        out += _packet_etl_seeds(tmp)
    return out


def _packet_etl_seeds(tmp: str) -> list[tuple[str, bytes]]:
    """Traces holding packets as netsh trace (NDIS-PacketCapture, some frames in several
    events) and pktmon (PktMon, each packet at two components) write them: a DCE/RPC bind and
    calls over TCP, so the mutated packets go through the whole frame decoder too."""
    from rpctrace.synth import pcapfile as W
    from rpctrace.synth.etlfile import Clock, EtlWriter
    from rpctrace.synth.packetetw import NdisPackets, PktmonPackets

    flow = W.TcpFlow(("10.0.0.5", 52311), ("10.0.0.1", 49676), 1000, 2000)
    frames = flow.handshake() + flow.send(0, W.dcerpc_bind(1, [(0, "12345678-1234-abcd-ef00-01234567cffb", 1, 0)]))
    frames += flow.send(1, W.dcerpc_bind_ack(1, "49676", 1))
    for n in range(2):
        frames += flow.send(0, W.dcerpc_request(2 + n, 0, 26, bytes(100)))
        frames += flow.send(1, W.dcerpc_fault(2 + n, 0, 5) if n else W.dcerpc_response(2 + n, 0, bytes(60)))
    out = []
    for name, make in (("ndis", lambda w: NdisPackets(w, 2, fragment=120)),
                       ("pktmon", lambda w: PktmonPackets(w, 2, appearances=2))):
        path = os.path.join(tmp, f"packets-{name}.etl")
        writer = EtlWriter(path, clock=Clock(133_000_000_000_000_000, 10**8), cpus=2, buffer_size=0x2000)
        packets = make(writer)
        (packets.attach if name == "ndis" else packets.components)(10**8 + 10)
        for i, fr in enumerate(frames):
            packets.frame(10**8 + 100 + 40 * i, fr, send=fr[26:30] == bytes([10, 0, 0, 1]))
        writer.close(10**8 + 100 + 40 * len(frames) + 100)
        out.append((f"synth:packets/{name}", Path(path).read_bytes()))
    return out


# ---------------------------------------------------------------------------- PML

PML_SAMPLES = ("LogFileUTC64Process", "LogFileUTC64Registry", "LogFileUTC64Filesystem", "LogfileTests64bitUTC")
_PML_HEAD = 0x3A8


def pml_reduce(b: bytes, start: int, count: int) -> bytes:
    """A Procmon log holding events [start, start+count) of ``b``, the processes they (and the
    System process) belong to, the whole strings table, no icons, and the host and port tables."""
    total = struct.unpack_from("<I", b, 0x234)[0]
    ev_off, arr, proc, strs, icons = struct.unpack_from("<5Q", b, 0x240)
    hosts = struct.unpack_from("<Q", b, 0x3A0)[0]
    offs = [struct.unpack_from("<I", b, arr + 5 * i)[0] for i in range(total)] + [arr]
    s, e = start, min(total, start + count)
    events = b[offs[s]:offs[e]]
    delta = offs[s] - ev_off
    used = {struct.unpack_from("<I", b, offs[i])[0] for i in range(s, e)}
    # the process table: count, index array, offset array (relative to the table), entries
    nproc = struct.unpack_from("<I", b, proc)[0]
    poffs = [struct.unpack_from("<I", b, proc + 4 + 4 * nproc + 4 * i)[0] for i in range(nproc)]
    ends = sorted(poffs) + [strs - proc]
    entries = []
    for po in poffs:
        at = proc + po
        pidx, pid = struct.unpack_from("<II", b, at)
        end = ends[ends.index(po) + 1]
        if pidx in used or pid == 4:
            entries.append((pidx, b[at:proc + end]))
    table = bytearray(struct.pack("<I", len(entries)))
    table += b"".join(struct.pack("<I", p) for p, _ in entries)
    cursor = 4 + 8 * len(entries)
    rel = []
    for _p, body in entries:
        rel.append(cursor)
        cursor += len(body)
    table += b"".join(struct.pack("<I", r) for r in rel) + b"".join(body for _p, body in entries)
    out = bytearray(b[:ev_off]) + events
    new_arr = len(out)
    for i in range(s, e):
        out += struct.pack("<I", offs[i] - delta) + b[arr + 5 * i + 4:arr + 5 * i + 5]
    new_proc = len(out)
    out += table
    new_strs = len(out)
    out += b[strs:icons]
    new_icons = len(out)
    out += struct.pack("<I", 0)  # an empty icon table (procmon-parser does not read it)
    new_hosts = len(out)
    out += b[hosts:]
    struct.pack_into("<I", out, 0x234, e - s)
    struct.pack_into("<5Q", out, 0x240, ev_off, new_arr, new_proc, new_strs, new_icons)
    struct.pack_into("<Q", out, 0x3A0, new_hosts)
    return bytes(out)


def pml_fields(b: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    fields = [(4, 4), (8, 4), (0x234, 4), (0x398, 8), (0x3A0, 8)] + [(0x240 + 8 * i, 8) for i in range(5)]
    total = struct.unpack_from("<I", b, 0x234)[0]
    ev_off, arr, proc, strs, icons = struct.unpack_from("<5Q", b, 0x240)
    hosts = struct.unpack_from("<Q", b, 0x3A0)[0]
    for i in range(total):
        fields += [(arr + 5 * i, 4), (arr + 5 * i + 4, 1)]
        off = struct.unpack_from("<I", b, arr + 5 * i)[0]
        fields += [(off, 4), (off + 4, 4), (off + 8, 4), (off + 12, 2), (off + 40, 2), (off + 44, 4), (off + 48, 4)]
        depth, dsize = struct.unpack_from("<H", b, off + 40)[0], struct.unpack_from("<I", b, off + 44)[0]
        details = off + 52 + depth * 8
        fields += [(details + k, 4) for k in range(0, min(dsize, 48), 2)]  # path lengths, flags, sizes
    nproc = struct.unpack_from("<I", b, proc)[0]
    fields += [(proc, 4)] + [(proc + 4 + 4 * i, 4) for i in range(2 * nproc)]
    for i in range(nproc):
        at = proc + struct.unpack_from("<I", b, proc + 4 + 4 * nproc + 4 * i)[0]
        # index, pid, parent, session, 64-bit flag, 8 string indexes, 2 icon indexes, module count
        # (64-bit logs: the module count follows a pointer), then the first modules' base, size, path
        fields += [(at + k, 4) for k in (0, 4, 8, 24, 52, 56, 60, 64, 68, 72, 76, 80, 84, 88, 92, 104)]
        for j in range(min(struct.unpack_from("<I", b, at + 104)[0], 4)):
            m = at + 108 + 64 * j
            fields += [(m + 8, 8), (m + 16, 4), (m + 20, 4)]
    nstr = struct.unpack_from("<I", b, strs)[0]
    fields += [(strs, 4)] + [(strs + 4 + 4 * i, 4) for i in range(min(nstr, 64))]
    for i in range(min(nstr, 32)):
        fields.append((strs + struct.unpack_from("<I", b, strs + 4 + 4 * i)[0], 4))
    fields += [(icons, 4), (hosts, 4)]
    hot = [(0, _PML_HEAD), (ev_off, arr), (arr, proc), (proc, strs), (strs, min(icons, strs + 8192)), (icons, len(b))]
    return [f for f in fields if f[0] + f[1] <= len(b)], hot


def pml_seeds() -> list[Seed]:
    seeds = []
    for name in PML_SAMPLES:
        b = zlib.decompress(_need(DATA / f"Compressed{name}PML").read_bytes())
        total = struct.unpack_from("<I", b, 0x234)[0]
        for start in (0, total // 2):
            data = pml_reduce(b, start, 24)
            fields, hot = pml_fields(data)
            seeds.append(Seed(f"{name}[{start}:+24]", data, fields, hot))
    return seeds


# ---------------------------------------------------------------------------- EVTX


def evtx_seeds() -> list[Seed]:
    folder = _need(SHARED / "evtx")
    seeds = []
    for path in sorted(folder.glob("*.evtx")):
        data = path.read_bytes()  # GPL samples: read here, never copied into the project
        fields = [(8, 8), (16, 8), (24, 8), (32, 4), (36, 2), (38, 2), (40, 2), (42, 2), (0x78, 4), (0x7C, 4)]
        hot = [(0, 0x80)]
        off = 0x1000
        while off + 0x200 <= len(data):
            if data[off:off + 8] != b"ElfChnk\x00":
                off += 0x10000
                continue
            fields += [(off + k, 8) for k in (8, 16, 24, 32)] + [(off + k, 4) for k in (40, 44, 48, 52, 0x78, 0x7C)]
            fields += [(off + 0x80 + 4 * i, 4) for i in range(96)]  # string and template pointers
            free = struct.unpack_from("<I", data, off + 48)[0]
            hot.append((off, off + min(max(free, 0x200), 0x10000)))
            pos = off + 0x200
            while pos + 24 <= off + 0x10000 and data[pos:pos + 4] == b"\x2a\x2a\x00\x00":
                size = struct.unpack_from("<I", data, pos + 4)[0]
                if size < 28 or pos + size > off + 0x10000:
                    break
                fields += [(pos + 4, 4), (pos + 8, 8), (pos + 16, 8), (pos + size - 4, 4)]
                fields += [(pos + 24 + k, 4) for k in range(0, min(size - 28, 256), 2)]  # BinXML sizes, counts
                pos += size
            off += 0x10000
        seeds.append(Seed(path.name, data, [f for f in fields if f[0] + f[1] <= len(data)], hot))
    if not seeds:
        raise MissingSamples(f"no .evtx file in {folder}")
    return seeds


# ---------------------------------------------------------------------------- XML exports

_RPC_GUID = "{6AD52B32-D609-4BE9-AE07-CE8DAE937E39}"
_IF = "{35464382-AD29-4881-9392-B43E55B8F7AC}"


def _xml_event(rec: int, eid: int, ts: str, pid: int, tid: int, data: list[tuple[str, str]], *, task=1, opcode=1,
               activity: str | None = "{1B8F6E2A-0000-4000-8000-00000000C11E}", cpu: bool = False) -> str:
    corr = f'<Correlation ActivityID="{activity}"/>' if activity else "<Correlation/>"
    extra = ' ProcessorID="1" KernelTime="0" UserTime="15"' if cpu else ""
    items = "".join(f'<Data Name="{n}">{v}</Data>' for n, v in data)
    return ('<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System>'
            f'<Provider Name="Microsoft-Windows-RPC" Guid="{_RPC_GUID}"/><EventID>{eid}</EventID><Version>1</Version>'
            f'<Level>4</Level><Task>{task}</Task><Opcode>{opcode}</Opcode><Keywords>0x4000000000000000</Keywords>'
            f'<TimeCreated SystemTime="{ts}"/><EventRecordID>{rec}</EventRecordID>{corr}'
            f'<Execution ProcessID="{pid}" ThreadID="{tid}"{extra}/><Channel>Microsoft-Windows-RPC/Debug</Channel>'
            f"<Computer>HOST</Computer><Security UserID=\"S-1-5-18\"/></System><EventData>{items}</EventData></Event>")


def xml_documents() -> list[tuple[str, bytes]]:
    start = [("InterfaceUuid", _IF), ("ProcNum", "71"), ("Protocol", "3"), ("NetworkAddress", ""),
             ("Endpoint", "AudioClientRpc"), ("Options", ""), ("AuthenticationLevel", "6"),
             ("AuthenticationService", "10"), ("ImpersonationLevel", "2")]
    rpc = [
        _xml_event(1, 16, "2024-05-01T10:00:00.0000001Z", 1500, 1510,
                   [("Protocol", "ncalrpc"), ("Endpoint", "AudioClientRpc"), ("NetworkAddress", ""),
                    ("PendingQueueSize", "0"), ("EndpointFlags", "0"), ("NicFlags", "0")], task=4, activity=None),
        _xml_event(2, 14, "2024-05-01T10:00:00.0000002Z", 1500, 1510,
                   [("InterfaceUuid", _IF), ("TypeMgrUuid", "{00000000-0000-0000-0000-000000000000}"),
                    ("Flags", "0x20"), ("MaxCalls", "1234"), ("SDSize", "4"), ("SD", "01020304")], task=4, activity=None),
        _xml_event(3, 5, "2024-05-01T10:00:01.1234567Z", 4242, 4243, start, cpu=True),
        _xml_event(4, 6, "2024-05-01T10:00:01.1240000Z", 1500, 1501, start, task=2),
        _xml_event(5, 8, "2024-05-01T10:00:01.129Z", 1500, 1501, [("Status", "0")], task=2, opcode=2),
        _xml_event(6, 7, "2024-05-01T10:00:01.13+02:00", 4242, 4243, [("Status", "5")], opcode=2),
        _xml_event(7, 1, "2024-05-01T10:00:01.1300001Z", 1500, 1501,
                   [("ImageName", "svchost.exe"), ("ComputerName", "HOST"), ("ProcessId", "1500"),
                    ("TimeStamp", "2024-05-01T10:00:01.130Z"), ("Component", "2"), ("Status", "5"),
                    ("DetectionLocation", "1710"), ("Flags", "0"), ("ParamCount", "1"), ("Params", "5")],
                   activity=None),
    ]
    share = ('<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System>'
             '<Provider Name="Microsoft-Windows-Security-Auditing" Guid="{54849625-5478-4994-A5BA-3E3B0328C30D}"/>'
             "<EventID>5145</EventID><Version>0</Version><Level>0</Level><Task>12811</Task><Opcode>0</Opcode>"
             "<Keywords>0x8020000000000000</Keywords><TimeCreated SystemTime=\"2019-03-19T15:16:52.581853100Z\"/>"
             "<EventRecordID>204338</EventRecordID><Correlation/><Execution ProcessID=\"4\" ThreadID=\"3108\"/>"
             "<Channel>Security</Channel><Computer>DC.example.local</Computer><Security/></System><EventData>"
             '<Data Name="SubjectUserSid">S-1-5-21-1-2-3-1103</Data><Data Name="SubjectUserName">user&amp;co</Data>'
             '<Data Name="ShareName">\\\\*\\IPC$</Data><Data Name="RelativeTargetName">svcctl</Data>'
             '<Data Name="AccessMask">0x12019f</Data><Data Name="AccessList">%%1538 %%1541</Data>'
             "</EventData></Event>")
    scm = ('<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System>'
           '<Provider Name="Service Control Manager" Guid="{555908d1-a6d7-4695-8e1e-26931d2012f4}" '
           'EventSourceName="Service Control Manager"/><EventID Qualifiers="16384">7036</EventID><Version>0</Version>'
           "<Level>4</Level><Task>0</Task><Opcode>0</Opcode><Keywords>0x8080000000000000</Keywords>"
           '<TimeCreated SystemTime="2024-05-01T10:00:03.5Z"/><EventRecordID>99</EventRecordID><Correlation/>'
           '<Execution ProcessID="640" ThreadID="700"/><Channel>System</Channel><Computer>HOST</Computer>'
           '<Security/></System><EventData><Data Name="param1">Windows Audio</Data><Data Name="param2">running</Data>'
           "<Binary>410075</Binary></EventData></Event>")
    user = ('<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System><Provider Name="Demo"/>'
            "<EventID>42</EventID><TimeCreated SystemTime=\"2024-05-01T10:00:04Z\"/><Execution ProcessID=\"1\"/>"
            "</System><UserData><Rule xmlns=\"urn:demo\"><Name>a<![CDATA[<b>]]></Name><Nested><Deep>1</Deep>"
            "</Nested></Rule></UserData></Event>")
    wevtutil = "\r\n".join(rpc[:4]).encode()
    viewer = '<?xml version="1.0" encoding="utf-16"?>\r\n<Events>' + "\r\n".join(rpc[2:] + [scm]) + "</Events>"
    tracerpt = '<?xml version="1.0" encoding="UTF-8"?>\n<Events>\n' + "\n".join([share, user, rpc[6]]) + "\n</Events>\n"
    return [
        ("wevtutil (UTF-8, no root)", wevtutil),
        ("Event Viewer (UTF-16 LE, BOM)", b"\xff\xfe" + viewer.encode("utf-16-le")),
        ("tracerpt (UTF-8 declaration)", tracerpt.encode()),
        ("UTF-8 BOM, one event", b"\xef\xbb\xbf" + scm.encode()),
    ]


def xml_seeds() -> list[Seed]:
    return [Seed(name, data) for name, data in xml_documents()]


# ---------------------------------------------------------------------------- hives, SDs, SDDL

HIVE_SEED_NAMES = ("SECURITY", "SAM")
SD_HIVES = ("SAM", "SECURITY", "NTUSER.DAT", "UsrClass.dat", "SYSTEM", "corrupted_system_hive")
HAND_SDDL = (
    "O:BAG:SYD:PAI(A;CI;KA;;;SY)(A;CI;KA;;;BA)(A;CIIO;GA;;;CO)(A;CI;KR;;;BU)(A;CI;KR;;;AC)",
    "O:SYG:SYD:(D;;KW;;;S-1-5-80-3368455640-3374564125-1574154318-1447430993-2545005008)(A;;KA;;;LS)",
    ("D:AI(OA;CIIO;RP;4c164200-20c0-11d0-a768-00aa006e0529;bf967aba-0de6-11d0-a285-00aa003049e2;RU)"
     "(OD;;CR;00299570-246d-11d0-a768-00aa006e0529;;WD)(A;;0x1200a9;;;S-1-15-2-1)"),
    ("D:(XA;;FX;;;S-1-1-0;(@User.Title==\"PM\" && (@User.Division==\"Finance\" || Member_of {SID(BA)})))"
     "(ZA;;KR;4c164200-20c0-11d0-a768-00aa006e0529;;WD;(Exists Token.x))"),
    "S:PAI(ML;;NW;;;LW)(AU;SAFA;KA;;;WD)(OU;FA;WP;4c164200-20c0-11d0-a768-00aa006e0529;;WD)",
    "O:S-1-5-21-1004336348-1177238915-682003330-512G:S-1-0x123456789ABC-7D:NO_ACCESS_CONTROLS:ARAI",
    "D:P(A;OICI;0x1f01ff;;;S-1-5-32-544)(AU;CISA;0x10000000;;;S-1-5-32-545)(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;SY)",
    "D:(A;;GA;;;S-1-5-21-1-2-3-500)(A;ID;GRGX;;;S-1-16-12288)(A;NP;FA;;;OW)(A;;1179817;;;S-1-5-80-0)",
    "O:LAG:DUD:(A;;KA;;;DA)",  # domain-relative aliases: need the domain's SID
)


def _hive_bytes(name: str) -> bytes:
    # the regipy hives (MIT) are copied into tests/data/hives; ../shared has them too
    local = ROOT / "tests" / "data" / "hives" / f"{name}.xz"
    return lzma.decompress((local if local.exists() else _need(SHARED / "hives" / f"{name}.xz")).read_bytes())


@functools.lru_cache(maxsize=4)
def hive_descriptors(names: tuple[str, ...] = SD_HIVES) -> list[tuple[str, bytes]]:
    """Every distinct security descriptor of the sample hives, read with rpctrace.sources.hive."""
    from rpctrace.sources.hive import Hive, read_sk_cell

    seen: dict[bytes, str] = {}
    with tempfile.TemporaryDirectory(prefix="rpctrace-fuzz-hive-") as tmp:
        for name in names:
            path = os.path.join(tmp, name)
            Path(path).write_bytes(_hive_bytes(name))
            hive = Hive(path)
            offsets, _damage = hive.scan_sk_offsets()
            for off in offsets:
                try:
                    sd = read_sk_cell(hive.data, off, hive.bins_end)
                except ValueError:
                    continue
                seen.setdefault(sd, f"{name}@sk{off:#x}")
    return sorted(((n, d) for d, n in seen.items()), key=lambda t: t[0])


def sd_fields(data: bytes) -> list[tuple[int, int]]:
    from rpctrace.security import SecurityDescriptorError, parse_binary

    fields = [(0, 1), (1, 1), (2, 2), (4, 4), (8, 4), (12, 4), (16, 4)]
    try:
        sd = parse_binary(data)
    except SecurityDescriptorError:
        return fields
    for off in struct.unpack_from("<IIII", data, 4):
        if off and off + 8 <= len(data):
            fields += [(off, 1), (off + 1, 1), (off + 2, 2), (off + 4, 2)]
    for acl in (sd.dacl, sd.sacl):
        if acl is None:
            continue
        for ace in acl.aces:
            at = ace.offset
            fields += [(at, 1), (at + 1, 1), (at + 2, 2), (at + 4, 4), (at + 8, 4), (at + 9, 1)]
    return [f for f in fields if f[0] + f[1] <= len(data)]


def sd_seeds() -> list[Seed]:
    from rpctrace.security import parse_sddl, to_binary

    seeds = [Seed(name, data, sd_fields(data)) for name, data in hive_descriptors()]
    for i, text in enumerate(HAND_SDDL):
        try:
            data = to_binary(parse_sddl(text))
        except Exception:
            continue
        seeds.append(Seed(f"sddl#{i}", data, sd_fields(data)))
    return seeds


def sddl_seeds() -> list[Seed]:
    from rpctrace.security import SecurityDescriptorError, parse_binary, to_sddl

    seeds = []
    for name, data in hive_descriptors():
        try:
            text = to_sddl(parse_binary(data))
        except SecurityDescriptorError:
            continue
        seeds.append(Seed(name, text.encode()))
    seeds += [Seed(f"hand#{i}", text.encode()) for i, text in enumerate(HAND_SDDL)]
    return seeds


def hive_fields(data: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Base block fields, hbin headers, and the size/offset/count fields of every allocated cell."""
    fields = [(4, 4), (8, 4), (0x24, 4), (0x28, 4), (0x2C, 4), (0x1FC, 4)]
    hot = [(0, 0x200)]
    declared = struct.unpack_from("<I", data, 0x28)[0]
    end = min(len(data), 4096 + declared)
    pos = 4096
    while pos + 32 <= end and data[pos:pos + 4] == b"hbin":
        size = struct.unpack_from("<I", data, pos + 8)[0]
        fields += [(pos + 4, 4), (pos + 8, 4)]
        cell, stop = pos + 32, min(pos + size, end)
        while cell + 8 <= stop:
            csize = struct.unpack_from("<i", data, cell)[0]
            length = abs(csize)
            if length < 8 or cell + length > stop:
                break
            if csize < 0:
                hot.append((cell, cell + length))
                fields.append((cell, 4))
                sig = data[cell + 4:cell + 6]
                if sig == b"nk":
                    fields += [(cell + 4 + k, 4) for k in (16, 20, 24, 28, 32, 36, 40, 44, 48, 52)]
                    fields += [(cell + 4 + 2, 2), (cell + 4 + 72, 2), (cell + 4 + 74, 2)]
                elif sig == b"sk":
                    fields += [(cell + 8, 4), (cell + 12, 4), (cell + 16, 4), (cell + 20, 4)]
                    fields += [(cell + 24 + f, w) for f, w in ((0, 1), (2, 2), (4, 4), (8, 4), (12, 4), (16, 4))]
                elif sig in (b"lf", b"lh", b"li", b"ri"):
                    fields += [(cell + 6, 2)] + [(cell + 8 + 4 * i, 4) for i in range(min(8, (length - 8) // 4))]
                elif sig == b"vk":
                    fields += [(cell + 6, 2), (cell + 8, 4), (cell + 12, 4), (cell + 16, 4), (cell + 20, 2)]
            cell += length
        pos += max(size, 4096)
    return [f for f in fields if f[0] + f[1] <= len(data)], hot


def hive_seeds() -> list[Seed]:
    seeds = []
    for name in HIVE_SEED_NAMES:
        data = _hive_bytes(name)
        fields, hot = hive_fields(data)
        seeds.append(Seed(name, data, fields, hot))
    return seeds


# ---------------------------------------------------------------------------- network captures


def pcap_fields(data: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Length fields of a capture: pcap record headers (caplen, len) or pcapng block lengths,
    and in each frame the IPv4 total length, TCP sequence number and data offset, NetBIOS and
    DCE/RPC fragment / auth lengths where the payload starts with them."""
    fields: list[tuple[int, int]] = []
    hot: list[tuple[int, int]] = []
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        at = 0
        while at + 12 <= len(data):
            n = struct.unpack_from("<I", data, at + 4)[0]
            fields += [(at + 4, 4), (at + n - 4, 4) if 12 <= n else (at + 4, 4)]
            if struct.unpack_from("<I", data, at)[0] == 6:
                fields += [(at + 20, 4), (at + 24, 4)]
                hot.append((at + 28, at + n - 4))
            if n < 12:
                break
            at += n
        return [f for f in fields if f[0] + f[1] <= len(data)], hot
    at = 24
    fields.append((20, 4))
    while at + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, at + 8)[0]
        fields += [(at + 8, 4), (at + 12, 4)]
        frame = at + 16
        if frame + 54 <= len(data):
            fields += [(frame + 16, 2), (frame + 38, 4), (frame + 46, 1)]
            payload = frame + 54
            if payload + 16 <= len(data) and data[payload] in (0, 5):
                fields += [(payload + 2, 2), (payload + 8, 2), (payload + 10, 2)]
            hot.append((payload, min(len(data), frame + caplen)))
        at = frame + caplen
    return [f for f in fields if f[0] + f[1] <= len(data)], hot


def pcap_seeds() -> list[Seed]:
    """The public captures of tests/data/net and small pairs from the writer (TCP with the
    endpoint mapper, SMB2 pipes), since they exercise what the public ones lack."""
    from rpctrace.synth.remote import synthesize_remote

    seeds = []
    for path in sorted((DATA / "net").glob("*.pcap*")):
        data = path.read_bytes()
        if len(data) > 40000:
            continue
        fields, hot = pcap_fields(data)
        seeds.append(Seed(path.name, data, fields, hot))
    with tempfile.TemporaryDirectory(prefix="rpctrace-fuzz-pcap-") as tmp:
        for seed, calls in ((1, 12), (2, 30)):
            cap = Path(tmp) / f"w{seed}.pcap"
            synthesize_remote(cap, Path(tmp) / f"w{seed}.etl", seed=seed, calls=calls, clients=2)
            data = cap.read_bytes()
            fields, hot = pcap_fields(data)
            seeds.append(Seed(f"writer-{seed}.pcap", data, fields, hot))
    if not seeds:
        raise MissingSamples(f"{DATA / 'net'} holds no capture")
    return seeds


# ---------------------------------------------------------------------------- PDB and PE

SYMBOL_DATA = DATA / "symbols"
_MSF_MAGIC = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\x00\x00\x00"


def msf_layout(data: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(fields, hot ranges) of a (valid) MSF 7.00 file: the superblock's fields, the stream
    directory (stream count, sizes, block numbers), the first words of each of the first
    streams (PDB info: version, signature, age, GUID; DBI: substream sizes; TPI/IPI headers),
    and as hot ranges the directory's blocks and the blocks of the first 16 streams."""
    fields: list[tuple[int, int]] = [(0x20, 4), (0x24, 4), (0x28, 4), (0x2C, 4), (0x34, 4)]
    hot: list[tuple[int, int]] = [(0, 0x40)]
    if not data.startswith(_MSF_MAGIC):
        return fields, hot
    bs, _fpm, nblocks, dir_size, _u, map_addr = struct.unpack_from("<IIIIII", data, 0x20)
    if bs not in (512, 1024, 2048, 4096) or nblocks * bs > len(data):
        return fields, hot
    ndir = (dir_size + bs - 1) // bs
    dir_blocks = struct.unpack_from(f"<{ndir}I", data, map_addr * bs)
    fields += [(map_addr * bs + 4 * i, 4) for i in range(ndir)]
    directory = b"".join(data[b * bs:(b + 1) * bs] for b in dir_blocks)[:dir_size]
    at = {i: b * bs for i, b in enumerate(dir_blocks)}

    def file_offset(pos: int) -> int:  # a position in the directory -> the file offset
        return at[pos // bs] + pos % bs

    count = struct.unpack_from("<I", directory, 0)[0]
    fields.append((file_offset(0), 4))
    sizes = struct.unpack_from(f"<{count}I", directory, 4)
    fields += [(file_offset(4 + 4 * i), 4) for i in range(min(count, 64))]
    pos = 4 + 4 * count
    for i, size in enumerate(sizes):
        n = 0 if size == 0xFFFFFFFF else (size + bs - 1) // bs
        blocks = struct.unpack_from(f"<{n}I", directory, pos)
        if i < 16:
            fields += [(file_offset(pos + 4 * k), 4) for k in range(min(n, 8))]
            for b in blocks:
                hot.append((b * bs, (b + 1) * bs))
            if blocks:
                fields += [(blocks[0] * bs + k, 4) for k in range(0, min(size, 64), 4)]
        pos += 4 * n
    for b in dir_blocks:
        hot.append((b * bs, (b + 1) * bs))
    return [f for f in fields if f[0] + f[1] <= len(data)], hot


def pdb_seeds() -> list[Seed]:
    seeds = []
    for path in sorted(_need(SYMBOL_DATA).rglob("*.pdb")):
        data = path.read_bytes()
        fields, hot = msf_layout(data)
        seeds.append(Seed(str(path.relative_to(SYMBOL_DATA)), data, fields, hot))
    return seeds


def pe_fields(data: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(fields, hot ranges) of a PE image: DOS/PE/optional header sizes and counts, the data
    directories, the section table, the debug directory entries and the CodeView record."""
    e = struct.unpack_from("<I", data, 0x3C)[0]
    fields = [(0x3C, 4), (e, 4), (e + 4, 2), (e + 6, 2), (e + 8, 4), (e + 20, 2)]
    nsec, opt_size = struct.unpack_from("<H", data, e + 6)[0], struct.unpack_from("<H", data, e + 20)[0]
    opt = e + 24
    magic = struct.unpack_from("<H", data, opt)[0]
    fields += [(opt, 2), (opt + 56, 4), (opt + 60, 4), (opt + 64, 4), (opt + (108 if magic == 0x20B else 92), 4)]
    dirs = opt + (112 if magic == 0x20B else 96)
    fields += [(dirs + 8 * i + k, 4) for i in range(16) for k in (0, 4)]
    table = opt + opt_size
    for i in range(nsec):
        fields += [(table + 40 * i + k, 4) for k in (8, 12, 16, 20, 36)]
    hot = [(0, table + 40 * nsec)]
    rsds = data.find(b"RSDS")
    if rsds > 0:
        hot.append((rsds - 0x40, rsds + 0x60))
        fields += [(rsds, 4), (rsds + 20, 4)]
        for i in range(0, len(data) - 0x1C, 4):  # the debug directory entry pointing at it
            if struct.unpack_from("<I", data, i + 0x18)[0] == rsds:
                fields += [(i + k, 4) for k in (0x0C, 0x10, 0x14, 0x18)]
    return [f for f in fields if f[0] + f[1] <= len(data)], hot


def pe_seeds() -> list[Seed]:
    seeds = []
    for path in sorted(_need(SYMBOL_DATA).rglob("*.dll")):
        data = path.read_bytes()
        fields, hot = pe_fields(data)
        seeds.append(Seed(str(path.relative_to(SYMBOL_DATA)), data, fields, hot))
    return seeds


SEED_LOADERS: dict[str, Callable[[], list[Seed]]] = {
    "etl": etl_seeds, "pml": pml_seeds, "evtx": evtx_seeds, "xml": xml_seeds,
    "sd": sd_seeds, "sddl": sddl_seeds, "hive": hive_seeds, "pcap": pcap_seeds, "pdb": pdb_seeds, "pe": pe_seeds,
}

# dictionary tokens inserted or written over the data
TOKENS: dict[str, list[bytes]] = {
    "etl": [struct.pack("<I", 0xC0000000 | (t << 16) | s) for t in (0x01, 0x02, 0x04, 0x10, 0x11, 0x12, 0x13, 0x14, 0x0B,
                                                                 0x0D, 0x0E) for s in (0x10, 0x58, 0xFFFF)]
    + [b"\xff" * 8, b"\x00" * 16, b"\x02\x00\xff\xff", struct.pack("<I", 0x90000000 | 0x40)],
    "pml": [b"PML_", b"\x00" * 8, b"\xff" * 8, b"\\\x00R\x00E\x00G\x00", b"C\x00:\x00\\\x00"],
    "evtx": [b"ElfFile\x00", b"ElfChnk\x00", b"\x2a\x2a\x00\x00", b"\x0f\x01\x01\x00", b"\x0c\x01", b"\x01\xff\xff",
             b"\x41\xff\xff", b"\x0e", b"\x0d", b"\x02", b"\x03", b"\x04", b"\x05\x01", b"\x06", b"\x00" * 8, b"\xff" * 4],
    "xml": [s.encode() for s in (
        "<Event>", "</Event>", "<Events>", "</Events>", "<System>", "</System>", "<EventData>", "<UserData>",
        "<Data Name=\"Status\">", "</Data>", "<EventID>", "</EventID>", "<Version>7</Version>", "&amp;", "&#0;",
        "&#x110000;", "&lt;", "&undefined;", "<![CDATA[", "]]>", "<!DOCTYPE x [<!ENTITY a \"b\">]>", "<?xml?>", "<?pi x?>",
        "<!-- -->", "xmlns:e=\"urn:x\"", "<e:Event>", "SystemTime=\"\"", "SystemTime=\"9999-99-99T99:99:99Z\"",
        "SystemTime=\"1600-01-01T00:00:00Z\"", "SystemTime=\"2024-05-01T10:00:01.12345678901234567890Z\"",
        "ProcessID=\"-1\"", "ThreadID=\"4294967296\"", "ProcessorID=\"x\"", "4294967295", "18446744073709551616",
        "-9223372036854775809", "0x", "0xFFFFFFFFFFFFFFFFFF", "1e400", "NaN", "{00000000-0000-0000-0000-00000000000G}",
        "{", "}", "\u00df", "\u0130", "\U0001F600", "\ufeff", "\x00", "\r\n", "%%1538", "Guid=\"\"",
    )],
    "pdb": [_MSF_MAGIC, struct.pack("<I", 0xFFFFFFFF), struct.pack("<I", 0x1000), struct.pack("<I", 0x7FFFFFFF),
            struct.pack("<I", 20000404), struct.pack("<I", 19990903), b"\x00" * 16, b"\xff" * 16,
            struct.pack("<HH", 0x110E, 0x1125), struct.pack("<HH", 0x1147, 0x114E)],  # S_PUB32, S_GPROC32
    "pe": [b"MZ", b"PE\x00\x00", b"RSDS", b"NB10", struct.pack("<H", 0x20B), struct.pack("<H", 0x10B),
           struct.pack("<I", 0xFFFFFFFF), struct.pack("<I", 0x7FFFFFFF), b".text\x00\x00\x00", b"\x00" * 16],
    "sd": [b"\x01\x00\x04\x80", b"\x02\x00", b"\x04\x00", b"\x01\x05\x00\x00\x00\x00\x00\x05", b"\x01\x0f",
           b"\x01\xff", b"\x05\x00\x2c\x00", b"\x09\x00", b"\x11\x00", b"\x12\x00", b"\x0b\x00", b"\x00" * 8,
           b"artx", b"\xff" * 4],
    "sddl": [s.encode() for s in (
        "O:", "G:", "D:", "S:", "P", "AI", "AR", "NO_ACCESS_CONTROL", "(", ")", ";", ";;", "(A;;", ";;;",
        "(A;;KA;;;SY)", "(OA;;RP;{};;WD)", "(XA;;FX;;;WD;(", "(ML;;NW;;;LW)", "(RA;;;;;WD;(\"x\",TI,0,1))",
        "S-1-", "S-1-5-", "S-1-0x", "S-1-5-21-", "-4294967295", "-4294967296", "-99999999999999999999999",
        "0x", "0xFFFFFFFF", "0x1FFFFFFFF", "4294967296", "GA", "GR", "KA", "KR", "FA", "CC", "WD", "SY", "BA",
        "LA", "DA", "OW", "CIOI", "IOID", "SAFA", "TP", "4c164200-20c0-11d0-a768-00aa006e0529", "\"", "\"\"",
        "((((", "))))", " ", "\t", "\u00df", "\u0130", "\u0663", "\u00b2", "\uff10", "\U0001D7D9", "\x00",
    )],
    "hive": [b"nk", b"sk", b"lf", b"lh", b"li", b"ri", b"vk", b"hbin", b"regf", b"\xff\xff\xff\xff",
             b"\x00\x00\x00\x00", struct.pack("<i", -8), struct.pack("<i", -0x7FFFFFF8)],
    "pcap": [b"\x05\x00\x00\x03\x10\x00\x00\x00", b"\x05\x00\x0b\x03\x10\x00\x00\x00",
             b"\x05\x00\x02\x03\x10\x00\x00\x00", b"\x05\x00\x0c\x03", b"\x05\x00\x03\x03",
             b"\xfeSMB", b"\xffSMB", b"\xfdSMB", b"\x00\x00\xff\xff", b"\x17\xc0\x11\x00",
             b"\x0a\x0d\x0d\x0a", b"\xd4\xc3\xb2\xa1", b"\xff\xff", b"\x00" * 8, b"\x81\x00\x00\x44",
             b"\x08\x00\x45\x00", b"\x86\xdd\x60\x00", b"\x81\x00\x00\x01"],
}


# ============================================================================ mutation

INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF, 0x100000000, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFFFFFFFFFF)
TEXT_TARGETS = ("xml", "sddl")


class Mutator:
    """Deterministic mutations of one target's seeds: ``case(i)`` depends only on (seed, target, i)."""

    def __init__(self, target: str, seeds: list[Seed], seed: int = 1):
        if not seeds:
            raise MissingSamples(f"no seeds for {target}")
        self.target = target
        self.seeds = seeds
        self.seed = seed
        self.tokens = TOKENS.get(target, [])
        self.text = target in TEXT_TARGETS
        if self.text:
            ops = [(self.flip, 4), (self.random_bytes, 3), (self.insert, 3), (self.delete, 3), (self.truncate, 2),
                   (self.splice, 2), (self.duplicate, 1), (self.token, 3)]
        else:
            # binary formats locate their parts by offset: an insert or a delete moves everything
            # after it, which the first size check usually refuses, so in-place changes come first
            ops = [(self.flip, 5), (self.random_bytes, 4), (self.interesting, 8), (self.insert, 2), (self.delete, 2),
                   (self.truncate, 2), (self.splice, 1), (self.duplicate, 1), (self.token, 1)]
        self._ops = [op for op, weight in ops for _ in range(weight)]

    def case(self, index: int) -> tuple[bytes, str]:
        """(input bytes, description of what was done to which seed)."""
        rng = random.Random(f"{self.seed}/{self.target}/{index}")
        seed = self.seeds[rng.randrange(len(self.seeds))]
        data = bytearray(seed.data)
        roll = rng.random()
        n = 1 if roll < 0.45 else rng.randint(2, 4) if roll < 0.85 else rng.randint(5, 16)
        done = []
        limit = max(2 * len(seed.data), len(seed.data) + 65536)
        for _ in range(n):
            op = self._ops[rng.randrange(len(self._ops))]
            done.append(op(rng, data, seed))
            if len(data) > limit:
                del data[limit:]
        return bytes(data), f"{seed.name}: " + ", ".join(done)

    # -- positions -----------------------------------------------------------------------------
    @staticmethod
    def _pos(rng: random.Random, data: bytes | bytearray, seed: Seed) -> int:
        if not data:
            return 0
        if seed.hot and rng.random() < 0.8:
            start, end = seed.hot[rng.randrange(len(seed.hot))]
            if start < len(data):
                return rng.randrange(start, max(start + 1, min(end, len(data))))
        return rng.randrange(len(data))

    # -- operations ----------------------------------------------------------------------------
    def flip(self, rng, data, seed) -> str:
        if not data:
            return "flip(empty)"
        k = rng.choice((1, 1, 1, 2, 4, 8))
        at = self._pos(rng, data, seed)
        for _ in range(k):
            p = min(len(data) - 1, at + rng.randrange(8))
            data[p] ^= 1 << rng.randrange(8)
        return f"flip{k}@{at:#x}"

    def random_bytes(self, rng, data, seed) -> str:
        if not data:
            return "bytes(empty)"
        at = self._pos(rng, data, seed)
        k = rng.choice((1, 1, 2, 4))
        fill = rng.choice((None, 0x00, 0xFF, 0x80, 0x7F))
        for p in range(at, min(at + k, len(data))):
            data[p] = rng.randrange(256) if fill is None else fill
        return f"bytes{k}@{at:#x}"

    def interesting(self, rng, data, seed) -> str:
        if not data:
            return "int(empty)"
        if seed.fields and rng.random() < 0.85:
            at, width = seed.fields[rng.randrange(len(seed.fields))]
        else:
            width = rng.choice((1, 2, 4, 4, 8))
            at = self._pos(rng, data, seed) & ~(min(width, 4) - 1)
        if at + width > len(data):
            return f"int@{at:#x}(past end)"
        current = int.from_bytes(data[at:at + width], "little")
        mask = (1 << (8 * width)) - 1
        candidates = list(INTERESTING) + [current + 1, current - 1, current * 2, current // 2, current + 8,
                                          current - 8, len(data), len(data) - at, len(data) + 1, len(data) - 1,
                                          current ^ (1 << (8 * width - 1)), current + 0x1000]
        value = candidates[rng.randrange(len(candidates))] & mask
        data[at:at + width] = value.to_bytes(width, "little")
        return f"int{8 * width}={value:#x}@{at:#x}"

    def insert(self, rng, data, seed) -> str:
        at = self._pos(rng, data, seed) if data else 0
        kind = rng.random()
        if kind < 0.4 and self.tokens:
            chunk = self.tokens[rng.randrange(len(self.tokens))]
            what = "token"
        elif kind < 0.7 and data:
            start = rng.randrange(len(data))
            chunk = bytes(data[start:start + rng.choice((4, 8, 16, 64, 256))])
            what = "copy"
        elif kind < 0.85:
            chunk = bytes([rng.randrange(256)]) * rng.choice((1, 4, 16, 255, 4096))
            what = "run"
        else:
            chunk = bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 4, 8, 32))))
            what = "random"
        data[at:at] = chunk
        return f"insert-{what}{len(chunk)}@{at:#x}"

    def delete(self, rng, data, seed) -> str:
        if not data:
            return "delete(empty)"
        at = self._pos(rng, data, seed)
        k = rng.choice((1, 2, 4, 8, 16, 64, 512, max(1, len(data) // 8)))
        del data[at:at + k]
        return f"delete{k}@{at:#x}"

    def truncate(self, rng, data, seed) -> str:
        if not data:
            return "truncate(empty)"
        roll = rng.random()
        if roll < 0.3 and seed.fields:
            keep = seed.fields[rng.randrange(len(seed.fields))][0] + rng.choice((0, 1, 2, 3, 4))
        elif roll < 0.5:
            keep = len(data) - rng.randint(1, 16)
        else:
            keep = rng.randrange(len(data))
        keep = max(0, min(keep, len(data)))
        del data[keep:]
        return f"truncate@{keep:#x}"

    def splice(self, rng, data, seed) -> str:
        other = self.seeds[rng.randrange(len(self.seeds))]
        if not other.data:
            return "splice(empty)"
        cut = self._pos(rng, data, seed) if data else 0
        start = self._pos(rng, other.data, other)
        if other.fields and rng.random() < 0.5:
            start = other.fields[rng.randrange(len(other.fields))][0]
        tail = other.data[start:]
        if rng.random() < 0.5:
            tail = tail[: rng.choice((16, 256, 4096, 65536))]
            data[cut:cut + len(tail)] = tail
        else:
            data[cut:] = tail
        return f"splice({other.name}@{start:#x})@{cut:#x}"

    def duplicate(self, rng, data, seed) -> str:
        if not data:
            return "dup(empty)"
        start = self._pos(rng, data, seed)
        chunk = bytes(data[start:start + rng.choice((8, 64, 512, 4096))])
        times = rng.choice((1, 2, 8, 64))
        at = rng.choice((start, rng.randrange(len(data) + 1)))
        data[at:at] = chunk * times
        return f"dup{len(chunk)}x{times}@{at:#x}"

    def token(self, rng, data, seed) -> str:
        if not self.tokens:
            return self.flip(rng, data, seed)
        tok = self.tokens[rng.randrange(len(self.tokens))]
        at = self._pos(rng, data, seed) if data else 0
        if rng.random() < 0.5:
            data[at:at + len(tok)] = tok
            return f"overwrite-token{len(tok)}@{at:#x}"
        data[at:at] = tok * rng.choice((1, 1, 2, 16, 256))
        return f"insert-token{len(tok)}@{at:#x}"


# ============================================================================ running one input


def _one_line_problem(exc: BaseException) -> str | None:
    text = str(exc)
    if "\n" in text or "\r" in text:
        return "the error message spans several lines"
    if not text.strip():
        return "the error message is empty"
    return None


def _memory_error_inside(exc: BaseException) -> bool:
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 20:
        if isinstance(cur, MemoryError):
            return True
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return False


def _run_etl(path: str, index: int) -> list[BaseException]:
    from rpctrace.errors import InputError
    from rpctrace.sources.etl.reader import EtlReader
    from rpctrace.trace import load

    errors: list[BaseException] = []
    for keep in (False, True):
        try:
            with EtlReader(path, keep_going=keep) as reader:
                for _ in reader.events():
                    pass
                errors += reader.stats.damage
        except InputError as exc:
            errors.append(exc)
    try:
        trace = load([path], keep_going=bool(index & 1))
        if trace.error is not None:
            errors.append(trace.error)
    except InputError as exc:
        errors.append(exc)
    # the streamed path of `rpctrace calls` / `tree` / `report` (the C engine where it was built,
    # else TraceStream + Correlator), every operations mode, then the listing's records and table
    # lines (the C record builder and line for the engine's calls)
    from rpctrace.correlate.records import RecordMaker
    from rpctrace.knowledge.interfaces import lookup
    from rpctrace.knowledge.status import ntstatus_name
    from rpctrace.pipeline import correlate_files
    from rpctrace.render.calls import _row_maker

    try:
        trace, result = correlate_files([path], keep_going=bool(index & 2),
                                        operations=("failed", "all", "report", "all")[(index >> 2) & 3], keep_all_for=4)
        if trace.error is not None:
            errors.append(trace.error)
        maker, row = RecordMaker(trace, names=lookup, status_name=ntstatus_name), _row_maker()
        for call in (result.calls + result.alpc)[:2000]:
            row(maker(call))
    except InputError as exc:
        errors.append(exc)
    return errors


def _reader_runner(factory: Callable[[str, bool], object]) -> Callable[[str, int], list[BaseException]]:
    def run(path: str, index: int) -> list[BaseException]:
        from rpctrace.errors import InputError

        errors: list[BaseException] = []
        try:
            reader = factory(path, bool(index & 1))
            try:
                for _ in reader.events():
                    pass
                errors += list(getattr(reader.stats, "damage", []))
            finally:
                reader.close()
        except InputError as exc:
            errors.append(exc)
        return errors

    return run


def _pml(path: str, keep: bool):
    from rpctrace.sources.pml import PmlReader

    return PmlReader(path, keep_going=keep)


def _evtx(path: str, keep: bool):
    from rpctrace.sources.evtx import EvtxReader

    return EvtxReader(path, keep_going=keep)


def _xml(path: str, keep: bool):
    from rpctrace.sources.eventxml import EventXmlReader

    return EventXmlReader(path, keep_going=keep)


def _run_sd(data: bytes, index: int) -> list[BaseException]:
    from rpctrace.security import SecurityDescriptorError, parse_binary, to_sddl

    try:
        sd = parse_binary(data)
    except SecurityDescriptorError as exc:
        return [exc]
    sd.to_dict()
    try:
        to_sddl(sd)
    except SecurityDescriptorError as exc:  # documented: ACEs without an SDDL form
        return [exc]
    return []


def _run_sddl(data: bytes, index: int) -> list[BaseException]:
    from rpctrace.security import SecurityDescriptorError, parse_sddl, to_sddl

    text = data.decode("utf-8", errors="replace")
    try:
        sd = parse_sddl(text)
        to_sddl(sd)
    except SecurityDescriptorError as exc:
        return [exc]
    return []


def _run_hive(path: str, index: int) -> list[BaseException]:
    from rpctrace.security import SecurityDescriptorError, parse_binary
    from rpctrace.sources.hive import Hive, HiveError

    errors: list[BaseException] = []
    try:
        hive = Hive(path)
        for _path, item in hive.iter_security():
            if isinstance(item, HiveError):
                errors.append(item)
                continue
            try:
                parse_binary(item)
            except SecurityDescriptorError as exc:
                errors.append(exc)
    except HiveError as exc:
        errors.append(exc)
    return errors


#: seconds the PDB reader process may take on one input (below the harness's own --timeout, so a
#: slow read is rpctrace's clean error, not a hang)
PDB_READER_TIMEOUT = 5.0
#: RVAs looked up in every PDB input: the test modules' functions, inline sites and their edges
_PDB_PROBES = (0x0, 0x1000, 0x1001, 0x12D10, 0x12D40, 0x12EF9, 0x14A80, 0x14E17, 0x1B3E0, 0x1B460, 0x2A5C0, 0x2A80D,
               0x2A889, 0x2AB00, 0x7FFFFFFF, 0xFFFFFFFF)


def _run_pdb(path: str, index: int) -> list[BaseException]:
    """rpctrace's own path: symbolic reads the PDB in rpctrace's PDB reader process (a child of
    this limited worker, under its address-space limit), so a native crash or an allocation
    failure inside symbolic is one clean error and the next input gets a new reader; the
    lookups and names run here."""
    from rpctrace.errors import InputError
    from rpctrace.symbols.pdb import load_pdb
    from rpctrace.symbols.symbolizer import symbol_from_locations

    try:
        pdb = load_pdb(path, timeout=PDB_READER_TIMEOUT)
    except InputError as exc:
        return [exc]
    for rva in _PDB_PROBES:
        sym = symbol_from_locations(pdb, "m", rva)
        if sym is not None:
            sym.lines()
            sym.as_dict()
    return []


def _run_pe(path: str, index: int) -> list[BaseException]:
    from rpctrace.errors import InputError
    from rpctrace.symbols.pe import read_pe

    try:
        info = read_pe(path)
    except InputError as exc:
        return [exc]
    info.section_of(0x12EF9)
    return []


RUNNERS: dict[str, Callable[[object, int], list[BaseException]]] = {
    "etl": _run_etl, "pml": _reader_runner(_pml), "evtx": _reader_runner(_evtx), "xml": _reader_runner(_xml),
    "sd": _run_sd, "sddl": _run_sddl, "hive": _run_hive, "pdb": _run_pdb, "pe": _run_pe, "pcap": None,  # set below
}


def _run_pcap(path: str, index: int) -> list[BaseException]:
    """The network reader (strict on even inputs, keep_going on odd), events consumed, then
    the remote calls made from them (wire_calls)."""
    from rpctrace.correlate.remote import wire_calls
    from rpctrace.errors import InputError
    from rpctrace.sources.net import NetReader

    errors: list[BaseException] = []
    try:
        with NetReader(path, keep_going=bool(index & 1)) as reader:
            wire_calls(reader.events())
    except InputError as exc:
        errors.append(exc)
    return errors


RUNNERS["pcap"] = _run_pcap


def _signature(exc: BaseException, prefix: str = "") -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}:{tb[-1].name}" if tb else "?"
    return f"{prefix}{type(exc).__name__} at {where}"


def run_case(target: str, data: bytes, index: int, workdir: str) -> tuple[str, dict]:
    """Run one input in this process: (outcome, details).  Never raises (but may hang or die)."""
    path = None
    if target in FILE_SUFFIX:
        path = os.path.join(workdir, "input" + FILE_SUFFIX[target])
        with open(path, "wb") as fh:
            fh.write(data)
    started = time.perf_counter()
    try:
        errors = RUNNERS[target](path if path is not None else data, index)
    except MemoryError as exc:
        return "oom", {"signature": _signature(exc), "traceback": traceback.format_exc(),
                       "seconds": time.perf_counter() - started}
    except BaseException as exc:  # a crash is what is looked for
        if isinstance(exc, KeyboardInterrupt):
            raise
        return "crash", {"signature": _signature(exc), "traceback": traceback.format_exc(),
                         "seconds": time.perf_counter() - started}
    seconds = time.perf_counter() - started
    for err in errors:
        if _memory_error_inside(err):
            return "oom", {"signature": "MemoryError reported as " + _signature(err), "message": str(err),
                           "traceback": "".join(traceback.format_exception(err)), "seconds": seconds}
        problem = _one_line_problem(err)
        if problem is not None:
            return "crash", {"signature": _signature(err, "bad message: "), "message": str(err)[:4000],
                             "traceback": f"{problem}:\n{str(err)[:4000]!r}\n", "seconds": seconds}
    details = {"seconds": seconds}
    if errors:
        details["message"] = str(errors[0])[:300]
        details["longest_message"] = max(len(str(e)) for e in errors)
        return "clean", details
    return "ok", details


# ============================================================================ the worker pool


def _worker_main(conn, workdir: str, memory_bytes: int, log_path: str) -> None:  # pragma: no cover - subprocess
    import resource

    if sys.platform.startswith("linux"):  # die with the parent, even when it is killed
        try:
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)
    os.environ["RPCTRACE_SERIAL"] = "1"  # no grandchild processes (ETL decompression pool)
    for name in ("rpctrace.sources.etl.reader", "rpctrace.trace", "rpctrace.sources.pml", "rpctrace.sources.evtx",
                 "rpctrace.sources.eventxml", "rpctrace.security", "rpctrace.sources.hive",
                 "rpctrace.sources.net", "rpctrace.correlate.remote",
                 "procmon_parser", "evtx", "regipy.registry", "rpctrace.symbols.pdb", "rpctrace.symbols.pe",
                 "rpctrace.symbols.symbolizer", "symbolic.debuginfo", "symbolic.symcache", "pefile", "pydemumble"):
        try:
            __import__(name)
        except ImportError:
            pass
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        target, index, data = msg
        outcome, details = run_case(target, data, index, workdir)
        details["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            conn.send((index, outcome, details))
        except (BrokenPipeError, OSError):
            return


@dataclasses.dataclass
class _Slot:
    proc: object
    conn: object
    log: str
    job: tuple | None = None
    started: float = 0.0


class Pool:
    """Worker processes that each run one input at a time; hangs and deaths are outcomes."""

    def __init__(self, workers: int = 2, timeout: float = DEFAULT_TIMEOUT, memory_mb: int = DEFAULT_MEMORY_MB):
        import multiprocessing

        self.ctx = multiprocessing.get_context("spawn")
        self.timeout = timeout
        self.memory = memory_mb << 20 if memory_mb else 0
        self.tmp = tempfile.mkdtemp(prefix="rpctrace-fuzz-")
        self.generation = 0
        self.restarts = 0
        self.maxrss_kb = 0
        self.slots: list[_Slot] = []
        try:
            for _ in range(workers):
                self.slots.append(self._start())
        except BaseException:
            self.close()
            raise

    def _start(self) -> _Slot:
        self.generation += 1
        workdir = os.path.join(self.tmp, f"w{self.generation}")
        os.makedirs(workdir)
        log = os.path.join(self.tmp, f"w{self.generation}.log")
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker_main, args=(child, workdir, self.memory, log), daemon=True,
                                name=f"rpctrace-fuzz-{self.generation}")
        proc.start()
        child.close()
        return _Slot(proc, parent, log)

    def _replace(self, slot: _Slot) -> _Slot:
        self._stop(slot)
        self.restarts += 1
        new = self._start()
        self.slots[self.slots.index(slot)] = new
        return new

    @staticmethod
    def _stop(slot: _Slot) -> None:
        proc = slot.proc
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        slot.conn.close()

    def _death(self, slot: _Slot) -> tuple[str, dict]:
        slot.proc.join(5)
        code = slot.proc.exitcode
        try:
            with open(slot.log, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 4000))
                tail = fh.read().decode("utf-8", "replace")
        except OSError:
            tail = ""
        memory = re.search(r"memory allocation of|MemoryError|Cannot allocate memory|out of memory|"
                           r"std::bad_alloc", tail)
        outcome = "oom" if memory else "crash"
        how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        return outcome, {"signature": f"worker died ({how})", "traceback": f"worker died ({how}); its output:\n{tail}",
                         "seconds": time.monotonic() - slot.started}

    def run(self, target: str, cases: Iterator[tuple[int, bytes]], report: Callable[[int, str, dict], None]) -> None:
        from multiprocessing.connection import wait

        pending = True
        while True:
            for slot in self.slots:
                if slot.job is None and pending:
                    try:
                        index, data = next(cases)
                    except StopIteration:
                        pending = False
                        break
                    slot.job = (index, data)
                    slot.started = time.monotonic()
                    try:
                        slot.conn.send((target, index, data))
                    except (BrokenPipeError, OSError):
                        pass  # found dead below
            busy = [s for s in self.slots if s.job is not None]
            if not busy:
                return
            soonest = min(s.started for s in busy) + self.timeout
            wait([s.conn for s in busy] + [s.proc.sentinel for s in busy],
                 timeout=max(0.0, soonest - time.monotonic()))
            now = time.monotonic()
            for slot in busy:
                index = slot.job[0]
                result = None
                if slot.conn.poll():
                    try:
                        result = slot.conn.recv()
                    except (EOFError, OSError):
                        result = None
                    if result is not None:
                        _i, outcome, details = result
                        self.maxrss_kb = max(self.maxrss_kb, details.get("maxrss_kb", 0))
                        slot.job = None
                        report(index, outcome, details)
                        continue
                if not slot.proc.is_alive() or (result is None and slot.conn.closed):
                    outcome, details = self._death(slot)
                    slot.job = None
                    self._replace(slot)
                    report(index, outcome, details)
                elif now - slot.started > self.timeout:
                    seconds = now - slot.started
                    slot.job = None
                    self._replace(slot)
                    report(index, "hang", {"signature": f"no answer in {self.timeout:g} s",
                                           "traceback": f"killed after {seconds:.1f} s", "seconds": seconds})

    def close(self) -> None:
        for slot in self.slots:
            try:
                slot.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        deadline = time.monotonic() + 2
        for slot in self.slots:
            slot.proc.join(max(0.0, deadline - time.monotonic()))
            if slot.proc.is_alive():
                slot.proc.kill()
                slot.proc.join(5)
            slot.conn.close()
        self.slots = []
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ============================================================================ fuzzing a target


@dataclasses.dataclass
class TargetResult:
    target: str
    seeds: int = 0
    inputs: int = 0
    counts: dict = dataclasses.field(default_factory=lambda: {k: 0 for k in OUTCOMES})
    seconds: float = 0.0
    slowest: float = 0.0
    slowest_index: int = -1
    longest_message: int = 0  # characters of the longest clean error message (one line, but how long)
    longest_index: int = -1
    signatures: dict = dataclasses.field(default_factory=dict)  # failure signature -> count
    errors: dict = dataclasses.field(default_factory=dict)  # clean error, numbers and file left out -> count
    saved: list = dataclasses.field(default_factory=list)

    @property
    def failures(self) -> int:
        return self.counts["crash"] + self.counts["hang"] + self.counts["oom"]

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {"target": self.target, "seeds": self.seeds, "inputs": self.inputs, **self.counts,
                "seconds": round(self.seconds, 1), "inputs_per_s": round(self.rate, 1),
                "slowest_case_s": round(self.slowest, 3), "slowest_index": self.slowest_index,
                "longest_error_message": self.longest_message, "longest_message_index": self.longest_index,
                "failure_signatures": self.signatures, "saved": self.saved,
                "top_clean_errors": dict(sorted(self.errors.items(), key=lambda kv: -kv[1])[:25])}


def fuzz_target(target: str, pool: Pool, *, count: int | None = 100_000, seconds: float | None = None, seed: int = 1,
                out: str | os.PathLike | None = None, start: int = 0, progress: Callable[[str], None] | None = None,
                seeds: list[Seed] | None = None) -> TargetResult:
    """Run mutated inputs of ``target`` (indexes start, start+1, ...) until ``count`` ran or
    ``seconds`` passed, whichever comes first."""
    seeds = seeds if seeds is not None else SEED_LOADERS[target]()
    mutator = Mutator(target, seeds, seed)
    result = TargetResult(target, seeds=len(seeds))
    began = time.monotonic()
    last_note = began
    described: dict[int, tuple[bytes, str]] = {}

    def cases() -> Iterator[tuple[int, bytes]]:
        index = start
        while (count is None or index - start < count) and (seconds is None or time.monotonic() - began < seconds):
            data, desc = mutator.case(index)
            described[index] = (data, desc)
            yield index, data
            index += 1

    def report(index: int, outcome: str, details: dict) -> None:
        nonlocal last_note
        data, desc = described.pop(index)
        result.inputs += 1
        result.counts[outcome] += 1
        took = details.get("seconds", 0.0)
        if took > result.slowest:
            result.slowest, result.slowest_index = took, index
        if outcome == "clean":
            kind = _error_kind(details.get("message", ""))
            if kind in result.errors or len(result.errors) < 5000:
                result.errors[kind] = result.errors.get(kind, 0) + 1
        if details.get("longest_message", 0) > result.longest_message:
            result.longest_message, result.longest_index = details["longest_message"], index
        if outcome in ("crash", "hang", "oom"):
            sig = f"{outcome}: {details.get('signature', '?')}"
            result.signatures[sig] = result.signatures.get(sig, 0) + 1
            if out is not None and result.signatures[sig] <= SAVE_PER_SIGNATURE:
                result.saved.append(_save(out, target, index, seed, outcome, data, desc, details))
        now = time.monotonic()
        if progress is not None and now - last_note >= 30:
            last_note = now
            progress(f"{target}: {result.inputs} inputs, {_counts_text(result)}, "
                     f"{result.inputs / (now - began):.1f}/s")

    pool.run(target, cases(), report)
    result.seconds = time.monotonic() - began
    return result


_NUMBERS = re.compile(r"0x[0-9a-fA-F]+|\d+")


def _error_kind(message: str) -> str:
    """A clean error without its file name and numbers, cut short: what kind of damage stopped it."""
    text = message.split(": ", 1)[1] if message.startswith(("/", ".")) and ": " in message else message
    return _NUMBERS.sub("N", text)[:90]


def _counts_text(r: TargetResult) -> str:
    return ", ".join(f"{k} {r.counts[k]}" for k in OUTCOMES)


def _save(out, target: str, index: int, seed: int, outcome: str, data: bytes, desc: str, details: dict) -> str:
    folder = Path(out) / target
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{outcome}-{seed}-{index}"
    Path(str(stem) + ".bin").write_bytes(data)
    Path(str(stem) + ".txt").write_text(
        f"target: {target}\nseed: {seed}\nindex: {index}\noutcome: {outcome}\nmutations: {desc}\n"
        f"signature: {details.get('signature')}\nseconds: {details.get('seconds', 0):.3f}\n"
        f"replay: python benchmarks/fuzz.py --target {target} --replay {stem}.bin\n\n"
        f"{details.get('traceback', '')}", encoding="utf-8")
    return str(stem) + ".bin"


def format_table(results: list[TargetResult]) -> str:
    head = f"{'target':<7} {'seeds':>5} {'inputs':>8} {'ok':>8} {'clean':>8} {'crashes':>7} {'hangs':>5} {'oom':>4} " \
           f"{'inputs/s':>9} {'wall s':>8} {'slowest s':>9} {'max msg':>8}"
    lines = [head, "-" * len(head)]
    for r in results:
        c = r.counts
        lines.append(f"{r.target:<7} {r.seeds:>5} {r.inputs:>8} {c['ok']:>8} {c['clean']:>8} {c['crash']:>7} "
                     f"{c['hang']:>5} {c['oom']:>4} {r.rate:>9.1f} {r.seconds:>8.1f} {r.slowest:>9.3f} {r.longest_message:>8}")
    return "\n".join(lines)


# ============================================================================ replay and minimize


def replay(target: str, path: str, index: int = 0) -> tuple[str, dict]:
    with tempfile.TemporaryDirectory(prefix="rpctrace-fuzz-replay-") as tmp:
        return run_case(target, Path(path).read_bytes(), index, tmp)


def minimize(target: str, data: bytes, index: int = 0, budget: float = 120.0) -> bytes:
    """Shrink ``data`` while it keeps the same failure signature (in this process; crashes only)."""
    with tempfile.TemporaryDirectory(prefix="rpctrace-fuzz-min-") as tmp:
        outcome, details = run_case(target, data, index, tmp)
        want = (outcome, details.get("signature"))
        if outcome not in ("crash", "oom"):
            raise SystemExit(f"the input does not fail ({outcome}); nothing to minimize")
        began = time.monotonic()

        def same(candidate: bytes) -> bool:
            o, d = run_case(target, candidate, index, tmp)
            return (o, d.get("signature")) == want

        chunk = max(1, len(data) // 2)
        while chunk >= 1 and time.monotonic() - began < budget:
            pos = 0
            changed = False
            while pos < len(data) and time.monotonic() - began < budget:
                candidate = data[:pos] + data[pos + chunk:]
                if same(candidate):
                    data = candidate
                    changed = True
                else:
                    pos += chunk
            if not changed:
                chunk //= 2
        # then try zeroing bytes, to make what matters stand out
        for pos in range(len(data)):
            if time.monotonic() - began > budget:
                break
            if data[pos]:
                candidate = data[:pos] + b"\x00" + data[pos + 1:]
                if same(candidate):
                    data = candidate
        return data


# ============================================================================ command line


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", action="append", choices=TARGETS, help="a reader to fuzz (repeatable; default: all)")
    ap.add_argument("--count", type=int, default=100_000, help="inputs per target (default 100000)")
    ap.add_argument("--seconds", type=float, help="time budget per target; stops at --count or this, first reached")
    ap.add_argument("--seed", type=int, default=1, help="input i of a target depends only on (seed, target, i)")
    ap.add_argument("--start", type=int, default=0, help="first input index (to resume or split a run)")
    ap.add_argument("--out", default="fuzz-results", help="where failing inputs and summary.json go")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds one input may run")
    ap.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB, help="address-space limit of a worker")
    ap.add_argument("--replay", metavar="FILE", help="run one input in this process and print the outcome")
    ap.add_argument("--minimize", metavar="FILE", help="shrink a crashing input; writes FILE.min")
    ap.add_argument("--index", type=int, default=0, help="with --replay/--minimize: the input's index (mode choice)")
    ap.add_argument("--list-seeds", action="store_true", help="print each target's seeds and exit")
    args = ap.parse_args(argv)
    targets = args.target or list(TARGETS)

    if args.replay or args.minimize:
        if len(targets) != 1:
            ap.error("--replay and --minimize need exactly one --target")
        if args.replay:
            outcome, details = replay(targets[0], args.replay, args.index)
            print(f"{outcome}: {details.get('signature') or details.get('message', '')}")
            if details.get("traceback"):
                print(details["traceback"])
            return 0 if outcome in ("ok", "clean") else 1
        small = minimize(targets[0], Path(args.minimize).read_bytes(), args.index)
        Path(args.minimize + ".min").write_bytes(small)
        print(f"{len(small)} bytes -> {args.minimize}.min: {small.hex()}" if len(small) <= 512
              else f"{len(small)} bytes -> {args.minimize}.min")
        return 0

    if args.list_seeds:
        for target in targets:
            seeds = SEED_LOADERS[target]()
            print(f"{target}: {len(seeds)} seeds, {sum(len(s.data) for s in seeds)} bytes")
            for s in seeds[:40]:
                print(f"  {len(s.data):>8} bytes {len(s.fields):>6} fields  {s.name}")
            if len(seeds) > 40:
                print(f"  ... and {len(seeds) - 40} more")
        return 0

    command = "python benchmarks/fuzz.py " + " ".join(argv if argv is not None else sys.argv[1:])
    note = print if sys.stdout.isatty() else (lambda text: print(text, flush=True))
    note(f"# {command}\n# machine: {machine()}\n# seed {args.seed}, {args.workers} workers, "
         f"timeout {args.timeout:g} s, address space {args.memory_mb} MiB per worker")
    results: list[TargetResult] = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    interrupted = False
    with Pool(args.workers, args.timeout, args.memory_mb) as pool:
        for target in targets:
            try:
                seeds = SEED_LOADERS[target]()
            except MissingSamples as exc:
                note(f"{target}: skipped: {exc}")
                continue
            try:
                res = fuzz_target(target, pool, count=args.count, seconds=args.seconds, seed=args.seed, out=out,
                                  start=args.start, progress=note, seeds=seeds)
            except KeyboardInterrupt:
                interrupted = True
                break
            results.append(res)
            note(f"{target}: done: {res.inputs} inputs in {res.seconds:.1f} s, {_counts_text(res)}")
        restarts, maxrss = pool.restarts, pool.maxrss_kb
    print(format_table(results))
    print(f"total {sum(r.inputs for r in results)} inputs in {time.monotonic() - began:.1f} s; worker restarts "
          f"{restarts}; peak worker RSS {maxrss / 1024:.0f} MiB")
    for r in results:
        for sig, n in sorted(r.signatures.items()):
            print(f"  {r.target}: {n} x {sig}")
    summary = {"command": command, "machine": machine(), "seed": args.seed, "workers": args.workers,
               "timeout_s": args.timeout, "memory_mb": args.memory_mb, "peak_worker_rss_mb": round(maxrss / 1024),
               "worker_restarts": restarts, "interrupted": interrupted,
               "results": [r.as_dict() for r in results]}
    name = "summary.json" if len(targets) != 1 else f"summary-{targets[0]}.json"
    (out / name).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if interrupted:
        return 130
    return 1 if any(r.failures for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
