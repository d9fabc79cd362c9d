"""Symbol path syntax and meaning (``_NT_SYMBOL_PATH``) and the symbol store layout."""

from __future__ import annotations

import pytest

from rpctrace.symbols.path import Location, SymbolPathError, from_environment, parse, resolve
from rpctrace.symbols.store import LocalStore, StoreError, binary_key, file_name, flat_candidates, pdb_key

DEFAULT = "/cache/default"


def locs(text):
    return [[(loc.kind, loc.where) for loc in e.locations] for e in parse(text, cache=DEFAULT).entries]


def test_plain_directories_and_separators():
    assert locs("C:\\symbols; /opt/syms ;;") == [[("flat", "C:\\symbols")], [("flat", "/opt/syms")]]
    assert parse("", cache=DEFAULT).entries == ()
    assert not parse("/a;/b").uses_network


def test_srv_chains():
    url = "https://msdl.microsoft.com/download/symbols"
    assert locs(f"srv*C:\\cache*{url}") == [[("store", "C:\\cache"), ("server", url)]]
    assert locs(f"SRV*{url}") == [[("store", DEFAULT), ("server", url)]]  # the default downstream store
    assert locs(f"srv**{url}") == [[("store", DEFAULT), ("server", url)]]
    assert locs("srv*/local/store") == [[("store", "/local/store")]]  # a store with no server
    assert locs(f"srv*/a*/b*{url}/") == [[("store", "/a"), ("store", "/b"), ("server", url)]]
    assert locs(f"symsrv*symsrv.dll*/a*{url}") == [[("store", "/a"), ("server", url)]]
    p = parse(f"srv*/a*{url};srv*/b*http://127.0.0.1:8000;srv*/c*{url}")
    assert p.servers == [url, "http://127.0.0.1:8000"] and p.uses_network


def test_cache_entry_applies_to_what_follows():
    assert locs("/flat1;cache*/c;/flat2;srv*/s*http://h") == [
        [("flat", "/flat1")],
        [("store", "/c"), ("flat", "/flat2")],
        [("store", "/c"), ("store", "/s"), ("server", "http://h")],
    ]
    assert locs("cache*;/flat") == [[("store", DEFAULT), ("flat", "/flat")]]


@pytest.mark.parametrize("text,message", [
    ("srv*", "names no store"),
    ("srv", "names no store"),
    ("symsrv*other.dll*/a*http://h", "only symsrv"),
    ("https://msdl.microsoft.com/download/symbols", "srv\\*URL"),
    ("cache*http://h", "must be a directory"),
    ("x" * 40000, "too long"),
    (";".join(["/d"] * 100), "more than 64 entries"),
    ("srv*" + "*".join(["/s"] * 20), "more than 16"),
])
def test_what_debuggers_would_not_accept_either(text, message):
    with pytest.raises(SymbolPathError, match=message):
        parse(text)


def test_environment_and_option():
    env = {"_NT_SYMBOL_PATH": "srv*/s*http://h", "_NT_ALT_SYMBOL_PATH": "/alt"}
    assert [e.text for e in from_environment(env).entries] == ["/alt", "srv*/s*http://h"]
    assert from_environment({}) is None
    assert resolve("/mine", env).text == "/mine"  # --symbols replaces the environment
    assert resolve(None, {}) is None


def test_store_keys():
    k = pdb_key("C:\\build\\audiosrv.pdb", "{d2e7d935-fdb9-3bca-4c4c-44205044422e}", 0x1A)
    assert str(k) == "audiosrv.pdb/D2E7D935FDB93BCA4C4C44205044422E1A/audiosrv.pdb"
    assert str(binary_key("\\Device\\HarddiskVolume2\\Windows\\System32\\ntdll.dll", 0x0D9F641E, 0x599000)) == \
        "ntdll.dll/0D9F641E599000/ntdll.dll"  # timestamp 8 digits, size without leading zeros
    assert k.url_path() == "audiosrv.pdb/D2E7D935FDB93BCA4C4C44205044422E1A/audiosrv.pdb"
    for bad in ("..", "", "a\x00b", "con:x", "a*b"):
        with pytest.raises(StoreError):
            file_name(bad)
    with pytest.raises(StoreError):
        binary_key("x.dll", 1 << 33, 0x1000)


def test_local_store_lookup(tmp_path):
    k = pdb_key("MMDevAPI.pdb", "6f78c927-a92e-17e4-4c4c-44205044422e", 1)
    store = LocalStore(str(tmp_path))
    assert store.find(k) is None
    # any letter case, as on the Windows file systems stores come from
    folder = tmp_path / "mmdevapi.pdb" / "6f78c927a92e17e44c4c44205044422e1"
    folder.mkdir(parents=True)
    (folder / "MMDEVAPI.PDB").write_bytes(b"x")
    assert store.find(k) == str(folder / "MMDEVAPI.PDB")
    # file.ptr points elsewhere
    (folder / "MMDEVAPI.PDB").unlink()
    target = tmp_path / "elsewhere.pdb"
    target.write_bytes(b"y")
    (folder / "file.ptr").write_text(f"PATH:{target}")
    assert store.find(k) == str(target)
    # two-tier stores (index2.txt)
    two = tmp_path / "two"
    two.mkdir()
    (two / "index2.txt").write_text("")
    put = LocalStore(str(two)).put_file(k, str(target))
    assert put == str(two / "mm" / "MMDevAPI.pdb" / "6F78C927A92E17E44C4C44205044422E1" / "MMDevAPI.pdb")
    assert LocalStore(str(two)).find(k) == put


def test_flat_directory_candidates(tmp_path):
    (tmp_path / "symbols" / "dll").mkdir(parents=True)
    (tmp_path / "symbols" / "dll" / "audiosrv.pdb").write_bytes(b"")
    (tmp_path / "audiosrv.pdb").write_bytes(b"")
    assert flat_candidates(str(tmp_path), "audiosrv.pdb") == [str(tmp_path / "audiosrv.pdb"),
                                                             str(tmp_path / "symbols" / "dll" / "audiosrv.pdb")]


def test_location_repr():
    assert str(Location("server", "http://h")) == "http://h" and Location("server", "http://h").is_server
