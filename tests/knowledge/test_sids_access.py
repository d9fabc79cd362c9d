"""SID and access-mask tables against published values.

Service SID vectors: ../shared/reference/etw-and-alpc-facts.md §6 (each seen in a public source;
Audiosrv and AudioEndpointBuilder computed only).  Well-known SIDs: Microsoft's "Well-known SIDs"
and "SID Strings" pages.  Masks: winnt.h (§7 of the reference).
"""

from __future__ import annotations

import pytest

from rpctrace.knowledge import access, sids

SERVICE_SIDS = {
    "TrustedInstaller": "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464",
    "WinDefend": "S-1-5-80-1913148863-3492339771-4165695881-2087618961-4109116736",
    "MSSQLSERVER": "S-1-5-80-3880718306-3832830129-1677859214-2598158968-1052248003",
    "EventLog": "S-1-5-80-880578595-1860270145-482643319-2788375705-1540778122",
    "SQLSERVERAGENT": "S-1-5-80-344959196-2060754871-2302487193-2804545603-1466107430",
    "WdiServiceHost": "S-1-5-80-3139157870-2983391045-3678747466-658725712-1809340420",
    # computed only (the reference says so)
    "Audiosrv": "S-1-5-80-2676549577-1911656217-2625096541-4178041876-1366760775",
    "AudioEndpointBuilder": "S-1-5-80-1580948945-3239616721-2529237571-3761093093-1214243633",
}


@pytest.mark.parametrize("name,sid", sorted(SERVICE_SIDS.items()))
def test_service_sid_vectors(name, sid):
    assert sids.service_sid(name) == sid
    # case does not matter (the name is upper-cased first), nor the NT SERVICE\ prefix
    assert sids.service_sid(name.lower()) == sid
    assert sids.service_sid("NT SERVICE\\" + name) == sid
    assert sids.resolve(f"NT SERVICE\\{name}") == (sid, f"NT SERVICE\\{name}")
    assert sids.resolve(name, service=True)[0] == sid
    assert sids.name_of(sid) == f"NT SERVICE\\{name}"


WELL_KNOWN = [
    ("S-1-1-0", "Everyone", "WD"),
    ("S-1-5-11", "NT AUTHORITY\\Authenticated Users", "AU"),
    ("S-1-5-18", "NT AUTHORITY\\SYSTEM", "SY"),
    ("S-1-5-19", "NT AUTHORITY\\LOCAL SERVICE", "LS"),
    ("S-1-5-20", "NT AUTHORITY\\NETWORK SERVICE", "NS"),
    ("S-1-5-32-544", "BUILTIN\\Administrators", "BA"),
    ("S-1-5-32-545", "BUILTIN\\Users", "BU"),
    ("S-1-5-4", "NT AUTHORITY\\INTERACTIVE", "IU"),
    ("S-1-5-6", "NT AUTHORITY\\SERVICE", "SU"),
    ("S-1-3-0", "CREATOR OWNER", "CO"),
    ("S-1-15-2-1", "APPLICATION PACKAGE AUTHORITY\\ALL APPLICATION PACKAGES", "AC"),
    ("S-1-15-2-2", "APPLICATION PACKAGE AUTHORITY\\ALL RESTRICTED APPLICATION PACKAGES", None),
    ("S-1-5-80-0", "NT SERVICE\\ALL SERVICES", None),
    ("S-1-5-12", "NT AUTHORITY\\RESTRICTED", "RC"),
    ("S-1-3-4", "OWNER RIGHTS", "OW"),
    ("S-1-16-12288", "Mandatory Label\\High Mandatory Level", "HI"),
]


@pytest.mark.parametrize("sid,name,alias", WELL_KNOWN)
def test_well_known(sid, name, alias):
    assert sids.name_of(sid) == name
    assert sids.resolve(sid) == (sid, name)
    assert sids.resolve(name) == (sid, name)
    assert sids.alias_of(sid) == alias
    if alias:
        assert sids.SDDL_ALIASES[alias] == sid
        assert sids.resolve(alias) == (sid, name)


@pytest.mark.parametrize("text,sid", [
    ("LOCAL SERVICE", "S-1-5-19"), ("LocalService", "S-1-5-19"), ("NT AUTHORITY\\LocalService", "S-1-5-19"),
    ("local service", "S-1-5-19"), ("SYSTEM", "S-1-5-18"), ("LocalSystem", "S-1-5-18"),
    ("Authenticated Users", "S-1-5-11"), ("Administrators", "S-1-5-32-544"), ("Users", "S-1-5-32-545"),
    ("TrustedInstaller", SERVICE_SIDS["TrustedInstaller"]), ("NT SERVICE\\ALL SERVICES", "S-1-5-80-0"),
    ("s-1-5-19", "S-1-5-19"), ("S-1-0x5-19", "S-1-5-19"), (" S-1-5-32-544 ", "S-1-5-32-544"),
])
def test_resolve_spellings(text, sid):
    assert sids.resolve(text)[0] == sid


@pytest.mark.parametrize("bad", ["", "Nobody", "S-1-5-99999999999", "S-2-5-18", "DA", "S-1-5-" + "-1" * 16])
def test_resolve_rejects(bad):
    with pytest.raises(ValueError):
        sids.resolve(bad)


def test_audiosrv_needs_the_service_hint():
    with pytest.raises(ValueError):
        sids.resolve("Audiosrv")
    assert sids.resolve("Audiosrv", service=True)[0] == SERVICE_SIDS["Audiosrv"]


def test_principals_for_service_local_service():
    got = sids.principals_for_service("Audiosrv", "LOCAL SERVICE")
    assert got[0] == SERVICE_SIDS["Audiosrv"]
    assert got[1] == "S-1-5-19"
    for sid in ("S-1-1-0", "S-1-5-11", "S-1-5-6", "S-1-5-32-545", "S-1-5-80-0"):
        assert sid in got
    assert "S-1-5-32-544" not in got  # a LOCAL SERVICE token is not an administrator's
    assert "S-1-15-2-1" not in got  # nor an AppContainer's
    assert len(got) == len(set(got))
    notes = {sid: certain for sid, _, certain in sids.principal_notes("Audiosrv", "S-1-5-19")}
    assert notes[SERVICE_SIDS["Audiosrv"]] and notes["S-1-5-19"] and notes["S-1-1-0"]
    assert notes["S-1-5-80-0"] is False  # marked as an inference


def test_principals_for_service_system_and_unknown():
    system = sids.principals_for_service("WinDefend", "S-1-5-18", also_services=["EventLog"])
    assert system[:2] == [SERVICE_SIDS["WinDefend"], SERVICE_SIDS["EventLog"]]
    assert "S-1-5-18" in system and "S-1-5-32-544" in system and "S-1-5-6" not in system
    unknown = sids.principals_for_service("Audiosrv", None)
    assert unknown[0] == SERVICE_SIDS["Audiosrv"] and "S-1-5-19" not in unknown and "S-1-1-0" in unknown


def test_sid_normalisation():
    assert sids.normalize_sid("S-1-0x5-18") == "S-1-5-18"
    assert sids.normalize_sid("S-1-0x123456789ABC-1") == "S-1-0x123456789ABC-1"
    assert sids.is_sid("S-1-5-21-1-2-3-500") and not sids.is_sid("S-1-5-4294967296")
    assert sids.name_of("S-1-5-21-1-2-3-500") is None and sids.name_of("garbage") is None


# --- access masks (winnt.h) --------------------------------------------------------------------

def test_registry_constants():
    assert access.KEY_READ == 0x20019
    assert access.KEY_EXECUTE == 0x20019
    assert access.KEY_WRITE == 0x20006
    assert access.KEY_ALL_ACCESS == 0xF003F
    assert access.KEY_WOW64_64KEY == 0x100 and access.KEY_WOW64_32KEY == 0x200
    assert access.RIGHTS["key"] == {
        "KEY_QUERY_VALUE": 1, "KEY_SET_VALUE": 2, "KEY_CREATE_SUB_KEY": 4, "KEY_ENUMERATE_SUB_KEYS": 8,
        "KEY_NOTIFY": 0x10, "KEY_CREATE_LINK": 0x20, "KEY_WOW64_64KEY": 0x100, "KEY_WOW64_32KEY": 0x200,
    }
    assert (access.DELETE, access.READ_CONTROL, access.WRITE_DAC, access.WRITE_OWNER, access.SYNCHRONIZE) == (
        0x10000, 0x20000, 0x40000, 0x80000, 0x100000)
    assert access.STANDARD_RIGHTS_ALL == 0x1F0000 and access.STANDARD_RIGHTS_REQUIRED == 0xF0000
    assert (access.GENERIC_ALL, access.GENERIC_EXECUTE, access.GENERIC_WRITE, access.GENERIC_READ) == (
        0x10000000, 0x20000000, 0x40000000, 0x80000000)
    assert access.MAXIMUM_ALLOWED == 0x2000000 and access.ACCESS_SYSTEM_SECURITY == 0x1000000
    assert access.PORT_CONNECT == 1 and access.PORT_ALL_ACCESS == 0x1F0001
    assert access.FILE_ALL_ACCESS == 0x1F01FF
    assert access.FILE_GENERIC_READ == 0x120089
    assert access.FILE_GENERIC_WRITE == 0x120116
    assert access.FILE_GENERIC_EXECUTE == 0x1200A0
    assert access.PROCESS_ALL_ACCESS == 0x1FFFFF


@pytest.mark.parametrize("mask,names", [
    (0x20106, ["KEY_WRITE", "KEY_WOW64_64KEY"]),
    (0x20019, ["KEY_READ"]),
    (0x20006, ["KEY_WRITE"]),
    (0xF003F, ["KEY_ALL_ACCESS"]),
    (0x2001F, ["KEY_READ", "KEY_WRITE"]),
    (0x0001, ["KEY_QUERY_VALUE"]),
    (0x30006, ["KEY_WRITE", "DELETE"]),
    (0x80000000, ["GENERIC_READ"]),
    (0x2000000, ["MAXIMUM_ALLOWED"]),
    (0x20219, ["KEY_READ", "KEY_WOW64_32KEY"]),
    (0x400000, ["0x400000"]),
    (0, []),
])
def test_decode_key(mask, names):
    assert access.decode(mask, "key") == names
    assert access.format(mask, "key") == (" | ".join(names) or "0")


def test_decode_other_types():
    assert access.decode(0x1F01FF, "file") == ["FILE_ALL_ACCESS"]
    assert access.decode(0x120089, "file") == ["FILE_GENERIC_READ"]
    assert access.decode(0x1FFFFF, "process") == ["PROCESS_ALL_ACCESS"]
    assert access.decode(0x1410, "process") == ["PROCESS_VM_READ", "PROCESS_QUERY_INFORMATION",
                                                "PROCESS_QUERY_LIMITED_INFORMATION"]
    assert access.decode(0x1F0001, "alpc") == ["PORT_ALL_ACCESS"]
    assert access.decode(0x1, "alpc port") == ["PORT_CONNECT"]
    assert access.decode(0x30000, "generic") == ["DELETE", "READ_CONTROL"]
    assert access.format(None) == "?"
    with pytest.raises(ValueError):
        access.decode(1, "mutex")


@pytest.mark.parametrize("text,mask", [
    ("0x20106", 0x20106), ("131334", 0x20106), ("KEY_WRITE|KEY_WOW64_64KEY", 0x20106),
    ("KEY_WRITE,KEY_WOW64_64KEY", 0x20106), ("key_write | key_wow64_64key", 0x20106),
    ("read", 0x20019), ("write", 0x20006), ("all", 0xF003F), ("SET_VALUE", 0x2), ("KR", 0x20019),
    ("WriteKey", 0x20006), ("FullControl", 0xF003F), ("GENERIC_READ", 0x80000000), ("MAXIMUM_ALLOWED", 0x2000000),
    (0x20019, 0x20019),
])
def test_parse_key(text, mask):
    assert access.parse(text, "key") == mask


def test_parse_other_types_and_errors():
    assert access.parse("read", "file") == 0x120089
    assert access.parse("FILE_LIST_DIRECTORY|FILE_TRAVERSE", "file") == 0x21
    assert access.parse("PORT_CONNECT", "alpc") == 1
    for bad in ("", "KEY_FLY", "0x1FFFFFFFF", "0xZZ"):
        with pytest.raises(ValueError):
            access.parse(bad, "key")
    with pytest.raises(ValueError):
        access.parse(-1)


def test_generic_mapping():
    assert access.GENERIC_MAPPING["key"] == (0x20019, 0x20006, 0x20019, 0xF003F)
    assert access.map_generic(access.GENERIC_READ, "key") == access.KEY_READ
    assert access.map_generic(access.GENERIC_WRITE, "key") == access.KEY_WRITE
    assert access.map_generic(access.GENERIC_EXECUTE, "key") == access.KEY_EXECUTE
    assert access.map_generic(access.GENERIC_ALL | access.DELETE, "key") == access.KEY_ALL_ACCESS
    assert access.map_generic(access.GENERIC_ALL, "file") == access.FILE_ALL_ACCESS
    assert access.map_generic(access.GENERIC_READ, "generic") == access.GENERIC_READ
