"""Status code names.

A seed table of the codes rpctrace meets in the incidents it explains (values from the public
ntstatus.h / winerror.h, as listed in ../shared/reference/etw-and-alpc-facts.md §7).  The full
generated tables (NTSTATUS, HRESULT, Win32, RPC_S_*) replace this with the knowledge issue.
"""

from __future__ import annotations

NTSTATUS: dict[int, str] = {
    0x00000000: "STATUS_SUCCESS",
    0x00000101: "STATUS_ALERTED",
    0x00000102: "STATUS_TIMEOUT",
    0x000000C0: "STATUS_USER_APC",
    0xC0000022: "STATUS_ACCESS_DENIED",
    0xC0000023: "STATUS_BUFFER_TOO_SMALL",
    0xC0000034: "STATUS_OBJECT_NAME_NOT_FOUND",
    0xC0000035: "STATUS_OBJECT_NAME_COLLISION",
    0xC0000037: "STATUS_PORT_DISCONNECTED",
    0xC0000061: "STATUS_PRIVILEGE_NOT_HELD",
}


def ntstatus_name(code: int | None) -> str | None:
    if code is None:
        return None
    return NTSTATUS.get(code & 0xFFFFFFFF)
