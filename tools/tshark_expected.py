"""Print the DCE/RPC calls of a capture as tshark (Wireshark's dissector) decodes them.

    python tools/tshark_expected.py [-d tcp.port==445,dcerpc] CAPTURE...

The output is the independent decoding the network reader's tests compare against
(tests/sources/test_net_captures.py holds it as literal values, so the tests need no tshark).
For each request: (request frame, response frame or None, call id, opnum, interface UUID from
tshark's own bind decoding (None when the bind was not captured), round trip in microseconds
from tshark's frame times, fault status or None).  Requests and responses are paired by TCP
stream, SMB file id and call id.
"""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

FIELDS = ["frame.number", "frame.time_epoch", "tcp.stream", "smb.fid", "smb2.fid", "dcerpc.pkt_type",
          "dcerpc.cn_call_id", "dcerpc.opnum", "dcerpc.cn_ctx_id", "dcerpc.cn_bind_to_uuid", "dcerpc.cn_status",
          "dcerpc.cn_ack_result"]


def rows(path: str, decode_as: list[str]):
    cmd = ["tshark", "-r", path, "-Y", "dcerpc", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"]
    for d in decode_as:
        cmd += ["-d", d]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        yield dict(zip(FIELDS, [c.split("|") if c else [] for c in line.split("\t")]))


def calls(path: str, decode_as: list[str] = ()):
    contexts: dict[tuple, str] = {}
    offered: dict[tuple, list] = {}
    pending: dict[tuple, tuple] = {}
    result = []
    for r in rows(path, list(decode_as)):
        frame = int(r["frame.number"][0])
        t = Decimal(r["frame.time_epoch"][0])
        stream = r["tcp.stream"][0]
        fid = (r["smb.fid"] or r["smb2.fid"] or [""])[0]
        for i, ptype in enumerate(r["dcerpc.pkt_type"]):
            ptype = int(ptype)
            cid = int(r["dcerpc.cn_call_id"][i])
            conn = (stream, fid)
            if ptype in (11, 14):
                ctxs = [int(c) for c in r["dcerpc.cn_ctx_id"]]
                uuids = r["dcerpc.cn_bind_to_uuid"]
                offered[conn] = list(zip(ctxs, uuids))
                for c, u in offered[conn]:
                    contexts.setdefault(conn + (c,), u)
            elif ptype in (12, 15):
                acks = [int(a) for a in r["dcerpc.cn_ack_result"]]
                for (c, u), a in zip(offered.get(conn, []), acks):
                    if a == 0:
                        contexts[conn + (c,)] = u
            elif ptype == 0:
                ctx = int(r["dcerpc.cn_ctx_id"][i]) if r["dcerpc.cn_ctx_id"] else None
                op = int(r["dcerpc.opnum"][i]) if r["dcerpc.opnum"] else None
                rec = [frame, None, cid, op, contexts.get(conn + (ctx,)), None, None]
                pending[conn + (cid,)] = (rec, t)
                result.append(rec)
            elif ptype in (2, 3):
                got = pending.pop(conn + (cid,), None)
                if got is None:
                    continue
                rec, t0 = got
                rec[1] = frame
                rec[5] = int((t - t0) * 1_000_000)
                if ptype == 3:
                    rec[6] = int(r["dcerpc.cn_status"][0], 16) if r["dcerpc.cn_status"] else None
    return [tuple(x) for x in result]


if __name__ == "__main__":
    # -d tcp.port==445,dcerpc: DCE/RPC straight on a port tshark expects SMB on (the reader
    # decides by content, tshark by port)
    args = sys.argv[1:]
    decode = [args[i + 1] for i, a in enumerate(args) if a == "-d"]
    paths = [a for i, a in enumerate(args) if a != "-d" and (i == 0 or args[i - 1] != "-d")]
    for p in paths:
        print(p.rsplit("/", 1)[-1], calls(p, decode))
