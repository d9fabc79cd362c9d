"""Truncated, corrupt and hostile PDB and PE files: one clear line naming the file, and the frame
stays module+offset."""

from __future__ import annotations

import io
import struct
import sys
from contextlib import redirect_stderr, redirect_stdout

import pytest
from symbols_support import SYMBOLS, built, make_store

from rpctrace.cli import main
from rpctrace.errors import InputError
from rpctrace.symbols import ImageRef, Symbolizer, parse_symbol_path
from rpctrace.symbols import pdb as pdbmod
from rpctrace.symbols.pe import read_pe
from rpctrace.symbols.store import LocalStore, pdb_key

PDB = SYMBOLS / "x64" / "audiosrv.pdb"
DLL = SYMBOLS / "x64" / "audiosrv.dll"


def _cli(argv):
    out, errs = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(errs):
        rc = main(argv)
    return rc, out.getvalue(), errs.getvalue()


def _mutated(tmp_path, source, name, edit):
    data = bytearray(source.read_bytes())
    edit(data)
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("what,edit,message", [
    ("truncated", lambda d: d.__delitem__(slice(5000, None)), "damaged PDB"),
    ("block size zero", lambda d: d.__setitem__(slice(32, 36), bytes(4)), "damaged PDB"),
    ("directory size huge", lambda d: d.__setitem__(slice(44, 48), b"\xff\xff\xff\x7f"), "damaged PDB"),
    ("not a PDB", lambda d: d.__setitem__(slice(0, 8), b"MZ\x90\x00\x03\x00\x00\x00"), "not a PDB"),
    ("PDB 2.0", lambda d: d.__setitem__(slice(0, 40), b"Microsoft C/C++ program database 2.00\r\n\x1a"), "PDB 2.0"),
    ("empty", lambda d: d.__delitem__(slice(0, None)), "not a PDB"),
])
def test_damaged_pdb_is_one_line(tmp_path, what, edit, message):
    path = _mutated(tmp_path, PDB, "audiosrv.pdb", edit)
    with pytest.raises(InputError, match=message) as info:
        pdbmod.load_pdb(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    rc, out, errs = _cli(["symbols", "resolve", "--pdb", str(path), "0x12ef9"])
    assert rc == 2 and out == "" and errs.count("\n") == 1 and errs.startswith(f"rpctrace: error: {path}")


CHILDREN = {
    "crash": "import os, signal, sys; sys.stdin.readline(); os.kill(os.getpid(), signal.SIGABRT)",
    "hang": "import sys, time; sys.stdin.readline(); time.sleep(60)",
    "memory": "import sys; sys.stdin.readline(); sys.stderr.write('Traceback\\nMemoryError\\n'); sys.exit(1)",
    "garbage": "import sys; sys.stdin.readline(); print('not json', flush=True); sys.stdin.readline()",
    "error": "import json, sys; sys.stdin.readline(); print(json.dumps({'status': 'error', 'message': 'damaged PDB: "
             "bad stream'}), flush=True); sys.stdin.readline()",
}


@pytest.mark.parametrize("child,message", [
    ("crash", r"died on this file \(signal 6\)"),
    ("hang", "took longer than 1 s"),
    ("memory", "ran out of its"),
    ("garbage", "answer is unreadable"),
    ("error", "damaged PDB: bad stream"),
])
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_reader_process_failures_are_clean_errors(child, message):
    reader = pdbmod.ReaderProcess([sys.executable, "-c", CHILDREN[child]])
    try:
        with pytest.raises(InputError, match=message) as info:
            reader.build(str(PDB), PDB.stat().st_size, 1.0, None)
        assert str(PDB) in str(info.value)
    finally:
        reader.close()


def test_reader_process_survives_a_crash_and_reads_the_next_pdb(tmp_path):
    """A PDB that makes the reader die (a panic in symbolic's symcache writer found by fuzzing:
    the reader aborts) is one line, and the next PDB is read by a new reader."""
    hostile = _mutated(tmp_path, SYMBOLS / "x86" / "publics" / "MMDevAPI.pdb", "MMDevAPI.pdb", lambda d: (
        struct.pack_into("<I", d, 0xC00C, 0xFFFFFFFF), struct.pack_into("<I", d, 0x24, 0x80000002),
        struct.pack_into("<I", d, 0x502C, 0xFFFFFFFF)))
    with pytest.raises(InputError, match="died on this file|damaged PDB"):
        pdbmod.load_pdb(hostile)
    assert pdbmod.load_pdb(PDB).identity.arch == "x86_64"


def test_damaged_pdb_in_a_store_leaves_module_plus_offset(tmp_path):
    m = next(m for m in built("x64") if m["module"] == "audiosrv.dll")
    store = make_store(tmp_path / "store", "x64")
    stored = LocalStore(str(store)).find(pdb_key(m["pdb_name"], m["guid"], m["age"]))
    with open(stored, "r+b") as fh:
        fh.truncate(4096)
    sym = Symbolizer(parse_symbol_path(f"srv*{store}"))
    ref = ImageRef("audiosrv.dll", 0, m["size_of_image"], m["timestamp"], None, m["guid"], m["age"], m["pdb_name"])
    assert sym.resolve(ref, 0x12EF9) is None
    assert len(sym.problems) == 1 and sym.problems[0].startswith(stored) and "damaged PDB" in sym.problems[0]
    assert sym.resolve(ref, 0x12EF9) is None and len(sym.problems) == 1  # read once, reported once


def _pe_offsets(data: bytes):
    e = struct.unpack_from("<I", data, 0x3C)[0]
    opt = e + 24
    magic = struct.unpack_from("<H", data, opt)[0]
    dirs = opt + (112 if magic == 0x20B else 96)
    return e, dirs + 6 * 8  # the debug directory's data directory entry


@pytest.mark.parametrize("what,edit,message", [
    ("truncated headers", lambda d: d.__delitem__(slice(0x100, None)), "cut short: the section table"),
    ("truncated sections", lambda d: d.__delitem__(slice(0x2000, None)), "cut short: section '.text'"),
    ("no MZ", lambda d: d.__setitem__(slice(0, 2), b"ZM"), "no MZ header"),
    ("e_lfanew beyond the file", lambda d: d.__setitem__(slice(0x3C, 0x40), b"\xff\xff\xff\x00"), "e_lfanew"),
    ("debug directory of a million entries",
     lambda d: struct.pack_into("<I", d, _pe_offsets(bytes(d))[1] + 4, 0x1C * 1_000_000), "debug directory"),
    ("debug directory outside the file",
     lambda d: struct.pack_into("<I", d, _pe_offsets(bytes(d))[1], 0x7FFFF000), "debug directory"),
])
def test_damaged_pe_is_one_line(tmp_path, what, edit, message):
    path = _mutated(tmp_path, DLL, "audiosrv.dll", edit)
    with pytest.raises(InputError, match=message) as info:
        read_pe(path)
    assert str(path) in str(info.value)
    rc, out, errs = _cli(["symbols", "resolve", "--image", str(path), "0x12ef9"])
    assert rc == 2 and errs.count("\n") == 1


def test_codeview_record_outside_the_file_names_its_offset(tmp_path):
    data = bytearray(DLL.read_bytes())
    pe = read_pe(DLL)
    assert pe.pdb is not None and pe.pdb.pdb_name == "audiosrv.pdb"
    start = data.find(b"RSDS")
    entry = next(i for i in range(0, len(data) - 0x1C, 4) if struct.unpack_from("<I", data, i + 0x18)[0] == start
                 and struct.unpack_from("<I", data, i + 0x0C)[0] == 2)
    struct.pack_into("<I", data, entry + 0x10, 0x7FFFFFF0)  # SizeOfData
    path = tmp_path / "audiosrv.dll"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="CodeView record") as info:
        read_pe(path)
    assert info.value.offset == entry


def test_bad_image_on_the_image_path_is_reported_and_skipped(tmp_path):
    (tmp_path / "audiosrv.dll").write_bytes(b"MZ" + bytes(100))
    sym = Symbolizer(None, [str(tmp_path)])
    m = next(m for m in built("x64") if m["module"] == "audiosrv.dll")
    assert sym.resolve(ImageRef("audiosrv.dll", 0, m["size_of_image"], m["timestamp"]), 0x12EF9) is None
    assert len(sym.problems) == 1 and str(tmp_path / "audiosrv.dll") in sym.problems[0]


def test_hostile_names_stay_bounded():
    from rpctrace.symbols.names import MAX_DEMANGLE, display_name

    long = "?" + "A" * (MAX_DEMANGLE * 4) + "@@YAXXZ"
    assert display_name(long) == long  # not demangled, returned as is (the renderer cuts it)
    assert display_name("?x@@" + "\x00\x01" * 10) is not None
