"""The finding, in the words the article ends with, for one failing call."""

from __future__ import annotations

from typing import IO


def write_finding(call, trace, record: dict, out: IO[str]) -> None:
    client, server = record["client"], record["server"]
    failure = next(f for f in record["failures"] if f["status"] == 0xC0000022)
    service = f" (service {server['service']})" if server.get("service") else ""
    proc = record["procedure"] or f"opnum {record['opnum']}"
    iface = record["interface"]["name"] or record["interface"]["uuid"]
    status = failure["status_name"] or f"0x{failure['status']:08x}"
    out.write("Finding\n")
    out.write(f"  {client['image']} (pid {client['pid']}, thread {client['tid']}) called {iface} {proc}\n")
    out.write(f"  over {record['protocol']} endpoint {record['endpoint']} (ALPC message {record['alpc_message_id']}).\n")
    out.write(f"  {server['image']} (pid {server['pid']}){service} handled it on worker thread {server['tid']}.\n")
    out.write(f"  While serving it, that thread's {failure['kind'].split('.')[-1]} of\n    {failure['path']}\n")
    out.write(f"  failed with 0x{failure['status']:08x} {status}.\n")
    op = next((o for o in call.failures if o.fields.get("status") == failure["status"]), None)
    if op is not None and op.stack:
        frames = [trace.symbolize(op.pid, a) for a in op.stack]
        user = [f for f in frames if not f.startswith(("ntoskrnl", "0x"))]
        out.write("  Stack of the failing operation (innermost first): " + " <- ".join(user[:6]) + " <- ...\n")
    out.write(f"  Confidence {record['confidence']:.2f}: {', '.join(record['evidence'])}.\n")
