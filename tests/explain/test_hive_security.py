"""Security descriptors from real hives (regipy's MIT test hives in ../shared/samples/hives).

"Every security descriptor" means every distinct sk cell: descriptors are shared between keys,
so the cells are enumerated from the hive bins, from every key's security offset and from the sk
cells' own flink/blink list (Hive.iter_sk_cells), and every one must decode.
"""

from __future__ import annotations

import pytest
from hive_samples import hive_files  # noqa: F401 - the fixture

from rpctrace.security import parse_binary, parse_sddl, to_binary, to_sddl
from rpctrace.knowledge import access
from rpctrace.sources.hive import (
    Hive,
    HiveError,
    iter_security,
    key_security,
    read_sk_cell,
)

# distinct security descriptors (sk cells) per healthy hive, and keys walked
EXPECTED = {
    "NTUSER.DAT": (22, 1812),
    "SAM": (2, 65),
    "SECURITY": (2, 100),
    "SYSTEM": (193, 30756),
    "SYSTEM_WIN_10_1709": (311, 43211),
    "UsrClass.dat": (659, 6205),
}


@pytest.fixture(scope="module")
def hives(hive_files):  # noqa: F811
    return {name: Hive(path) for name, path in hive_files.items()}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_descriptor_decodes(hives, name):
    hive = hives[name]
    cells = list(hive.iter_sk_cells())
    errors = [item for _, item in cells if isinstance(item, HiveError)]
    assert errors == []
    sds = [parse_binary(item) for _, item in cells]
    assert len(sds) == EXPECTED[name][0]
    scanned, damage = hive.scan_sk_offsets()
    assert damage == [] and len(scanned) == EXPECTED[name][0]
    for sd in sds:
        text = to_sddl(sd)
        again = parse_sddl(text)
        assert again.owner == sd.owner and again.group == sd.group and again.dacl == sd.dacl
        assert again.sacl == sd.sacl
        assert parse_binary(to_binary(sd)) == sd
    # every key points at one of those cells and its bytes decode
    keys = 0
    for _path, item in hive.iter_security():
        assert not isinstance(item, HiveError), str(item)
        keys += 1
    assert keys == EXPECTED[name][1]


def test_corrupted_hive_gives_clean_errors_for_bad_cells_only(hives):
    hive = hives["corrupted_system_hive"]
    scanned, damage = hive.scan_sk_offsets()
    assert len(scanned) == 39 and len(damage) == 31  # zeroed regions where hive bins were
    good = bad = 0
    for offset, item in hive.iter_sk_cells():
        if isinstance(item, HiveError):
            bad += 1
            assert offset not in scanned  # only cells that are not valid sk cells fail
            assert item.offset is None or item.offset >= 4096
            assert "security cell" in str(item) or "no security cell" in str(item)
        else:
            parse_binary(item)  # every readable cell decodes
            good += 1
    assert (good, bad) == (49, 39)
    kinds: dict[str, int] = {}
    decoded = 0
    for path, item in hive.iter_security():
        if isinstance(item, HiveError):
            kinds[item.kind] = kinds.get(item.kind, 0) + 1
            assert item.key_path == path and str(item).startswith(str(hive.path))
        else:
            parse_binary(item)
            decoded += 1
    assert kinds == {"security": 111, "subkeys": 28}
    assert decoded == 1816 - 139


def test_cross_check_with_regipy(hives):
    """regipy's own decoding (get_security_key_info) agrees on owner, group, ACE types, SIDs,
    inheritance flags and the mask bits it keeps (standard and generic rights: it drops the
    key-specific ones, which is why rpctrace reads the raw cell)."""
    flag_names = {1: "OBJECT_INHERIT_ACE", 2: "CONTAINER_INHERIT_ACE", 4: "NO_PROPAGATE_INHERIT_ACE", 8: "INHERIT_ONLY_ACE"}
    kept = {**access.STANDARD, **access.GENERIC}
    checked = 0
    for name in ("SYSTEM", "NTUSER.DAT", "SAM", "SECURITY", "UsrClass.dat"):
        hive = hives[name]
        one_key_per_cell = {}
        for path, nk in hive.iter_keys():
            if not isinstance(nk, HiveError):
                one_key_per_cell.setdefault(nk.header.security_key_offset, (path, nk))
        for path, nk in list(one_key_per_cell.values())[:200]:
            ref = nk.get_security_key_info()
            sd = parse_binary(hive._security_of(nk, path))
            assert (ref["owner"], ref["group"]) == (sd.owner, sd.group)
            assert len(ref["dacl"]) == len(sd.dacl.aces)
            for theirs, ours in zip(ref["dacl"], sd.dacl.aces):
                assert theirs["ace_type"] == ours.type_name
                assert theirs["sid"] == ours.sid
                assert {k for k, v in theirs["flags"].items() if v and not k.startswith("_")} == {
                    n for bit, n in flag_names.items() if ours.flags & bit}
                assert {k for k, v in theirs["access_mask"].items() if v and not k.startswith("_")} == {
                    n for n, bit in kept.items() if ours.mask & bit}
            checked += 1
    assert checked == 193 + 22 + 2 + 2 + 200


def test_known_key_descriptor(hives, hive_files):  # noqa: F811
    raw = key_security(hive_files["SYSTEM"], r"HKLM\SYSTEM\CurrentControlSet\Services\Audiosrv")
    sd = parse_binary(raw)
    assert to_sddl(sd) == ("O:BAG:BAD:AI(A;ID;KR;;;BU)(A;CIIOID;GR;;;BU)(A;ID;KA;;;BA)(A;CIIOID;GA;;;BA)"
                           "(A;ID;KA;;;SY)(A;CIIOID;GA;;;SY)(A;CIIOID;GA;;;CO)")
    # regipy keeps only READ_CONTROL of the Users ACE's KEY_READ (0x20019)
    nk = hives["SYSTEM"]._find(r"\ControlSet001\Services\Audiosrv")[0]
    users = nk.get_security_key_info()["dacl"][0]["access_mask"]
    assert {k for k, v in users.items() if v} == {"READ_CONTROL"} and sd.dacl.aces[0].mask == 0x20019


@pytest.mark.parametrize("typed", [
    r"HKLM\SYSTEM\CurrentControlSet\Services\Audiosrv",
    r"HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\AudioSrv",
    r"\REGISTRY\MACHINE\SYSTEM\ControlSet001\Services\audiosrv",
    r"Computer\HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\Audiosrv",
    r"HKLM:\SYSTEM\ControlSet001\Services\Audiosrv",
    r"\ControlSet001\Services\Audiosrv",
    r"ControlSet001\Services\Audiosrv",
])
def test_path_mapping(hives, typed):
    hive = hives["SYSTEM"]
    assert [p.upper() for p in hive.hive_parts(typed)] == ["CONTROLSET001", "SERVICES", "AUDIOSRV"]
    assert hive.key_security(typed) == hive.key_security(r"\ControlSet001\Services\Audiosrv")


def test_path_mapping_other_hives(hives):
    assert hives["NTUSER.DAT"].kind == "ntuser" and hives["UsrClass.dat"].kind == "usrclass"
    assert hives["SAM"].kind == "sam" and hives["SECURITY"].kind == "security"
    assert hives["NTUSER.DAT"].hive_parts(r"HKCU\Software\Microsoft") == ["Software", "Microsoft"]
    assert hives["NTUSER.DAT"].hive_parts(r"HKU\S-1-5-21-1-2-3-1001\Software") == ["Software"]
    assert hives["UsrClass.dat"].hive_parts(r"HKCU\Software\Classes\CLSID") == ["CLSID"]
    assert hives["UsrClass.dat"].hive_parts(r"HKU\S-1-5-21-1-2-3-1001_Classes\CLSID") == ["CLSID"]
    assert hives["UsrClass.dat"].hive_parts(r"HKCR\CLSID") == ["CLSID"]
    assert hives["SYSTEM"].hive_parts(r"HKCC\Software")[:3] == ["ControlSet001", "Hardware Profiles", "Current"]
    assert hives["SAM"].key_security(r"HKLM\SAM\SAM")
    assert hives["SYSTEM"].parent_path(r"HKLM\SYSTEM\Select") == r"HKLM\SYSTEM"
    assert hives["SYSTEM"].parent_path(r"HKLM\SYSTEM") is None
    assert hives["SYSTEM"].parent_path(r"\ControlSet001\Services") == r"\ControlSet001"
    assert hives["SYSTEM"].parent_path("ControlSet001") == "\\"
    assert hives["SYSTEM"].key_security("\\") == hives["SYSTEM"].key_security(r"HKLM\SYSTEM")


@pytest.mark.parametrize("typed,kind,text", [
    (r"HKLM\SOFTWARE\Microsoft", "path", "SOFTWARE hive, but the file is a SYSTEM hive"),
    (r"HKCU\Software", "path", "NTUSER hive"),
    (r"HKLM\SYSTEM\NoSuchKey\X", "path", "key not found"),
    (r"HKLM", "path", "not in a hive file"),
])
def test_path_errors(hives, typed, kind, text):
    with pytest.raises(HiveError) as info:
        hives["SYSTEM"].key_security(typed)
    assert info.value.kind == kind and text in str(info.value)


def test_open_errors(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(HiveError, match="cannot read"):
        Hive(missing)
    junk = tmp_path / "junk"
    junk.write_bytes(b"MZ" + b"\0" * 9000)
    with pytest.raises(HiveError, match="not a registry hive"):
        list(iter_security(junk))
    small = tmp_path / "small"
    small.write_bytes(b"regf")
    with pytest.raises(HiveError, match="too small"):
        Hive(small)


def test_read_sk_cell_bounds():
    cell = bytearray(4096 + 64)
    cell[:4] = b"regf"
    import struct

    struct.pack_into("<i2sHIIII", cell, 4096, -48, b"sk", 0, 0, 0, 1, 20)
    assert len(read_sk_cell(bytes(cell), 0)) == 20
    for offset, message in ((4, "aligned"), (0xFFFFFFFF, "no security cell"), (4096, "past the hive bins")):
        with pytest.raises(ValueError, match=message):
            read_sk_cell(bytes(cell), offset)
    struct.pack_into("<I", cell, 4096 + 20, 400)
    with pytest.raises(ValueError, match="descriptor in a 48-byte cell"):
        read_sk_cell(bytes(cell), 0)
    struct.pack_into("<i", cell, 4096, 48)
    with pytest.raises(ValueError, match="free"):
        read_sk_cell(bytes(cell), 0)
    struct.pack_into("<i2s", cell, 4096, -48, b"nk")
    with pytest.raises(ValueError, match="not a security"):
        read_sk_cell(bytes(cell), 0)
