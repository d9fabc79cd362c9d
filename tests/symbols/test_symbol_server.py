"""Symbol stores and servers end to end: a store served over HTTP on 127.0.0.1, a writer trace
with DbgID_RSDS events, its stacks resolved through ``srv*CACHE*http://127.0.0.1:PORT``, then
again with the server stopped (from the cache); an unreachable server is one clear line."""

from __future__ import annotations

import io
import json
import os
import socket
from contextlib import redirect_stderr, redirect_stdout

import pytest
from symbols_support import SYMBOLS, SymbolServer, built, free_port, make_store

from rpctrace.cli import main
from rpctrace.symbols import ImageRef, Symbolizer, parse_symbol_path
from rpctrace.symbols.download import Downloader
from rpctrace.symbols.frames import TraceSymbols
from rpctrace.symbols.store import LocalStore, pdb_key

EXPECTED = {"audiosrv!PolicyConfigSetDefaultEndpoint+0x1e9", "MMDevAPI!CSubEndpointDevice::SetRegValue+0x24d"}


@pytest.fixture(scope="module", params=[8, 4], ids=["x64", "x86"])
def scenario(request, tmp_path_factory):
    from rpctrace.synth import synthesize
    from rpctrace.trace import load

    ptr = request.param
    path = tmp_path_factory.mktemp("trace") / "audiosrv.etl"
    synthesize("audiosrv-access-denied", path, None, seed=3, calls=1, clients=1, pointer_size=ptr)
    return path, load([path]), "x64" if ptr == 8 else "x86"


def _stack_texts(trace, symbolizer):
    ts = TraceSymbols(trace, symbolizer)
    texts = set()
    for ev in trace.events:
        if ev.stack and ev.kind.startswith("registry."):
            texts.update(ts.text(ev.pid, a) for a in ev.stack)
    return texts


def _run(argv):
    out, errs = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(errs):
        rc = main(argv)
    return rc, out.getvalue(), errs.getvalue()


def test_fetch_then_resolve_from_server_then_from_cache(scenario, tmp_path):
    path, trace, arch = scenario
    served = make_store(tmp_path / "served", arch)
    cache = tmp_path / "cache"
    server = SymbolServer(served)
    symbols = f"srv*{cache}*{server.url}"
    try:
        rc, out, errs = _run(["symbols", "fetch", str(path), "--symbols", symbols, "--format", "json"])
        assert rc == 0, errs
        report = json.loads(out)
        found = {i["module"]: i for i in report["images"] if i["pdb"]}
        assert set(found) == {"audiosrv", "MMDevAPI"}
        assert all(i["via"] == f"server {server.url}" and i["identity_from"] == "trace" for i in found.values())
        missing = [i for i in report["images"] if not i["pdb"]]
        assert missing and all(i["problem"].endswith(f"not found (looked in store {cache}, server {server.url})")
                               for i in missing)  # e.g. ntdll.pdb/.../ntdll.pdb
        assert len(report["downloaded"]) == 2 and errs == ""
        for m in built(arch):  # the cache is laid out as a symbol store
            stored = cache / m["pdb_name"] / (m["guid"].replace("-", "").upper() + f"{m['age']:X}") / m["pdb_name"]
            assert stored.read_bytes() == (SYMBOLS / m["pdb"]).read_bytes()
        assert not list(cache.rglob(".partial-*"))

        sym = Symbolizer(parse_symbol_path(symbols))
        first = _stack_texts(trace, sym)
        assert EXPECTED <= first
        asked = len(server.requests)
    finally:
        server.stop()
    # a second run, the server gone: the cache answers for the PDBs it holds
    again = Symbolizer(parse_symbol_path(symbols), downloader=Downloader(timeout=2, retries=0))
    assert _stack_texts(trace, again) == first
    assert len(server.requests) == asked
    assert all("unreachable" in p for p in again.problems) and len(again.problems) <= 1


def test_unreachable_server_is_one_clear_line(scenario, tmp_path):
    path, _trace, _arch = scenario
    url = f"http://127.0.0.1:{free_port()}"
    rc, out, errs = _run(["symbols", "fetch", str(path), "--symbols", f"srv*{tmp_path / 'cache'}*{url}",
                          "--timeout", "2"])
    assert rc == 0
    lines = errs.strip().splitlines()
    assert lines == [f"rpctrace: error: symbol server {url} is unreachable (connection refused); going on without it"]
    assert "0 PDB(s) found" in out and "missing" in out


def test_binary_index_then_pdb(tmp_path):
    """No PDB identity in the trace: the binary comes from the server's binary index
    (TimeDateStamp + SizeOfImage), its debug directory names the PDB."""
    m = next(m for m in built("x64") if m["module"] == "audiosrv.dll")
    server = SymbolServer(make_store(tmp_path / "served", "x64"))
    try:
        sym = Symbolizer(parse_symbol_path(f"srv*{tmp_path / 'cache'}*{server.url}"))
        ref = ImageRef("\\Device\\HarddiskVolume2\\Windows\\System32\\audiosrv.dll", 0x7FFF00000000,
                       m["size_of_image"], m["timestamp"])
        s = sym.resolve(ref, 0x12EF9)
        loc = sym.locate(ref)
    finally:
        server.stop()
    assert s is not None and s.text() == "audiosrv!PolicyConfigSetDefaultEndpoint+0x1e9"
    assert loc.identity_from.startswith("binary ") and loc.guid == m["guid"]
    assert (tmp_path / "cache" / "audiosrv.dll" / f"{m['timestamp']:08X}{m['size_of_image']:x}" / "audiosrv.dll").is_file()


def test_image_path_binary_and_pdb_beside_it():
    m = next(m for m in built("x86") if m["module"] == "MMDevAPI.dll")
    sym = Symbolizer(None, [str(SYMBOLS / "x86")])
    ref = ImageRef("MMDevAPI.dll", 0x70000000, m["size_of_image"], m["timestamp"])
    assert sym.resolve(ref, 0x2A80D).text() == "MMDevAPI!CSubEndpointDevice::SetRegValue+0x24d"
    assert sym.locate(ref).identity_from == f"image-path {SYMBOLS / 'x86' / 'MMDevAPI.dll'}"
    other = ImageRef("MMDevAPI.dll", 0x70000000, m["size_of_image"], m["timestamp"] + 1)  # another build
    assert sym.resolve(other, 0x2A80D) is None
    assert any("TimeDateStamp" in t for t in sym.locate(other).tried)


def test_pdb_identity_must_match_outside_stores(tmp_path):
    """A PDB of the right name in a plain directory but of another build is not used."""
    m = next(m for m in built("x64") if m["module"] == "audiosrv.dll")
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "audiosrv.pdb").write_bytes((SYMBOLS / "x64" / "publics" / "audiosrv.pdb").read_bytes())
    sym = Symbolizer(parse_symbol_path(str(flat)))
    ref = ImageRef("audiosrv.dll", 0, m["size_of_image"], m["timestamp"], None, m["guid"], m["age"], "audiosrv.pdb")
    assert sym.resolve(ref, 0x12EF9) is None
    assert any("another build" in t for t in sym.locate(ref).tried)
    (flat / "audiosrv.pdb").write_bytes((SYMBOLS / "x64" / "audiosrv.pdb").read_bytes())
    assert Symbolizer(parse_symbol_path(str(flat))).resolve(ref, 0x12EF9).text().endswith("+0x1e9")


def test_downstream_stores_and_cache_entries_keep_copies(tmp_path):
    m = next(m for m in built("x64") if m["module"] == "MMDevAPI.dll")
    key = pdb_key(m["pdb_name"], m["guid"], m["age"])
    ref = ImageRef("MMDevAPI.dll", 0, m["size_of_image"], m["timestamp"], None, m["guid"], m["age"], m["pdb_name"])
    server = SymbolServer(make_store(tmp_path / "served", "x64"), fail_first=1)  # one 503 first: retried
    try:
        down = Downloader(timeout=5, backoff=0.01)
        sym = Symbolizer(parse_symbol_path(f"srv*{tmp_path / 'a'}*{tmp_path / 'b'}*{server.url}"), downloader=down)
        assert sym.resolve(ref, 0x1B460).text() == "MMDevAPI!CSubEndpointDevice::GetRegValue+0x80"
    finally:
        server.stop()
    assert LocalStore(str(tmp_path / "a")).find(key) and LocalStore(str(tmp_path / "b")).find(key)
    assert server.httpd.failures == 1
    # cache*DIR: what a plain directory to its right holds is copied into DIR, laid out as a store
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "MMDevAPI.pdb").write_bytes((SYMBOLS / m["pdb"]).read_bytes())
    sym = Symbolizer(parse_symbol_path(f"cache*{tmp_path / 'c'};{flat}"))
    assert sym.resolve(ref, 0x2A80D) is not None
    assert LocalStore(str(tmp_path / "c")).find(key)


def test_no_network_unless_a_server_is_named(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise AssertionError("rpctrace opened a connection with no server in its symbol path")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    store = make_store(tmp_path / "store", "x64")
    sym = Symbolizer(parse_symbol_path(f"srv*{store};cache*{tmp_path / 'c'};{tmp_path}"), [str(SYMBOLS / "x64")])
    for m in built("x64"):
        ref = ImageRef(m["module"], 0, m["size_of_image"], m["timestamp"], None, m["guid"], m["age"], m["pdb_name"])
        assert sym.resolve(ref, 0x1B460 if "MMDev" in m["module"] else 0x12EF9) is not None
    assert sym.resolve(ImageRef("ntdll.dll", 0, 0x1F0000, 0x5A000000, None, "6048fdb6-2dcd-41c1-8835-594844ce7143", 2,
                                "ntdll.pdb"), 0x1000) is None
    assert sym._downloader is None


def test_progress_bar_only_on_a_terminal_and_size_limit(tmp_path):
    m = next(m for m in built("x64") if m["module"] == "audiosrv.dll")
    key = pdb_key(m["pdb_name"], m["guid"], m["age"])
    server = SymbolServer(make_store(tmp_path / "served", "x64"))

    class Tty(io.StringIO):
        def isatty(self):
            return True

    try:
        quiet = io.StringIO()
        Downloader(stream=quiet).fetch(server.url, key, LocalStore(str(tmp_path / "q")))
        assert quiet.getvalue() == ""
        tty = Tty()
        Downloader(stream=tty).fetch(server.url, key, LocalStore(str(tmp_path / "t")))
        assert "\r" in tty.getvalue() and "audiosrv.pdb" in tty.getvalue()
        from rpctrace.symbols.download import DownloadError

        with pytest.raises(DownloadError, match="limit"):
            Downloader(max_bytes=1000).fetch(server.url, key, LocalStore(str(tmp_path / "small")))
        assert not any(p.is_file() for p in (tmp_path / "small").rglob("*"))
        assert Downloader().fetch(server.url, pdb_key("absent.pdb", m["guid"], 1), LocalStore(str(tmp_path))) is None
    finally:
        server.stop()
    assert os.path.getsize(LocalStore(str(tmp_path / "q")).find(key)) == (SYMBOLS / m["pdb"]).stat().st_size
