"""What Procmon's columns say, as rpctrace says it: NTSTATUS names and Procmon's Result text,
desired-access names, account names of well-known SIDs, registry roots in their NT form, and
operation names as event kinds."""

from __future__ import annotations

import re

from rpctrace.knowledge import access
from rpctrace.knowledge.status import ntstatus_name


def status_name(code: int | None) -> str | None:
    """The NTSTATUS name of ``code``, from the same table the ETL path uses."""
    return ntstatus_name(code)


def result_text(code: int) -> str:
    """What Procmon prints in its Result column for an NTSTATUS (``ACCESS DENIED``, ``0xC0000BB1``)."""
    from procmon_parser.consts import get_error_message

    return get_error_message(code & 0xFFFFFFFF)


_RESULT_CODES: dict[str, int] | None = None


def result_code(text: str) -> int | None:
    """Procmon's Result text back to the NTSTATUS code (``"NAME NOT FOUND"`` -> 0xC0000034)."""
    global _RESULT_CODES
    text = text.strip()
    if re.fullmatch(r"0x[0-9A-Fa-f]{1,8}", text):
        return int(text, 16)
    if _RESULT_CODES is None:
        table: dict[str, int] = {}
        try:  # procmon-parser's own table (private, so guarded); ours covers the common codes
            from procmon_parser import consts

            for code, message in getattr(consts, "_ErrorCodeMessages", {}).items():
                table.setdefault(message, code)
        except ImportError:  # pragma: no cover - procmon-parser is a dependency
            pass
        _RESULT_CODES = table
    return _RESULT_CODES.get(text)


def access_names(mask: int, object_type: str = "key") -> list[str]:
    """Names of the rights in ``mask`` (``0xe`` key -> KEY_SET_VALUE, KEY_CREATE_SUB_KEY, ...),
    from rpctrace.knowledge.access so every source names rights the same way."""
    return access.decode(mask & 0xFFFFFFFF, object_type)


_WELL_KNOWN_USERS = {
    "NT AUTHORITY\\SYSTEM": "S-1-5-18",
    "NT AUTHORITY\\LOCAL SERVICE": "S-1-5-19",
    "NT AUTHORITY\\NETWORK SERVICE": "S-1-5-20",
}


def user_sid(user: str | None) -> str | None:
    """The SID of a well-known account name as Procmon prints it (others: None, PML has no SIDs)."""
    return _WELL_KNOWN_USERS.get((user or "").upper()) if user else None


_NT_ROOTS = (
    ("HKLM", "\\REGISTRY\\MACHINE"),
    ("HKU", "\\REGISTRY\\USER"),
    ("HKCR", "\\REGISTRY\\MACHINE\\SOFTWARE\\Classes"),
)


def registry_nt_path(path: str) -> str | None:
    """``HKLM\\X`` -> ``\\REGISTRY\\MACHINE\\X`` (HKU, HKCR too); None when the root cannot say."""
    head, sep, rest = path.partition("\\")
    upper = head.upper()
    for short, nt in _NT_ROOTS:
        if upper == short:
            return nt + sep + rest if rest else nt
    return None


def snake(name: str) -> str:
    """An operation name as the tail of an event kind (``Process Create`` -> ``process_create``)."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_") or "unknown"
