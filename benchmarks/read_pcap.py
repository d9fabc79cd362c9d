"""Reading a network capture: packets per second and peak memory, on a capture from the writer.

    python benchmarks/read_pcap.py [--packets 1000000] [--keep FILE] [--etl]

Writes a capture of ``--packets`` frames with ``rpctrace.synth.pcapfile.write_busy_capture``
(80 connections: Netlogon over TCP and LSARPC over SMB2 pipes, a request and a response segment
per call), then reads it in a child process (so the peak resident memory is the reader's own):
``NetReader.events()`` into ``wire_calls`` (every event decoded, every call built and kept).
Prints frames, calls, seconds, frames/s and the child's peak RSS (ru_maxrss).

``--etl`` also writes the same frames as a ``netsh trace capture=yes`` trace does (one
NDIS-PacketCapture event per frame, ``rpctrace.synth.packetetw``) and reads that in the same way
(``EtlPacketReader``: the ETL reader, then the same frame decoder), side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

CHILD = r"""
import json, resource, sys, time
from rpctrace.sources.net import NetReader
from rpctrace.correlate.remote import wire_calls
t0 = time.perf_counter()
with NetReader(sys.argv[1]) as reader:
    calls, counts = wire_calls(reader.events())
    stats = reader.stats
seconds = time.perf_counter() - t0
print(json.dumps({"frames": stats.frames, "calls": len(calls), "answered": sum(c.end is not None for c in calls),
                  "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
CHILD_ETL = CHILD.replace("from rpctrace.sources.net import NetReader",
                          "from rpctrace.sources.net import EtlPacketReader as NetReader")


def write_etl_twin(pcap: str, etl: str) -> int:
    """The frames of ``pcap`` as NDIS-PacketCapture events of an .etl (the writer's layouts)."""
    import dpkt

    from rpctrace.synth.etlfile import Clock, EtlWriter
    from rpctrace.synth.packetetw import NdisPackets

    writer = EtlWriter(etl, clock=Clock(133_000_000_000_000_000, 10**8), cpus=2, buffer_size=0x10000)
    ndis = NdisPackets(writer, 2)
    n = 0
    first = None
    with open(pcap, "rb") as fh:
        for ts, buf in dpkt.pcap.Reader(fh):
            us = int(round(ts * 1e6))
            first = us if first is None else first
            qpc = 10**8 + 100 + (us - first) * 10
            ndis.frame(qpc, bytes(buf), send=n % 2 == 1)
            n += 1
            if n % 65536 == 0:
                writer.drain(qpc - 10**7)
    writer.close(10**8 + 100 + (us - first) * 10 + 100)
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--keep", help="write the capture here and keep it")
    ap.add_argument("--etl", action="store_true", help="also read the same frames as packet events of an .etl")
    args = ap.parse_args()
    from rpctrace.synth.pcapfile import write_busy_capture

    with tempfile.TemporaryDirectory(prefix="rpctrace-bench-pcap-") as tmp:
        path = args.keep or os.path.join(tmp, "busy.pcap")
        t0 = time.perf_counter()
        made = write_busy_capture(path, args.packets)
        wrote = time.perf_counter() - t0
        size = os.path.getsize(path)
        out = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        got = json.loads(out.stdout)
        etl = None
        if args.etl:
            etl_path = os.path.join(tmp, "busy-ndis.etl")
            t0 = time.perf_counter()
            write_etl_twin(path, etl_path)
            etl_wrote = time.perf_counter() - t0
            etl_size = os.path.getsize(etl_path)
            out = subprocess.run([sys.executable, "-c", CHILD_ETL, etl_path], capture_output=True, text=True,
                                 check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
            etl = json.loads(out.stdout)
    print(f"# python benchmarks/read_pcap.py --packets {args.packets}" + (" --etl" if args.etl else ""))
    print(f"# machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}")
    print(f"capture: {made['frames']} frames, {made['calls']} calls, {size / 2**20:.1f} MiB, written in {wrote:.1f} s")
    print(f"read: {got['frames']} frames, {got['calls']} calls ({got['answered']} answered) in {got['seconds']:.1f} s "
          f"= {got['frames'] / got['seconds']:,.0f} frames/s; peak RSS {got['peak_rss_mb']:.0f} MiB")
    if etl is not None:
        print(f"etl twin: {etl_size / 2**20:.1f} MiB, written in {etl_wrote:.1f} s")
        print(f"read etl: {etl['frames']} frames, {etl['calls']} calls ({etl['answered']} answered) in "
              f"{etl['seconds']:.1f} s = {etl['frames'] / etl['seconds']:,.0f} frames/s; peak RSS "
              f"{etl['peak_rss_mb']:.0f} MiB; {etl['seconds'] / got['seconds']:.2f}x the capture's time")
        if (etl["frames"], etl["calls"]) != (got["frames"], got["calls"]):
            return 1
    return 0 if got["frames"] == made["frames"] and got["calls"] == made["calls"] else 1


if __name__ == "__main__":
    sys.exit(main())
