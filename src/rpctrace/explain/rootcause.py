"""Root cause: for each failing or suspect call, the operation a person would blame first, and the
chain from the client to the verdict.

Ranking (lower is blamed first):

0. security refusals: ACCESS_DENIED, PRIVILEGE_NOT_HELD and the like — the article's case;
1. other errors that stop work (sharing violations, invalid parameters, ...);
2. "not found" results — services probe optional policy keys and values all the time, so a
   missing key is a suspect only when nothing better exists;
3. size probes (BUFFER_TOO_SMALL / BUFFER_OVERFLOW), which callers use to size a buffer.

Within a rank the earliest operation wins: later failures are often consequences.  The search
covers the call's whole subtree (a nested call's failure is the parent's failure too) and says in
which call of the subtree the operation happened.
"""

from __future__ import annotations

from dataclasses import dataclass

from rpctrace.correlate.calls import Call
from rpctrace.model import Event

SECURITY = {0xC0000022, 0xC0000061, 0xC0000062, 0xC00000A1, 0xC0000364, 0x80070005, 5}
NOT_FOUND = {0xC0000034, 0xC000003A, 0xC0000225, 0xC000000F}
SIZE_PROBES = {0xC0000023, 0x80000005}


def blame_rank(status: int | None) -> int:
    if status in SECURITY:
        return 0
    if status in SIZE_PROBES:
        return 3
    if status in NOT_FOUND:
        return 2
    return 1


@dataclass
class Blame:
    op: Event
    call: Call  # the call (in the subtree) whose server thread did the operation
    rank: int


def first_failure(call: Call) -> Blame | None:
    """The operation to blame first in ``call``'s subtree, or None if nothing failed."""
    best: Blame | None = None
    for node in call.subtree():
        for op in node.failures:
            rank = blame_rank(op.fields.get("status"))
            if best is None or (rank, op.ts) < (best.rank, best.op.ts):
                best = Blame(op, node, rank)
    return best


def suspect_calls(calls: list[Call]) -> list[tuple[Call, Blame]]:
    """Root calls (no parent) whose subtree failed, with what to blame, most serious first.

    A call whose only failures are size probes or missing optional keys is not reported unless
    its RPC status also failed: those are how services normally probe the registry.
    """
    out = []
    for call in calls:
        if call.parent is not None:
            continue
        blame = first_failure(call)
        rpc_failed = bool(call.status or call.server_status)
        if blame is None or (blame.rank >= 2 and not rpc_failed):
            continue
        out.append((call, blame))
    out.sort(key=lambda cb: (cb[1].rank, cb[1].op.ts))
    return out
