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


#: fields that hold a FILETIME (100 ns ticks since 1601) in events of these kinds: both output
#: forms show them as ISO 8601 UTC text with all 7 fractional digits
TIME_FIELDS = ("event_ts", "start_time", "end_time", "boot_time")
TIME_KINDS = ("stack", "trace.header")
#: fields that hold an address, a kernel object pointer or a handle-like key: the text form shows
#: them in hexadecimal (JSON keeps the integer, which programs compare; its stacks are text)
ADDRESS_FIELDS = frozenset({
    "image_base", "default_base", "kcb", "key", "key_object", "base_object", "process_key", "irp",
    "file_object", "directory_table_base", "instruction_pointer", "stack_base", "stack_limit", "start_address",
    "teb_base", "user_stack_base", "user_stack_limit", "entry", "status", "exit_status", "flags", "stack_key",
    "desired_access", "log_file_mode",
})


def _times(fields: dict, kind: str) -> dict:
    """``fields`` with FILETIME values as ISO text (the same in text and JSON)."""
    if kind in TIME_KINDS:
        for key in TIME_FIELDS:
            if key in fields and isinstance(fields[key], int):
                fields[key] = ticks_to_iso(fields[key])
    return fields


def stack_frames(ev: Event, trace=None) -> list[str]:
    """An event's stack as text, innermost first: ``module!function+0xdisp`` where symbols name
    it, ``module+0xoffset`` where a loaded module holds the address, else the address in hex."""
    pid = ev.fields["stack_pid"] if "stack_pid" in ev.fields else ev.pid
    return [trace.symbolize(pid, a) if trace is not None else f"0x{a:x}" for a in ev.stack or ()]


def stack_json(ev: Event, trace=None) -> dict:
    """An event's stack as JSON: what :meth:`rpctrace.trace.model.Trace.stack_json` gives (with
    ``stack_symbols`` when symbols are attached); without a trace, every frame is its address."""
    if trace is not None:
        # a Procmon Process Start's stack is its creator's (``stack_pid``), not the new process's
        return trace.stack_json(ev.fields["stack_pid"] if "stack_pid" in ev.fields else ev.pid, ev.stack)
    stack = ev.stack or ()
    kernel, user = stack_parts(stack)
    k = [f"0x{a:x}" for a in kernel]
    u = [f"0x{a:x}" for a in user]
    return {"stack": k + u, "stack_kernel": k, "stack_user": u, "stack_addresses": [f"0x{a:x}" for a in stack]}


def event_dict(ev: Event, trace=None) -> dict:
    """The JSON shape of one event (the ``events --format jsonl`` contract)."""
    fields = _times(_plain(dict(ev.fields)), ev.kind)
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
        out.update(stack_json(ev, trace))
    return out


def write_jsonl(events: Iterable[Event], out: IO[str], trace=None) -> int:
    n = 0
    dumps = json.dumps
    for ev in events:
        out.write(dumps(event_dict(ev, trace), ensure_ascii=False) + "\n")
        n += 1
    return n


def _short(fields: dict, kind: str, limit: int = 200) -> str:
    parts = []
    for k, v in _times(dict(fields), kind).items():
        if isinstance(v, (bytes, bytearray, memoryview)):
            v = f"<{len(v)} bytes>"
        elif isinstance(v, (list, tuple)) and len(v) > 4:
            v = f"[{len(v)} items]"
        elif type(v) is int and k in ADDRESS_FIELDS:
            v = f"0x{v:x}" if v >= 0 else f"-0x{-v:x}"
        parts.append(f"{k}={v}")
    text = " ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_text(events: Iterable[Event], out: IO[str], trace=None) -> int:
    """A line per event: ISO time, cpu, pid:tid, provider/event, kind, fields (addresses in hex,
    times in ISO as in the JSON form), then the stack's first frames."""
    n = 0
    for ev in events:
        who = f"{'-' if ev.pid is None else ev.pid}:{'-' if ev.tid is None else ev.tid}"
        name = NAMES.get(ev.provider, ev.provider[:8])
        what = f"{name}/{ev.id if ev.id else ev.opcode}"
        line = (f"{ticks_to_iso(ev.ts)} cpu{'-' if ev.cpu is None else ev.cpu:<3} {who:>13} {what:<24} {ev.kind:<22} "
                f"{_short(ev.fields, ev.kind)}")
        if ev.stack:
            frames = stack_frames(ev, trace)
            shown = " ".join(frames[:4])
            line += f" [stack {len(frames)} frames: {shown}{' …' if len(frames) > 4 else ''}]"
        out.write(line + "\n")
        n += 1
    return n
