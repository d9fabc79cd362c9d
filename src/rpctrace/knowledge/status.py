"""Status code names (kept for callers of ``rpctrace.knowledge.status.ntstatus_name``).

The tables live in :mod:`rpctrace.knowledge.codes` (generated NTSTATUS, Win32 and HRESULT
tables); this module only delegates to it.
"""

from __future__ import annotations

from rpctrace.knowledge import codes


def is_failure(status: object) -> bool:
    """Whether an NTSTATUS has the error severity (0xC...): the one definition of "this operation
    failed" that every source, analysis and output uses.  (Which failures deserve blame is the
    failure classes' job; this says only that the operation did not succeed.)"""
    return type(status) is int and (status & 0xC0000000) == 0xC0000000  # type: ignore[operator]


def ntstatus_name(code: int | None) -> str | None:
    """``0xC0000022`` -> ``"STATUS_ACCESS_DENIED"``; None for None or an unknown value."""
    return codes.ntstatus_name(code)


def __getattr__(attr: str):
    # The seed table ``NTSTATUS`` (value -> name) used to live here; give the full one.
    if attr == "NTSTATUS":
        return {value: entry["name"] for value, entry in codes._tables().ntstatus.items()}
    raise AttributeError(attr)
