#!/usr/bin/env python3
"""Rebuild the PE/PDB pairs of rpctrace's symbol tests with a real toolchain.

    python tools/build_symbol_testdata.py [--out tests/data/symbols] [--check]

Needs clang, lld-link and llvm-pdbutil (Debian: ``apt-get install clang lld llvm``).  Builds
``audiosrv.dll`` and ``MMDevAPI.dll`` stand-ins (tools/symbol_testdata/*.cpp) as MSVC-compatible
PE32+ (x64) and PE32 (x86) DLLs with their PDBs, so that:

* each function the AudioSrv scenario's stacks name starts at the RVA ``rpctrace.synth`` uses
  (``rpctrace.synth.catalog.DLLS``): the build is repeated with the filler before each function
  grown or shrunk until it lands there;
* SizeOfImage equals the scenario's module size and TimeDateStamp its value (the symbol store's
  binary index of the image the trace names): a zero-initialized array sizes the image;
* the PDB GUID is what the scenario's DbgID_RSDS events carry (``catalog.PDB_IDENTITIES``; the
  script prints the table to paste there when a rebuild changes it, and ``--check`` fails then).

Builds are reproducible: fixed timestamp, fixed build directory names recorded in the PDB
(``/pdbsourcepath``, ``-ffile-compilation-dir``), so the same toolchain gives the same GUIDs.
Next to each PDB the script saves ``llvm-pdbutil dump --publics --symbols --section-headers``
(``NAME.pdbutil.txt``): the tests compare rpctrace's lookups with it without llvm-pdbutil.
``ARCH/publics/NAME.pdb`` is the same code linked without compiler debug information: a PDB of
public symbols only, like those Microsoft's symbol server hands out.
``manifest.json`` lists what was built (RVAs, sizes, timestamps, PDB identities).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "tools" / "symbol_testdata"
sys.path.insert(0, str(ROOT / "src"))

from rpctrace.synth import catalog as C

BUILD_DIR = "C:\\build\\rpctrace-symbols"
#: module -> (source, [(function as the catalog names it, how the map file spells it), ...])
MODULES = {
    "audiosrv.dll": ("audiosrv.cpp", ["PolicyConfigSetDefaultEndpoint", "PolicyConfigGetDeviceFormat"]),
    "MMDevAPI.dll": ("mmdevapi.cpp", ["CSubEndpointDevice::GetRegValue", "CSubEndpointDevice::SetRegValue"]),
}
PADS = {"audiosrv.dll": ("AudioSrvReservedCode0", "AudioSrvReservedCode1"),
        "MMDevAPI.dll": ("MMDevReservedCode0", "MMDevReservedCode1")}
ARCHES = {"x64": ("x86_64-pc-windows-msvc", "x64", 8), "x86": ("i686-pc-windows-msvc", "x86", 4)}


def tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found (Debian: apt-get install clang lld llvm)")
    return found


def timestamp(name: str) -> int:
    """The TimeDateStamp rpctrace.synth gives the module (rpctrace.synth.world.World._tds)."""
    return 0x5A000000 + (zlib.crc32(name.encode()) % 0x02000000)


def mangled_match(function: str, public: str) -> bool:
    """Whether a map-file public name is the catalog's ``function`` (``A::f`` or ``f``)."""
    if "::" in function:
        cls, meth = function.split("::")
        return public.startswith(f"?{meth}@{cls}@@")
    return public in (function, f"_{function}") or re.fullmatch(rf"_{re.escape(function)}@\d+", public) is not None


def read_map(path: Path) -> dict[str, int]:
    """Public name -> RVA, from lld-link's /map output."""
    text = path.read_text()
    base = int(re.search(r"Preferred load address is ([0-9a-fA-F]+)", text).group(1), 16)
    out = {}
    for m in re.finditer(r"^\s+[0-9a-fA-F]{4}:[0-9a-fA-F]{8}\s+(\S+)\s+([0-9a-fA-F]{8,16})\s", text, re.M):
        out[m.group(1)] = int(m.group(2), 16) - base
    return out


def build_one(module: str, arch: str, work: Path, out: Path) -> dict:
    import pefile

    source, functions = MODULES[module]
    triple, machine, ptr = ARCHES[arch]
    stem = module[:-4]
    size = C.module_size(module, ptr)
    want = {f: C.symbol_rva(module, f, size) for f in functions}
    pads = [0x10, 0x10]
    reserve = 0x1000
    order: list[str] | None = None
    for name in (source, "common.h"):  # built where only relative names are recorded in the PDB
        shutil.copyfile(SOURCES / name, work / name)
    for _attempt in range(8):
        obj = f"{stem}-{arch}.obj"
        compile_args = [f"--target={triple}", "-c", "-O2", "-g", "-gcodeview", "-fms-extensions",
                        "-ffunction-sections", "-fno-exceptions", "-fno-rtti", "-fno-stack-protector", "-ffreestanding",
                        "-fno-builtin", "-mno-stack-arg-probe", f"-ffile-compilation-dir={BUILD_DIR}",
                        f"-DRTT_PAD_0={pads[0]}", f"-DRTT_PAD_1={pads[1]}", f"-DRTT_RESERVE={reserve}", source]
        subprocess.run([tool("clang"), *compile_args, "-o", obj], check=True, cwd=work)
        dll, pdb, mapf = work / module, work / f"{stem}.pdb", work / f"{stem}.map"
        cmd = [tool("lld-link"), "/dll", "/noentry", "/nodefaultlib", "/debug", f"/machine:{machine}",
               f"/out:{module}", f"/pdb:{stem}.pdb", f"/pdbaltpath:{stem}.pdb", f"/timestamp:{timestamp(module)}",
               f"/pdbsourcepath:{BUILD_DIR}", "/opt:noref", "/opt:noicf", f"/map:{stem}.map", obj]
        if arch == "x86":
            cmd.append("/safeseh:no")
        if order:
            (work / "order.txt").write_text("\n".join(order) + "\n")
            cmd.append("/order:@order.txt")
        subprocess.run(cmd, check=True, cwd=work, stdout=subprocess.DEVNULL)
        publics = publics_map = read_map(mapf)
        names = {f: next(p for p in publics if mangled_match(f, p)) for f in functions}
        if order is None:
            pad_names = [next(p for p in publics if p.lstrip("_") == n) for n in PADS[module]]
            order = [pad_names[0], names[functions[0]], pad_names[1], names[functions[1]]]
            if arch == "x86":  # lld-link adds the C decoration's underscore to /order names itself
                order = [n[1:] if n.startswith("_") and "@" not in n else n for n in order]
            continue
        got = {f: publics[names[f]] for f in functions}
        pe = pefile.PE(str(dll), fast_load=True)
        image_size = pe.OPTIONAL_HEADER.SizeOfImage
        pe.close()
        if got == want and image_size == size:
            break
        pads[0] += want[functions[0]] - got[functions[0]]
        pads[1] += (want[functions[1]] - got[functions[1]]) - (want[functions[0]] - got[functions[0]])
        reserve += size - image_size
        if min(pads) < 0 or reserve < 16:
            raise SystemExit(f"{module} {arch}: cannot place the functions (pads {pads}, reserve {reserve})")
    else:
        raise SystemExit(f"{module} {arch}: placement did not converge: {got} != {want}, size 0x{image_size:x}")
    dest = out / arch
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(dll, dest / module)
    shutil.copyfile(pdb, dest / f"{stem}.pdb")
    _dump(dest / f"{stem}.pdb")
    # The same code without compiler debug information: the linker's PDB then holds only public
    # symbols (decorated names, no sizes, lines or inlinees), as the PDBs Microsoft's symbol
    # server hands out do.
    publics = work / "publics"
    publics.mkdir(exist_ok=True)
    subprocess.run([tool("clang"), *[a for a in compile_args if a not in ("-g", "-gcodeview")], "-o",
                    f"publics/{obj}"], check=True, cwd=work)
    subprocess.run([a.replace(f"/out:{module}", f"/out:publics/{module}").replace(f"/pdb:{stem}.pdb",
                                                                                   f"/pdb:publics/{stem}.pdb")
                    .replace(f"/map:{stem}.map", f"/map:publics/{stem}.map").replace(obj, f"publics/{obj}")
                    for a in cmd], check=True, cwd=work, stdout=subprocess.DEVNULL)
    if read_map(publics / f"{stem}.map") != publics_map:
        raise SystemExit(f"{module} {arch}: the build without debug information placed functions elsewhere")
    (dest / "publics").mkdir(exist_ok=True)
    shutil.copyfile(publics / f"{stem}.pdb", dest / "publics" / f"{stem}.pdb")
    _dump(dest / "publics" / f"{stem}.pdb")
    info = subprocess.run([tool("llvm-pdbutil"), "dump", "--summary", str(dest / f"{stem}.pdb")], check=True,
                          capture_output=True, text=True).stdout
    guid = re.search(r"GUID:\s*\{?([0-9A-Fa-f-]{36})\}?", info).group(1).lower()
    age = int(re.search(r"Age:\s*(\d+)", info).group(1))
    return {"module": module, "arch": arch, "pdb": f"{arch}/{stem}.pdb", "image": f"{arch}/{module}",
            "pdb_name": f"{stem}.pdb", "guid": str(uuid.UUID(guid)), "age": age,
            "timestamp": timestamp(module), "size_of_image": size,
            "functions": {f: want[f] for f in functions}}


def _dump(pdb: Path) -> None:
    """Save llvm-pdbutil's view of ``pdb`` beside it (``NAME.pdbutil.txt``)."""
    dump = subprocess.run([tool("llvm-pdbutil"), "dump", "--publics", "--symbols", "--section-headers", str(pdb)],
                          check=True, capture_output=True, text=True).stdout
    # the dump names the PDB by the path it was given; keep it independent of where this ran
    dump = dump.replace(str(pdb), pdb.name)
    pdb.with_suffix(".pdbutil.txt").write_text(dump)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "symbols"), help="where the artifacts go")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when the built PDB identities differ from rpctrace.synth.catalog.PDB_IDENTITIES")
    args = ap.parse_args(argv)
    out = Path(args.out)
    built = []
    with tempfile.TemporaryDirectory(prefix="rpctrace-symbols-") as tmp:
        for arch in ARCHES:
            for module in MODULES:
                work = Path(tmp) / arch / module
                work.mkdir(parents=True)
                built.append(build_one(module, arch, work, out))
    version = subprocess.run([tool("clang"), "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    manifest = {"toolchain": version, "built_by": "tools/build_symbol_testdata.py", "modules": built}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    table = {(m["module"], 8 if m["arch"] == "x64" else 4): (m["guid"], m["age"], m["pdb_name"]) for m in built}
    print("PDB_IDENTITIES for rpctrace/synth/catalog.py:")
    for (module, ptr), ident in table.items():
        print(f"    ({module!r}, {ptr}): {ident!r},")
    known = getattr(C, "PDB_IDENTITIES", {})
    stale = {k: v for k, v in table.items() if known.get(k) != v}
    if stale:
        print(f"catalog.PDB_IDENTITIES differs for {sorted(stale)}: paste the table above", file=sys.stderr)
        return 1 if args.check else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
