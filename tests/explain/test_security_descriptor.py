"""Security descriptors: binary and SDDL forms, round trips, bounds, hostile bytes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpctrace.explain import article
from rpctrace.security import (
    SE_DACL_AUTO_INHERITED,
    SE_DACL_PRESENT,
    SE_DACL_PROTECTED,
    SE_SELF_RELATIVE,
    Ace,
    Acl,
    SecurityDescriptor,
    SecurityDescriptorError,
    parse_binary,
    parse_sddl,
    sid_from_bytes,
    sid_to_bytes,
    to_binary,
    to_sddl,
)


# The descriptor of HKLM\SYSTEM\ControlSet001\Services\Audiosrv in the regipy SYSTEM sample, as
# bytes written out by hand from the MS-DTYP layouts (header, DACL, owner, group).
def _sid(*parts: int, authority: int = 5) -> bytes:
    return bytes([1, len(parts)]) + authority.to_bytes(6, "big") + struct.pack(f"<{len(parts)}I", *parts)


def _ace(ace_type: int, flags: int, mask: int, sid: bytes) -> bytes:
    return struct.pack("<BBHI", ace_type, flags, 8 + len(sid), mask) + sid


HAND_ACES = [
    _ace(0, 0x10, 0x20019, _sid(32, 545)),
    _ace(0, 0x1A, 0x80000000, _sid(32, 545)),
    _ace(0, 0x10, 0xF003F, _sid(32, 544)),
    _ace(0, 0x1A, 0x10000000, _sid(32, 544)),
    _ace(0, 0x10, 0xF003F, _sid(18)),
    _ace(0, 0x1A, 0x10000000, _sid(18)),
    _ace(0, 0x1A, 0x10000000, _sid(0, authority=3)),
]


def hand_descriptor() -> bytes:
    dacl_body = b"".join(HAND_ACES)
    dacl = struct.pack("<BBHHH", 2, 0, 8 + len(dacl_body), len(HAND_ACES), 0) + dacl_body
    owner = group = _sid(32, 544)
    o_dacl = 20
    o_owner = o_dacl + len(dacl)
    o_group = o_owner + len(owner)
    control = SE_SELF_RELATIVE | SE_DACL_AUTO_INHERITED | SE_DACL_PRESENT
    return struct.pack("<BBHIIII", 1, 0, control, o_owner, o_group, 0, o_dacl) + dacl + owner + group


HAND_SDDL = "O:BAG:BAD:AI(A;ID;KR;;;BU)(A;CIIOID;GR;;;BU)(A;ID;KA;;;BA)(A;CIIOID;GA;;;BA)(A;ID;KA;;;SY)(A;CIIOID;GA;;;SY)(A;CIIOID;GA;;;CO)"


def test_hand_built_descriptor():
    sd = parse_binary(hand_descriptor())
    assert sd.owner == sd.group == "S-1-5-32-544"
    assert sd.dacl_present and not sd.dacl_protected and sd.dacl_auto_inherited
    assert [(a.type, a.flags, a.mask, a.sid) for a in sd.dacl.aces][:2] == [
        (0, 0x10, 0x20019, "S-1-5-32-545"), (0, 0x1A, 0x80000000, "S-1-5-32-545")]
    assert sd.dacl.aces[0].inherited and sd.dacl.aces[1].inherit_only and sd.dacl.aces[1].container_inherit
    assert to_sddl(sd) == HAND_SDDL
    assert to_binary(sd) == hand_descriptor()
    assert to_binary(parse_sddl(HAND_SDDL)) == hand_descriptor()


@pytest.mark.parametrize("sddl", [
    HAND_SDDL,
    article.AUDIO_RENDER_KEY_SDDL,
    article.AUDIO_RENDER_PARENT_SDDL,
    "O:SYG:SYD:PAI(D;;KW;;;WD)(A;OICI;KA;;;SY)(A;NP;0x1200a9;;;S-1-5-21-1-2-3-1001)",
    "O:BAG:SYD:NO_ACCESS_CONTROL",
    "O:BAG:SYD:P",
    "D:(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;BA)",
    "O:BAD:(OA;CI;RPWP;bf967a0a-0de6-11d0-a285-00aa003049e2;bf967aba-0de6-11d0-a285-00aa003049e2;PS)(OD;;CR;00299570-246d-11d0-a768-00aa006e0529;;WD)",
    "D:(XA;;FX;;;WD;(@User.Title == \"PM\" && (@User.Division == \"Finance\")))",
    "S:(ML;;NW;;;LW)",
    "S:PAI(AU;SAFA;KA;;;WD)",
    "O:S-1-5-80-2676549577-1911656217-2625096541-4178041876-1366760775D:ARAI(A;CIIO;GA;;;CO)",
])
def test_sddl_round_trip(sddl):
    sd = parse_sddl(sddl)
    assert to_sddl(sd) == sddl
    assert parse_sddl(to_sddl(sd)) == sd
    if "XA" not in sddl:  # conditions stay text: no binary form
        again = parse_binary(to_binary(sd))
        assert to_sddl(again) == sddl
        assert again == sd


def test_sddl_details():
    sd = parse_sddl(article.AUDIO_RENDER_KEY_SDDL)
    assert sd.control & SE_DACL_PROTECTED and sd.control & SE_DACL_AUTO_INHERITED
    assert sd.owner == "S-1-5-32-544" and sd.group == "S-1-5-18"
    svc = [a for a in sd.dacl.aces if a.sid == article.AUDIOSRV_SID]
    assert len(svc) == 1 and svc[0].mask == 0x20019 and not svc[0].inherited
    null = parse_sddl("D:NO_ACCESS_CONTROL")
    assert null.dacl_present and null.dacl is None and null.null_dacl
    empty = parse_sddl("D:")
    assert empty.dacl is not None and len(empty.dacl) == 0
    assert parse_sddl("D:(A;;0x20019;;;ls)").dacl.aces[0].sid == "S-1-5-19"
    assert parse_sddl("D:(A;;131097;;;S-1-5-19)").dacl.aces[0].mask == 0x20019
    assert parse_sddl(" O:BA  D:P (A;;KR;;;BU) ").dacl.aces[0].mask == 0x20019


def test_rights_rendering_follows_windows():
    def rights(mask):
        return to_sddl(SecurityDescriptor(dacl=Acl([Ace(0, 0, mask, "S-1-1-0")])))[3:].split(";")[2]
    assert rights(0xF003F) == "KA"
    assert rights(0x20019) == "KR"
    assert rights(0x20006) == "KW"
    assert rights(0x1F01FF) == "FA"
    assert rights(0x10000000) == "GA"
    assert rights(0x30006) == "DCLCSDRC"  # no composite: the single-bit aliases
    assert rights(0x1301BF) == "0x1301bf"  # SYNCHRONIZE has no alias: hex
    assert rights(0x20106) == "DCLCCRRC"


@pytest.mark.parametrize("bad,where", [
    ("", 0), ("X:BA", 0), ("O:XX", 2), ("O:DA", 2), ("D:(A;;KR;;;BU", 2), ("D:(Q;;KR;;;BU)", 3),
    ("D:(A;ZZ;KR;;;BU)", 5), ("D:(A;;QQ;;;BU)", 6), ("D:(A;;KR;;;)", 11), ("D:(A;;KR;;)", 2),
    ("D:(A;;KR;not-a-guid;;BU)", 9), ("D:(OA;;KR;not-a-guid;;BU)", 10), ("D:(A;;KR;;;BU;(cond))", 2), ("O:BAO:BA", 4),
    ("D:NO_ACCESS_CONTROL(A;;KR;;;BU)", None), ("D:(A;;0x1FFFFFFFF;;;BU)", 6), ("D:(A;;KR;;;S-1-5-4294967296)", 11),
])
def test_sddl_errors(bad, where):
    with pytest.raises(SecurityDescriptorError) as info:
        parse_sddl(bad)
    assert "SDDL" in str(info.value)
    if where is not None:
        assert info.value.offset == where, str(info.value)
    assert info.value.unit == "character"


def test_binary_errors_name_the_offset():
    good = hand_descriptor()
    cases = {
        b"": 0,
        good[:19]: 0,
        b"\x02" + good[1:]: 0,  # revision
        good[:2] + struct.pack("<H", SE_DACL_PRESENT) + good[4:]: 2,  # not self-relative
        good[:4] + struct.pack("<I", 5000) + good[8:]: 4,  # owner offset outside
        good[:16] + struct.pack("<I", 3) + good[20:]: 16,  # DACL offset inside the header
        good[:20] + b"\x09" + good[21:]: 20,  # ACL revision
        good[:22] + struct.pack("<H", 4000) + good[24:]: 22,  # ACL size past the end
        good[:24] + struct.pack("<H", 400) + good[26:]: 24,  # ACE count cannot fit
        good[:30] + struct.pack("<H", 4) + good[32:]: 30,  # ACE size below 8
        good[:30] + struct.pack("<H", 600) + good[32:]: 30,  # ACE past the ACL
        good[:37] + b"\x10" + good[38:]: 37,  # SID with 16 sub-authorities
        good[:36] + b"\x07" + good[37:]: 36,  # SID revision
    }
    for data, offset in cases.items():
        with pytest.raises(SecurityDescriptorError) as info:
            parse_binary(data)
        assert info.value.offset == offset, (data[:40].hex(), str(info.value))
        assert "security descriptor" in str(info.value)


def test_object_and_callback_aces_keep_their_type():
    sd = parse_sddl("O:BAD:(OA;CI;RPWP;bf967a0a-0de6-11d0-a285-00aa003049e2;;PS)(A;;KR;;;BU)")
    data = bytearray(to_binary(sd))
    parsed = parse_binary(bytes(data))
    oa = parsed.dacl.aces[0]
    assert oa.type_name == "ACCESS_ALLOWED_OBJECT" and oa.object_type == "bf967a0a-0de6-11d0-a285-00aa003049e2"
    assert oa.object_flags == 1 and oa.inherited_object_type is None and oa.sid == "S-1-5-10"
    assert parsed.dacl.revision == 4
    # a callback ACE from binary keeps its application data and type
    sid = sid_to_bytes("S-1-1-0")
    cond = b"artx\x00\x00\x00\x00"
    ace = struct.pack("<BBHI", 9, 0, 8 + len(sid) + len(cond), 0x20019) + sid + cond
    acl = struct.pack("<BBHHH", 2, 0, 8 + len(ace), 1, 0) + ace
    blob = struct.pack("<BBHIIII", 1, 0, SE_SELF_RELATIVE | SE_DACL_PRESENT, 0, 0, 0, 20) + acl
    cb = parse_binary(blob).dacl.aces[0]
    assert cb.type_name == "ACCESS_ALLOWED_CALLBACK" and cb.application_data == cond and cb.is_callback
    with pytest.raises(SecurityDescriptorError):
        to_sddl(parse_binary(blob))  # binary conditions are not rendered
    assert to_binary(parse_binary(blob)) == blob
    # an unknown ACE type is kept raw
    raw = struct.pack("<BBHI", 0x42, 0, 12, 7) + b"\x01\x02\x03\x04"
    acl = struct.pack("<BBHHH", 2, 0, 8 + len(raw), 1, 0) + raw
    blob = struct.pack("<BBHIIII", 1, 0, SE_SELF_RELATIVE | SE_DACL_PRESENT, 0, 0, 0, 20) + acl
    unknown = parse_binary(blob).dacl.aces[0]
    assert unknown.type == 0x42 and unknown.sid is None and unknown.raw == struct.pack("<I", 7) + b"\x01\x02\x03\x04"


def test_sid_bytes():
    for sid in ("S-1-1-0", "S-1-5-21-1-2-3-4294967295", "S-1-0x123456789ABC-7", "S-1-5"):
        assert sid_from_bytes(sid_to_bytes(sid), 0)[0] == sid
    with pytest.raises(SecurityDescriptorError):
        sid_from_bytes(sid_to_bytes("S-1-5-18")[:-1], 0)


# --- hostile bytes ---------------------------------------------------------------------------

SEEDS = [hand_descriptor(), to_binary(parse_sddl(article.AUDIO_RENDER_KEY_SDDL)),
         to_binary(parse_sddl("O:BAD:(OA;CI;RPWP;bf967a0a-0de6-11d0-a285-00aa003049e2;bf967aba-0de6-11d0-a285-00aa003049e2;PS)S:(AU;SA;KA;;;WD)"))]


def _try(data: bytes) -> None:
    try:
        sd = parse_binary(data)
    except SecurityDescriptorError as exc:
        assert exc.offset is None or 0 <= exc.offset <= len(data)
        assert "unreadable" not in exc.message  # the defensive catch-all must never be needed
        return
    try:
        to_sddl(sd)
    except SecurityDescriptorError:
        pass
    to_binary(sd)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_security_descriptor_error(data):
    _try(data)
    _try(struct.pack("<BBH", 1, 0, SE_SELF_RELATIVE | SE_DACL_PRESENT | 0x10) + data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=8),
       st.integers(0, 400))
def test_mutated_descriptors_only_raise_security_descriptor_error(seed, edits, cut):
    data = bytearray(seed)
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    _try(bytes(data[:cut] if cut < len(data) else data))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="OGDS:()PAI;AKRWXUCNOLIDBYSQ0123456789x-_ \"@", max_size=80))
def test_random_sddl_only_raises_security_descriptor_error(text):
    try:
        sd = parse_sddl(text)
    except SecurityDescriptorError:
        return
    assert parse_sddl(to_sddl(sd)) == sd
