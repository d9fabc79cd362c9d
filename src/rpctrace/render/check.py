"""Print what ``rpctrace check`` found: what the inputs hold, what they lack, what to enable."""

from __future__ import annotations

import json
from typing import IO


def write_json(doc: dict, out: IO[str]) -> None:
    json.dump(doc, out, indent=2, ensure_ascii=False)
    out.write("\n")


def write_text(doc: dict, out: IO[str]) -> None:
    w = out.write
    files = ", ".join(doc.get("files") or [])
    total = sum(doc["events"].values())
    w(f"{files}: {total:,} events" + (f", {doc['calls']:,} RPC calls rebuilt" if doc.get("calls") is not None else "")
      + "\n")
    if doc["events"]:
        w("events by kind:\n")
        for kind, n in sorted(doc["events"].items(), key=lambda kv: (-kv[1], kv[0])):
            w(f"  {n:>10,}  {kind}\n")
    w(f"lost: {doc['lost_events']:,} events, {doc['lost_buffers']:,} buffers"
      + ("; reading stopped at damage (see the error below)" if doc["truncated"] else "") + "\n")
    if doc["missing"]:
        w("missing: " + ", ".join(doc["missing"]) + "\n")
        w("what that costs, and how to record it:\n")
        for line in doc["advice"]:
            w(f"  - {line}\n")
    else:
        w("missing: nothing rpctrace needs\n")
