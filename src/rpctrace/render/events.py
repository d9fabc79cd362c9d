"""Print events: one JSON object per line (``jsonl``) or aligned text for people."""

from __future__ import annotations

import json
from typing import IO, Any, Iterable

from rpctrace.knowledge.providers import NAMES
from rpctrace.model import Event, stack_parts, ticks_to_iso


def _plain(value: Any) -> Any:
    """JSON has no bytes or tuples: bytes become hex text, tuples lists."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def stack_json(ev: Event, symbolize=None) -> dict:
    """An event's stack as JSON (what :meth:`rpctrace.trace.model.Trace.stack_json` gives, with
    ``symbolize`` resolving addresses; without one, every frame is its address)."""
    kernel, user = stack_parts(ev.stack)
    sym = (lambda a: symbolize(ev.pid, a)) if symbolize else (lambda a: f"0x{a:x}")
    k = [sym(a) for a in kernel]
    u = [sym(a) for a in user]
    return {"stack": k + u, "stack_kernel": k, "stack_user": u, "stack_addresses": [f"0x{a:x}" for a in ev.stack]}


def event_dict(ev: Event, symbolize=None) -> dict:
    """The JSON shape of one event (the ``events --format jsonl`` contract)."""
    fields = _plain(dict(ev.fields))
    for key in ("event_ts", "start_time", "end_time", "boot_time"):
        if key in fields and isinstance(fields[key], int) and ev.kind in ("stack", "trace.header"):
            fields[key] = ticks_to_iso(fields[key])
    out = {
        "ts": ticks_to_iso(ev.ts),
        "pid": ev.pid,
        "tid": ev.tid,
        "cpu": ev.cpu,
        "provider": ev.provider,
        "id": ev.id,
        "opcode": ev.opcode,
        "version": ev.version,
        "kind": ev.kind,
        "fields": fields,
    }
    if ev.stack is not None:
        out.update(stack_json(ev, symbolize))
    return out


def write_jsonl(events: Iterable[Event], out: IO[str], symbolize=None) -> int:
    n = 0
    dumps = json.dumps
    for ev in events:
        out.write(dumps(event_dict(ev, symbolize), ensure_ascii=False) + "\n")
        n += 1
    return n


def _short(fields: dict, limit: int = 160) -> str:
    parts = []
    for k, v in fields.items():
        if isinstance(v, (bytes, bytearray)):
            v = f"<{len(v)} bytes>"
        elif isinstance(v, list) and len(v) > 4:
            v = f"[{len(v)} items]"
        elif isinstance(v, int) and k in ("status", "kcb", "key", "image_base", "process_key", "irp", "file_object"):
            v = f"0x{v:x}"
        parts.append(f"{k}={v}")
    text = " ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_text(events: Iterable[Event], out: IO[str]) -> int:
    n = 0
    for ev in events:
        who = f"{'-' if ev.pid is None else ev.pid}:{'-' if ev.tid is None else ev.tid}"
        name = NAMES.get(ev.provider, ev.provider[:8])
        what = f"{name}/{ev.id if ev.id else ev.opcode}"
        line = f"{ticks_to_iso(ev.ts)} cpu{'-' if ev.cpu is None else ev.cpu:<3} {who:>13} {what:<24} {ev.kind:<22} {_short(ev.fields)}"
        if ev.stack:
            line += f" [stack {len(ev.stack)} frames]"
        out.write(line + "\n")
        n += 1
    return n
