"""Names as debuggers print them, and the test PE/PDB pairs matching the writer's scenario."""

from __future__ import annotations

import pytest
from symbols_support import MANIFEST, SYMBOLS, built

from rpctrace.symbols import ImageRef, module_name
from rpctrace.symbols.names import display_name, function_name, strip_arguments
from rpctrace.symbols.pe import read_pe
from rpctrace.synth import catalog


@pytest.mark.parametrize("raw,arch,publics,shown", [
    ("?SetRegValue@CSubEndpointDevice@@QEAAJPEBGPEBXK@Z", "x86_64", True, "CSubEndpointDevice::SetRegValue"),
    ("?SetRegValue@CSubEndpointDevice@@QAEJPBGPBXK@Z", "x86", True, "CSubEndpointDevice::SetRegValue"),
    ("_PolicyConfigSetDefaultEndpoint@12", "x86", True, "PolicyConfigSetDefaultEndpoint"),
    ("@FastCall@8", "x86", True, "FastCall"),
    ("_cdecl_function", "x86", True, "cdecl_function"),
    ("_purecall", "x86_64", True, "_purecall"),  # no C decoration on x64
    ("_NotDecorated", "x86", False, "_NotDecorated"),  # a procedure's own name is kept
    ("??0CSub@@QEAA@XZ", "x86_64", True, "CSub::CSub"),
    ("??1CSub@@QEAA@XZ", "x86_64", True, "CSub::~CSub"),
    ("??_GCSub@@UEAAPEAXI@Z", "x86_64", True, "CSub::`scalar deleting destructor'"),
    ("?f@?$Tmpl@H@@SAXH@Z", "x86_64", True, "Tmpl<int>::f"),
    ("?g_count@CSub@@2HA", "x86_64", True, "CSub::g_count"),
    ("PolicyConfigSetDefaultEndpoint(void*, unsigned short const*, int)", "x86_64", False,
     "PolicyConfigSetDefaultEndpoint"),
    ("A::operator()(int) const", "x86_64", False, "A::operator()"),
    ("ns::f<void (int)>(int)", "x86_64", False, "ns::f<void (int)>"),
    ("?bad@@@@", "x86_64", True, "?bad@@@@"),  # not a valid decoration: kept
])
def test_display_names(raw, arch, publics, shown):
    assert display_name(raw, arch, publics) == shown


def test_signature_helpers():
    assert function_name("public: long __cdecl CSub::SetRegValue(wchar_t const *)") == "CSub::SetRegValue"
    assert function_name("class std::basic_string<char> __cdecl make<1>(void)") == "make<1>"
    assert strip_arguments("f(") == "f(" and strip_arguments("(x)") == "(x)"


def test_module_names():
    assert module_name("\\Device\\HarddiskVolume2\\Windows\\System32\\MMDevAPI.dll") == "MMDevAPI"
    assert module_name("\\SystemRoot\\system32\\ntoskrnl.exe") == "nt"  # as debuggers name the kernel
    assert ImageRef("C:/x/mmsys.cpl").module == "mmsys"


def test_catalog_identities_match_the_built_modules():
    """The writer's DbgID_RSDS events name the PDBs in tests/data/symbols, its functions sit where
    the built images have them, and the images carry the writer's timestamp and size."""
    for m in MANIFEST["modules"]:
        ptr = 8 if m["arch"] == "x64" else 4
        assert catalog.pdb_identity(m["module"], ptr) == (m["guid"], m["age"], m["pdb_name"])
        for function, rva in m["functions"].items():
            assert catalog.symbol_rva(m["module"], function, m["size_of_image"]) == rva
        pe = read_pe(SYMBOLS / m["image"])
        assert (pe.timestamp, pe.size_of_image) == (m["timestamp"], catalog.module_size(m["module"], ptr))
        assert pe.pe32plus == (ptr == 8) and pe.arch == ("x86_64" if ptr == 8 else "x86")
        assert (pe.pdb.guid, pe.pdb.age, pe.pdb.pdb_name) == (m["guid"], m["age"], m["pdb_name"])
        assert any(s.executable and s.name == ".text" for s in pe.sections)
    assert len(built()) == 4
    # modules without a built PDB get a stable identity of their own
    assert catalog.pdb_identity("ntoskrnl.exe", 8)[2] == "ntkrnlmp.pdb"
    assert catalog.pdb_identity("ntdll.dll", 8) == catalog.pdb_identity("ntdll.dll", 8)
    assert catalog.pdb_identity("ntdll.dll", 8)[0] != catalog.pdb_identity("ntdll.dll", 4)[0]
