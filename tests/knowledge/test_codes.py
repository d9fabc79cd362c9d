"""Status tables against published values (ntstatus.h / winerror.h / [MS-ERREF])."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rpctrace.knowledge import codes, status

# (value, name, kind) as published in the Windows SDK headers and [MS-ERREF].
PUBLISHED = [
    (0xC0000022, "STATUS_ACCESS_DENIED", "NTSTATUS"),
    (0xC0000034, "STATUS_OBJECT_NAME_NOT_FOUND", "NTSTATUS"),
    (0xC0000061, "STATUS_PRIVILEGE_NOT_HELD", "NTSTATUS"),
    (0xC0000035, "STATUS_OBJECT_NAME_COLLISION", "NTSTATUS"),
    (0xC0000023, "STATUS_BUFFER_TOO_SMALL", "NTSTATUS"),
    (0xC0000037, "STATUS_PORT_DISCONNECTED", "NTSTATUS"),
    (0xC000000D, "STATUS_INVALID_PARAMETER", "NTSTATUS"),
    (0xC0020017, "RPC_NT_SERVER_UNAVAILABLE", "NTSTATUS"),
    (5, "ERROR_ACCESS_DENIED", "WIN32"),
    (2, "ERROR_FILE_NOT_FOUND", "WIN32"),
    (87, "ERROR_INVALID_PARAMETER", "WIN32"),
    (1314, "ERROR_PRIVILEGE_NOT_HELD", "WIN32"),
    (1717, "RPC_S_UNKNOWN_IF", "RPC"),
    (1722, "RPC_S_SERVER_UNAVAILABLE", "RPC"),
    (1723, "RPC_S_SERVER_TOO_BUSY", "RPC"),
    (1726, "RPC_S_CALL_FAILED", "RPC"),
    (1727, "RPC_S_CALL_FAILED_DNE", "RPC"),
    (1745, "RPC_S_PROCNUM_OUT_OF_RANGE", "RPC"),
    (1747, "RPC_S_UNKNOWN_AUTHN_SERVICE", "RPC"),
    (1753, "EPT_S_NOT_REGISTERED", "RPC"),
    (1783, "RPC_X_BAD_STUB_DATA", "RPC"),
    (1818, "RPC_S_CALL_CANCELLED", "RPC"),
    (0x80070005, "E_ACCESSDENIED", "HRESULT"),
    (0x80070057, "E_INVALIDARG", "HRESULT"),
    (0x80004001, "E_NOTIMPL", "HRESULT"),
    (0x80004005, "E_FAIL", "HRESULT"),
    (0x8007000E, "E_OUTOFMEMORY", "HRESULT"),
    (0x8001011B, "RPC_E_ACCESS_DENIED", "HRESULT"),
]


@pytest.mark.parametrize("value,symbol,kind", PUBLISHED)
def test_published_values(value, symbol, kind):
    info = codes.describe(value)
    assert info is not None
    assert (info.name, info.kind, info.code) == (symbol, kind, value)
    assert info.meaning  # every one of these has a published message
    assert codes.code_of(symbol) == value
    assert codes.name(value) == symbol


def test_meanings_are_short_first_sentences():
    assert codes.describe(5).meaning == "Access is denied."
    assert codes.describe(1717).meaning == "The interface is unknown."
    assert codes.describe(0xC0000022).meaning.startswith("A process has requested access to an object")
    assert not codes.describe(0xC0000022).meaning.startswith("{")  # the {Access Denied} title is dropped
    assert codes.describe(1753).meaning == "There are no more endpoints available from the endpoint mapper."


def test_hresult_from_win32():
    info = codes.describe(0x80070005)
    assert info.name == "E_ACCESSDENIED"
    assert info.inner is not None and info.inner.name == "ERROR_ACCESS_DENIED" and info.inner.code == 5
    # a wrapped Win32 code without an HRESULT name of its own
    wrapped = codes.describe(0x80070000 | 1717)
    assert wrapped.kind == "HRESULT" and wrapped.name == "HRESULT_FROM_WIN32(RPC_S_UNKNOWN_IF)"
    assert wrapped.inner.code == 1717 and wrapped.meaning == "The interface is unknown."
    assert codes.describe(0x8007FFFF).name == "HRESULT_FROM_WIN32(65535)"


def test_hresult_from_nt():
    info = codes.describe(0xD0000022)  # HRESULT_FROM_NT(STATUS_ACCESS_DENIED) = status | 0x10000000
    assert info.kind == "HRESULT"
    assert info.name == "HRESULT_FROM_NT(STATUS_ACCESS_DENIED)"
    assert info.inner.name == "STATUS_ACCESS_DENIED" and info.inner.code == 0xC0000022
    assert codes.nt_to_win32(0xD0000022) == 5


def test_ntstatus_from_win32():
    info = codes.describe(0xC0070000 | 5)
    assert info.kind == "NTSTATUS" and info.name == "NTSTATUS_FROM_WIN32(ERROR_ACCESS_DENIED)"


def test_hints_pick_the_namespace():
    assert codes.name(0x102) == "WAIT_TIMEOUT"  # small numbers are Win32 by default
    assert codes.name(0x102, hint="NTSTATUS") == "STATUS_TIMEOUT"
    assert codes.name(0, hint="ntstatus") == "STATUS_SUCCESS"
    assert codes.name(0) == "ERROR_SUCCESS"
    assert codes.name(0, hint="HRESULT") == "S_OK"
    assert codes.name(1, hint="HRESULT") == "S_FALSE"
    assert codes.name(1717, hint="RPC") == "RPC_S_UNKNOWN_IF"
    assert codes.name(5, hint="WIN32") == "ERROR_ACCESS_DENIED"
    # 0x8... is HRESULT first, NTSTATUS when only that table knows it
    assert codes.describe(0x80000005).name == "STATUS_BUFFER_OVERFLOW"
    # a hint that finds nothing falls back to the default order
    assert codes.name(0xC0000022, hint="WIN32") == "STATUS_ACCESS_DENIED"
    with pytest.raises(ValueError):
        codes.describe(5, hint="errno")


def test_signed_and_unknown_values():
    assert codes.name(-1073741790) == "STATUS_ACCESS_DENIED"  # 0xC0000022 as a signed LONG
    assert codes.describe(None) is None
    assert codes.describe(0x12345678) is None
    assert codes.ntstatus_name(5) is None  # no guessing across namespaces
    assert codes.ntstatus_name(None) is None


def test_table_sizes():
    n = codes.counts()
    assert n["NTSTATUS"] >= 1500
    assert n["WIN32"] >= 2000
    assert n["HRESULT"] >= 2000
    assert n["RPC"] >= 100  # RPC_S_*, RPC_X_*, EPT_S_* in the Win32 space
    assert n["nt_to_win32"] >= 300


@pytest.mark.parametrize("status_value,win32", [
    (0xC0000022, 5),      # STATUS_ACCESS_DENIED -> ERROR_ACCESS_DENIED (etw-and-alpc-facts §7)
    (0xC0000034, 2),      # STATUS_OBJECT_NAME_NOT_FOUND -> ERROR_FILE_NOT_FOUND
    (0xC000003A, 3),      # STATUS_OBJECT_PATH_NOT_FOUND -> ERROR_PATH_NOT_FOUND
    (0xC0000061, 1314),   # STATUS_PRIVILEGE_NOT_HELD -> ERROR_PRIVILEGE_NOT_HELD
    (0xC0000035, 183),    # STATUS_OBJECT_NAME_COLLISION -> ERROR_ALREADY_EXISTS
    (0xC0000023, 122),    # STATUS_BUFFER_TOO_SMALL -> ERROR_INSUFFICIENT_BUFFER
    (0xC000000D, 87),     # STATUS_INVALID_PARAMETER -> ERROR_INVALID_PARAMETER
    (0xC0000008, 6),      # STATUS_INVALID_HANDLE -> ERROR_INVALID_HANDLE
    (0xC0020017, 1722),   # RPC_NT_SERVER_UNAVAILABLE -> RPC_S_SERVER_UNAVAILABLE (by name)
    (0xC0020012, 1717),   # RPC_NT_UNKNOWN_IF -> RPC_S_UNKNOWN_IF
    (0xC0020036, 1753),   # EPT_NT_NOT_REGISTERED -> EPT_S_NOT_REGISTERED
    (0x00000000, 0),
    (0xC0070005, 5),      # NTSTATUS_FROM_WIN32
])
def test_nt_to_win32(status_value, win32):
    assert codes.nt_to_win32(status_value) == win32


def test_nt_to_win32_unknown():
    assert codes.nt_to_win32(0xC0FFEE00) is None
    assert codes.nt_to_win32(None) is None


def test_status_module_delegates():
    assert status.ntstatus_name(0xC0000022) == "STATUS_ACCESS_DENIED"
    assert status.ntstatus_name(0xC0000034) == "STATUS_OBJECT_NAME_NOT_FOUND"
    assert status.ntstatus_name(0x102) == "STATUS_TIMEOUT"
    assert status.ntstatus_name(None) is None
    assert status.NTSTATUS[0xC0000061] == "STATUS_PRIVILEGE_NOT_HELD"


def test_text_line():
    assert codes.describe(0x80070005).text == "0x80070005 E_ACCESSDENIED (ERROR_ACCESS_DENIED): General access denied error."
    assert codes.describe(1717).text == "1717 RPC_S_UNKNOWN_IF: The interface is unknown."


def test_no_io_at_import():
    code = (
        "import rpctrace.knowledge.codes as c, rpctrace.knowledge.interfaces as i, "
        "rpctrace.knowledge.services, rpctrace.knowledge.status\n"
        "assert c._tables.cache_info().currsize == 0\n"
        "assert i._packaged.cache_info().currsize == 0 and i._default_user is None\n"
    )
    import os
    from pathlib import Path

    import rpctrace
    src = str(Path(rpctrace.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
