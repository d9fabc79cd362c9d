"""``rpctrace symbols resolve --pdb`` agrees with llvm-pdbutil's view of the same PDBs.

The PDBs are built by clang + lld-link (tools/build_symbol_testdata.py) for x64 and x86; the
oracle is llvm-pdbutil's dump saved beside each PDB by the same script (and, where llvm-pdbutil
is installed, the dump is made again here and must be the same).  For every public function:
its RVA (section + offset through the section headers), the procedure at that address and its
code size, and the inlined call sites inside it must be what rpctrace prints.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from contextlib import redirect_stdout

import pytest
from symbols_support import SYMBOLS, built, dump_of

from rpctrace.cli import main
from rpctrace.symbols.names import display_name

CASES = [(m["arch"], m["pdb"]) for m in built()]


def _resolve(pdb, offsets):
    out = io.StringIO()
    with redirect_stdout(out):
        rc = main(["symbols", "resolve", "--pdb", str(pdb), "--format", "json", *[hex(o) for o in offsets]])
    assert rc == 0
    return {r["offset"]: r for r in json.loads(out.getvalue())["results"]}


@pytest.mark.parametrize("arch,pdb", CASES)
def test_saved_dump_is_llvm_pdbutil_view(arch, pdb):
    tool = shutil.which("llvm-pdbutil")
    if tool is None:
        pytest.skip("llvm-pdbutil is not installed (the saved dump is used as the oracle)")
    path = SYMBOLS / pdb
    live = subprocess.run([tool, "dump", "--publics", "--symbols", "--section-headers", str(path)],
                          check=True, capture_output=True, text=True).stdout.replace(str(path), path.name)
    assert live == path.with_suffix(".pdbutil.txt").read_text()


@pytest.mark.parametrize("arch,pdb", CASES)
def test_every_public_function_agrees(arch, pdb):
    path = SYMBOLS / pdb
    dump = dump_of(path)
    procs = {(p.section, p.offset): p for p in dump.procs}
    functions = [(name, sec, off) for name, sec, off, fn in dump.publics if fn]
    assert len(functions) >= 6
    probes = []
    for _name, sec, off in functions:
        proc = procs[(sec, off)]
        start = dump.rva(sec, off)
        probes += [start, start + proc.size // 2, start + proc.size - 1]
        probes += [start + code for _inlinee, code in proc.inlines]
    got = _resolve(path, probes)
    for name, sec, off in functions:
        proc = procs[(sec, off)]
        start = dump.rva(sec, off)
        for delta in (0, proc.size // 2, proc.size - 1):
            r = got[start + delta]
            outer = r["frames"][-1]
            assert (outer["function"], outer["displacement"]) == (proc.name, delta), (name, hex(start + delta))
            assert r["symbol"] == f"{outer['module']}!{proc.name}+0x{delta:x}"
            assert outer["file"].endswith(".cpp") and outer["line"] > 0
        # the public symbol's decorated name, undecorated as a debugger does, is the procedure's name
        assert display_name(name, "x86" if arch == "x86" else "x86_64", True) == proc.name
        for inlinee, code in proc.inlines:
            frames = got[start + code]["frames"]
            assert frames[0]["inline"] and frames[0]["function"] == inlinee and frames[0]["displacement"] is None
            assert frames[-1]["function"] == proc.name and not frames[-1]["inline"]


@pytest.mark.parametrize("arch,pdb", CASES)
def test_public_symbols_only_pdb_agrees(arch, pdb):
    """The same code's PDB without compiler debug information (public symbols only, as Microsoft
    publishes): names come undecorated from the public symbols, extents up to the next one."""
    full = dump_of(SYMBOLS / pdb)
    path = SYMBOLS / pdb.replace("/", "/publics/")
    dump = dump_of(path)
    assert not dump.procs  # only publics
    names = {(p.section, p.offset): p.name for p in full.procs}
    starts = sorted(dump.rva(sec, off) for _n, sec, off, fn in dump.publics if fn)
    functions = [(name, dump.rva(sec, off)) for name, sec, off, fn in dump.publics if fn]
    probes = []
    for _name, start in functions:
        nxt = next((s for s in starts if s > start), start + 1)
        probes += [start, nxt - 1]
    got = _resolve(path, probes)
    for name, start in functions:
        nxt = next((s for s in starts if s > start), start + 1)
        expected = names[next((sec, off) for n, sec, off, fn in dump.publics if n == name)]
        for at in (start, nxt - 1):
            r = got[at]
            assert r["from_publics"] is True
            assert (r["frames"][-1]["function"], r["frames"][-1]["displacement"]) == (expected, at - start), name


def test_the_scenario_offsets_fall_in_the_named_functions():
    """The AudioSrv scenario's stack offsets (audiosrv+0x12ef9, MMDevAPI+0x2a80d) resolve to the
    functions the article's engineer read off the stack, in 64- and 32-bit builds."""
    for arch in ("x64", "x86"):
        a = _resolve(SYMBOLS / arch / "audiosrv.pdb", [0x12EF9])[0x12EF9]
        m = _resolve(SYMBOLS / arch / "MMDevAPI.pdb", [0x2A80D])[0x2A80D]
        assert a["symbol"] == "audiosrv!PolicyConfigSetDefaultEndpoint+0x1e9"
        assert m["symbol"] == "MMDevAPI!CSubEndpointDevice::SetRegValue+0x24d"
