"""Root cause: for each call that failed, the operation a person would blame first, and the hops
from the client's call down to the server thread that did it.

What deserves blame is the failure classes' call (:mod:`rpctrace.knowledge.failures`): expected
results (an optional key not found, a buffer size asked for) are never blamed unless asked for
(``explain --all``).  Among a call's failures:

0. security refusals first: ACCESS_DENIED, PRIVILEGE_NOT_HELD and the like (the article's case);
1. then other blame-worthy errors (sharing violations, invalid handles, RPC errors, ...);
2. (only with ``--all``) missing keys and values, 3. size probes and the other expected results;

and within a rank the hop nearest the client, then the earliest operation (later failures are
often consequences).  The search covers the call's whole subtree (a nested call's failure is the
parent's failure too) and keeps the chain of calls down to the hop where it happened.

Findings are then ordered as a person reads them (:func:`finding_order`): the failure the client
saw (a non-success RPC status returned to it), then failures on the called server's own thread,
then deeper hops; failures outside any call come last (:mod:`rpctrace.explain.findings`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rpctrace.correlate.calls import Call
from rpctrace.knowledge.failures import event_class
from rpctrace.knowledge.status import is_failure
from rpctrace.model import Event

__all__ = ["SECURITY", "Blame", "blame_rank", "finding_order", "first_failure", "suspect_calls"]

SECURITY = {0xC0000022, 0xC0000061, 0xC0000062, 0xC00000A1, 0xC0000364, 0xC00000A5, 0xC000006D, 0x80070005, 5}
NOT_FOUND = {0xC0000034, 0xC000003A, 0xC0000225, 0xC000000F}
SIZE_PROBES = {0xC0000023, 0x80000005}


def blame_rank(status: int | None) -> int:
    """0 security refusal, 1 other error, 2 not found, 3 size probe (lower is blamed first)."""
    if status in SECURITY:
        return 0
    if status in SIZE_PROBES:
        return 3
    if status in NOT_FOUND:
        return 2
    return 1


def _rank(op: Event) -> int:
    """:func:`blame_rank`, with every expected result ranked after every blame-worthy failure."""
    status = op.fields.get("status")
    if event_class(op) == "blame":
        return 0 if status in SECURITY else 1
    return max(2, blame_rank(status))


@dataclass
class Blame:
    op: Event
    call: Call  # the call (in the subtree) whose server thread did the operation
    rank: int
    hops: list[Call] = field(default_factory=list)  # the root call first, ``call`` last

    @property
    def depth(self) -> int:
        return len(self.hops) - 1

    @property
    def expected(self) -> bool:
        return self.rank >= 2


def first_failure(call: Call, include_expected: bool = True) -> Blame | None:
    """The operation to blame first in ``call``'s subtree (see the module docstring), with the
    hops down to it; None if nothing failed (or only expected results, unless included)."""
    best: Blame | None = None
    best_key: tuple | None = None
    stack: list[tuple[Call, list[Call]]] = [(call, [call])]
    seen: set[int] = set()
    while stack:
        node, hops = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for op in node.operations:
            if not is_failure(op.fields.get("status")) or not op.kind.startswith(("registry.", "file.")):
                continue
            rank = _rank(op)
            if rank >= 2 and not include_expected:
                continue
            key = (rank, len(hops), op.ts)
            if best_key is None or key < best_key:
                best, best_key = Blame(op, node, rank, hops), key
        for child in reversed(node.children):
            if len(hops) < 64:
                stack.append((child, hops + [child]))
    return best


def client_saw_failure(call: Call) -> bool:
    """Whether the client was told the call failed: a non-success RPC status (or fault) came back."""
    return bool(call.status)


def suspect_calls(calls: list[Call], include_expected: bool = False) -> list[tuple[Call, Blame | None]]:
    """Top-level calls that failed, each with what to blame (None when only the RPC status says
    so), in the order a person reads them (:func:`finding_order`)."""
    out = []
    for call in calls:
        if call.parent is not None:
            continue
        blame = first_failure(call, include_expected)
        if blame is None and not client_saw_failure(call):
            continue
        out.append((call, blame))
    out.sort(key=lambda cb: finding_order(cb[0], cb[1]))
    return out


def finding_order(call: Call, blame: Blame | None) -> tuple:
    """Sort key of a call's finding: the failure the client saw first, then one on the called
    server's own thread, then deeper hops; within each, security refusals first, then time."""
    if client_saw_failure(call):
        group = 0
    elif blame is not None and blame.depth == 0:
        group = 1
    else:
        group = 2
    rank = blame.rank if blame is not None else 1
    ts = blame.op.ts if blame is not None else (call.end or call.start or 0)
    return (group if rank < 2 else 3, rank, ts)
