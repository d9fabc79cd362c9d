"""The packaged knowledge data regenerates identically from tools/build_knowledge.py."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "build_knowledge.py"
DATA = ROOT / "src" / "rpctrace" / "knowledge" / "data"
SAMPLES = ROOT.parent / "shared" / "samples" / "rpc-databases"
CACHE = ROOT / "tools" / "cache"


def _tool():
    spec = importlib.util.spec_from_file_location("build_knowledge", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/samples/rpc-databases is not beside the repository")
def test_interfaces_regenerate(tmp_path, monkeypatch):
    """Byte-identical output, from local files only: every socket is refused during the build."""
    import socket

    def refuse(*a, **k):
        raise OSError("the build must not use the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    _tool().main(["build", "--only", "interfaces", "--samples", str(SAMPLES), "--out", str(tmp_path), "-q"])
    fresh = gzip.decompress((tmp_path / "interfaces.json.gz").read_bytes())
    assert fresh == gzip.decompress((DATA / "interfaces.json.gz").read_bytes())
    assert (tmp_path / "interfaces.json.gz").read_bytes() == (DATA / "interfaces.json.gz").read_bytes()


CODE_INPUTS = ["mingw-w64-10.0.0/ntstatus.h.gz", "mingw-w64-10.0.0/winerror.h.gz",
               "impacket-0.13.1/nt_errors.py.gz", "impacket-0.13.1/system_errors.py.gz",
               "impacket-0.13.1/hresult_errors.py.gz", "ntstatus_to_win32.tsv"]


@pytest.mark.skipif(not all((CACHE / f).is_file() for f in CODE_INPUTS),
                    reason="tools/cache lacks the saved header inputs (python tools/build_knowledge.py fetch)")
def test_codes_regenerate(tmp_path):
    _tool().main(["build", "--only", "codes", "--cache", str(CACHE), "--out", str(tmp_path), "-q"])
    fresh = gzip.decompress((tmp_path / "codes.json.gz").read_bytes())
    assert fresh == gzip.decompress((DATA / "codes.json.gz").read_bytes())


def test_header_parser_forms():
    tool = _tool()
    text = """
#define STATUS_ACCESS_DENIED ((NTSTATUS)0xC0000022L)
#define ERROR_ACCESS_DENIED __MSABI_LONG(5)
#define ERROR_ACCESS_DENIED_SDK 5L
#define E_ACCESSDENIED _HRESULT_TYPEDEF_(0x80070005L)
#define S_OK ((HRESULT)0x00000000L)
#define WSABASEERR 10000
#define WSAEACCES (WSABASEERR + 13)
#define E_NOT_SUFFICIENT_BUFFER HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED)
#define NO_ERROR 0L // dderror
#define FACILITY_WIN32 7
#define HRESULT_FROM_NT(x) ((HRESULT) ((x) | FACILITY_NT_BIT))
"""
    defines = tool.parse_defines(text)
    assert ("HRESULT_FROM_NT", "((HRESULT) ((x) | FACILITY_NT_BIT))") not in defines  # function-like macro
    got = {name: (kind, value) for kind, name, value in tool.classify_header(defines, "winerror")}
    assert got["ERROR_ACCESS_DENIED"] == ("win32", 5)
    assert got["ERROR_ACCESS_DENIED_SDK"] == ("win32", 5)
    assert got["E_ACCESSDENIED"] == ("hresult", 0x80070005)
    assert got["S_OK"] == ("hresult", 0)
    assert got["WSAEACCES"] == ("win32", 10013)
    assert got["E_NOT_SUFFICIENT_BUFFER"] == ("hresult", 0x80070005)
    assert got["NO_ERROR"] == ("win32", 0)
    assert "FACILITY_WIN32" not in got and "WSABASEERR" not in got
    nt = {name: value for _, name, value in tool.classify_header(defines, "ntstatus")}
    assert nt == {"STATUS_ACCESS_DENIED": 0xC0000022}


def test_short_meaning():
    tool = _tool()
    assert tool.short_meaning("{Access Denied} A process has requested access. More text follows.") == \
        "A process has requested access."
    assert tool.short_meaning("{Only A Title}") == "Only A Title"
    assert tool.short_meaning("Version 1.2 is bad. Next.") == "Version 1.2 is bad."
    assert tool.short_meaning(None) is None
