"""The DACL walk and the fixes, on the article's key/parent pair and on small hand-made DACLs."""

from __future__ import annotations

import pytest

from rpctrace.explain import article
from rpctrace.security.check import evaluate
from rpctrace.security.fixes import powershell_path, ps_quote, suggest_fix
from rpctrace.security.inherit import enable_inheritance, inherited_aces
from rpctrace.security import parse_sddl, to_sddl
from rpctrace.knowledge import access, sids

AUDIOSRV = article.AUDIOSRV_SID
KEY = parse_sddl(article.AUDIO_RENDER_KEY_SDDL)
PARENT = parse_sddl(article.AUDIO_RENDER_PARENT_SDDL)


def test_article_key_denies_audiosrv_write():
    principals = article.audiosrv_principals()
    assert principals[:2] == [AUDIOSRV, "S-1-5-19"]
    v = evaluate(KEY, principals, 0x20106)
    assert not v.allowed
    assert v.requested == access.KEY_WRITE  # KEY_WOW64_64KEY is not checked
    assert v.missing == access.KEY_SET_VALUE | access.KEY_CREATE_SUB_KEY
    assert v.missing_names == ["KEY_SET_VALUE", "KEY_CREATE_SUB_KEY"]
    assert v.granted == access.READ_CONTROL
    assert v.dacl_protected and v.denied_by is None
    [deciding] = v.deciding
    assert deciding.sid == AUDIOSRV and deciding.name == "NT SERVICE\\Audiosrv"
    assert deciding.mask == access.KEY_READ and deciding.mask_names == ["KEY_READ"]
    assert deciding.type == "allow" and not deciding.inherited and deciding.index == 3
    assert v.verdict.startswith("DENIED") and "protected" in v.verdict and "KEY_READ" in v.verdict
    assert "KEY_WOW64_64KEY" in " ".join(v.notes)
    d = v.to_dict()
    assert d["allowed"] is False and d["deciding"] == [3] and d["missing_names"] == ["KEY_SET_VALUE", "KEY_CREATE_SUB_KEY"]
    # AudioEndpointBuilder is in the same position
    aeb = evaluate(KEY, sids.principals_for_service("AudioEndpointBuilder", "LOCAL SYSTEM"), 0x20106)
    assert aeb.allowed  # ... unless it runs as SYSTEM, which has full control
    aeb = evaluate(KEY, [article.AUDIO_ENDPOINT_BUILDER_SID, "S-1-5-19"], 0x20106)
    assert not aeb.allowed and aeb.deciding[0].sid == article.AUDIO_ENDPOINT_BUILDER_SID
    # reading works
    assert evaluate(KEY, article.audiosrv_principals(), access.KEY_READ).allowed


def test_article_fix_is_re_enabling_inheritance():
    principals = article.audiosrv_principals()
    fix = suggest_fix(KEY, PARENT, principals, article.AUDIO_DESIRED_ACCESS, article.AUDIO_RENDER_KEY_PATH)
    assert fix is not None and fix.kind == "enable-inheritance"
    assert "inheritance" in fix.text and "protected" in fix.text
    assert fix.sddl_before == article.AUDIO_RENDER_KEY_SDDL
    assert fix.sddl_after.startswith("O:BAG:SYD:AI(")  # P gone
    assert f"(A;CIID;KA;;;{AUDIOSRV})" in fix.sddl_after
    assert "$acl.SetAccessRuleProtection($false, $true)" in fix.powershell
    assert ("$path = 'HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\MMDevices\\Audio\\Render\\"
            "{34bb9f66-ad6b-4d17-b74b-7aace4320530}'") in fix.powershell
    assert "Get-Acl -LiteralPath $path" in fix.powershell and "Set-Acl -LiteralPath $path -AclObject $acl" in fix.powershell
    # evaluating the fixed descriptor grants the request, through the inherited full-control ACE
    after = parse_sddl(fix.sddl_after)
    v = evaluate(after, principals, 0x20106)
    assert v.allowed and not after.dacl_protected
    assert any(a.inherited and a.sid == AUDIOSRV and a.mask == access.KEY_ALL_ACCESS for a in v.deciding)
    assert fix.effective.allowed
    # the article also removed the explicit entries: inherited ACEs alone grant it
    only_inherited = parse_sddl("O:BAG:SYD:AI" + "".join(
        s for s in fix.sddl_after.split("AI", 1)[1].replace(")(", ")\n(").splitlines() if ";CIID;" in s))
    assert evaluate(only_inherited, principals, 0x20106).allowed
    assert fix.to_dict()["kind"] == "enable-inheritance"


def test_fix_without_parent_adds_the_exact_ace():
    fix = suggest_fix(KEY, None, article.audiosrv_principals(), 0x20106, article.AUDIO_RENDER_KEY_PATH)
    assert fix.kind == "add-ace"
    # the least change: exactly the missing rights (KEY_SET_VALUE | KEY_CREATE_SUB_KEY; the service
    # holds READ_CONTROL already), to the service SID, for this key only (no inheritance)
    assert fix.ace.mask == access.KEY_SET_VALUE | access.KEY_CREATE_SUB_KEY and fix.ace.flags == 0
    assert to_sddl_ace(fix) == f"(A;;DCLC;;;{AUDIOSRV})"
    assert f"(A;;DCLC;;;{AUDIOSRV})" in fix.sddl_after and fix.sddl_after.startswith("O:BAG:SYD:PAI")
    assert evaluate(parse_sddl(fix.sddl_after), article.audiosrv_principals(), 0x20106).allowed
    assert not fix.dangerous and fix.to_dict()["dangerous"] is False and fix.to_dict()["danger"] is None
    assert "New-Object System.Security.AccessControl.RegistryAccessRule(" in fix.powershell
    assert "SecurityIdentifier('" + AUDIOSRV + "')" in fix.powershell
    assert "[System.Security.AccessControl.RegistryRights]6" in fix.powershell
    assert "[System.Security.AccessControl.InheritanceFlags]'None'" in fix.powershell
    assert "$acl.AddAccessRule($rule)" in fix.powershell


def to_sddl_ace(fix):
    return fix.to_dict()["ace"]


def test_parent_that_does_not_grant_gives_an_ace_fix():
    parent = parse_sddl("O:BAG:SYD:(A;CI;KA;;;SY)(A;CI;KR;;;BU)")
    fix = suggest_fix(KEY, parent, article.audiosrv_principals(), 0x20106, article.AUDIO_RENDER_KEY_PATH)
    assert fix.kind == "add-ace"


def test_no_fix_when_granted_or_impossible():
    assert suggest_fix(KEY, PARENT, article.audiosrv_principals(), access.KEY_READ, article.AUDIO_RENDER_KEY_PATH) is None
    assert suggest_fix(KEY, PARENT, ["SY"], access.ACCESS_SYSTEM_SECURITY) is None


def test_deny_ace_takes_precedence():
    sd = parse_sddl("O:BAG:SYD:(D;;KW;;;S-1-5-19)(A;;KA;;;S-1-5-19)")
    v = evaluate(sd, ["LS"], access.KEY_WRITE)
    assert not v.allowed and v.denied_by is not None and v.denied_by.index == 0
    assert v.denied_by.type == "deny" and v.denied_by.denied == access.KEY_WRITE
    assert v.deciding == [v.denied_by] and "DENIED by ACE #0" in v.verdict
    # an allow before the deny wins: rights granted first are not taken away
    sd2 = parse_sddl("O:BAG:SYD:(A;;KA;;;S-1-5-19)(D;;KW;;;S-1-5-19)")
    assert evaluate(sd2, ["LS"], access.KEY_WRITE).allowed
    # a deny for rights not requested does not matter
    assert evaluate(sd, ["LS"], access.KEY_READ & ~access.READ_CONTROL | access.KEY_QUERY_VALUE).allowed
    # the fix removes the explicit deny
    fix = suggest_fix(sd, None, ["LS"], access.KEY_WRITE, r"HKLM\SOFTWARE\Contoso")
    assert fix.kind == "remove-deny" and fix.removed[0].is_deny
    assert "RemoveAccessRuleSpecific" in fix.powershell and "'Deny'" in fix.powershell
    assert evaluate(fix.sd_after, ["LS"], access.KEY_WRITE).allowed


def test_inherited_deny_is_overridden_by_an_explicit_allow():
    sd = parse_sddl("O:BAG:SYD:AI(D;ID;KW;;;S-1-5-19)(A;ID;KR;;;S-1-5-19)")
    fix = suggest_fix(sd, None, ["LS"], access.KEY_WRITE, r"HKLM\SOFTWARE\Contoso")
    assert fix.kind == "add-ace" and fix.sddl_after.index("(A;;KW;;;LS)") < fix.sddl_after.index("(D;ID")


def test_inherit_only_aces_are_skipped():
    sd = parse_sddl("O:SYG:SYD:(A;CIIO;KA;;;BU)(A;;KR;;;BU)")
    v = evaluate(sd, ["BU"], access.KEY_WRITE)
    assert not v.allowed and [a.index for a in v.aces] == [1]
    assert "inherit-only" in " ".join(v.notes)


def test_generic_rights_are_mapped():
    sd = parse_sddl("O:SYG:SYD:(A;;GA;;;BA)(A;;GR;;;BU)")
    assert evaluate(sd, ["BA"], access.KEY_ALL_ACCESS).allowed
    assert evaluate(sd, ["BU"], access.KEY_READ).allowed
    assert not evaluate(sd, ["BU"], access.KEY_SET_VALUE).allowed
    assert evaluate(sd, ["BU"], access.GENERIC_READ).allowed  # the request is mapped too
    assert not evaluate(sd, ["BU"], access.GENERIC_WRITE).allowed


def test_null_empty_dacl_and_owner_rights():
    assert evaluate(parse_sddl("O:BAD:NO_ACCESS_CONTROL"), ["WD"], access.KEY_ALL_ACCESS).allowed
    assert evaluate(parse_sddl("O:BA"), ["WD"], access.KEY_ALL_ACCESS).dacl_state == "absent"
    empty = evaluate(parse_sddl("O:BAD:"), ["WD"], access.KEY_READ)
    assert not empty.allowed and empty.dacl_state == "empty" and "empty" in empty.verdict
    owner = evaluate(parse_sddl("O:BAD:"), ["BA"], access.READ_CONTROL | access.WRITE_DAC)
    assert owner.allowed and owner.owner_granted == access.READ_CONTROL | access.WRITE_DAC
    assert not evaluate(parse_sddl("O:BAD:"), ["BA"], access.READ_CONTROL | access.WRITE_DAC, owner_rights=False).allowed
    # an OWNER RIGHTS ACE replaces the implicit owner rights
    ow = parse_sddl("O:BAD:(A;;RC;;;OW)")
    assert evaluate(ow, ["BA"], access.READ_CONTROL).allowed
    assert not evaluate(ow, ["BA"], access.WRITE_DAC).allowed
    # an empty DACL fix adds the ACE
    fix = suggest_fix(parse_sddl("O:BAD:"), None, ["LS"], access.KEY_READ, r"HKLM\SOFTWARE\X")
    assert fix.kind == "add-ace" and fix.sddl_after == "O:BAD:(A;;KR;;;LS)"


def test_maximum_allowed():
    v = evaluate(KEY, article.audiosrv_principals(), access.MAXIMUM_ALLOWED)
    assert v.allowed and v.granted == access.KEY_READ and v.maximum_allowed
    sd = parse_sddl("O:SYG:SYD:(D;;KW;;;BU)(A;;KA;;;BU)")
    v = evaluate(sd, ["BU"], access.MAXIMUM_ALLOWED)
    assert v.granted == access.KEY_ALL_ACCESS & ~access.KEY_WRITE  # KW includes READ_CONTROL
    assert evaluate(sd, ["BU"], access.MAXIMUM_ALLOWED | access.KEY_QUERY_VALUE).allowed
    v = evaluate(sd, ["BU"], access.MAXIMUM_ALLOWED | access.KEY_SET_VALUE)
    assert not v.allowed and v.denied_by.index == 0
    assert not evaluate(sd, ["WD"], access.MAXIMUM_ALLOWED).allowed


def test_callback_and_object_aces():
    sd = parse_sddl('O:SYG:SYD:(XA;;KA;;;BU;(@User.x == 1))(A;;KR;;;BU)')
    v = evaluate(sd, ["BU"], access.KEY_WRITE)
    assert not v.allowed and "conditional" in " ".join(v.notes)
    sd = parse_sddl("O:SYG:SYD:(XD;;KW;;;BU;(@User.x == 1))(A;;KA;;;BU)")
    assert evaluate(sd, ["BU"], access.KEY_WRITE).denied_by.index == 0
    sd = parse_sddl("O:SYG:SYD:(OA;;KA;bf967a0a-0de6-11d0-a285-00aa003049e2;;BU)")
    assert not evaluate(sd, ["BU"], access.KEY_READ).allowed


def test_inheritance_rules():
    parent = parse_sddl("O:BAG:SYD:(A;CI;KA;;;SY)(A;CIIO;GA;;;CO)(A;OI;KR;;;BU)(A;CINP;KR;;;AU)(A;;KA;;;BA)(A;CI;GR;;;WD)")
    got = inherited_aces(parent, owner="S-1-5-21-1-2-3-1001", group="S-1-5-18")
    sd = parse_sddl("O:S-1-5-21-1-2-3-1001G:SYD:")
    rendered = to_sddl(enable_inheritance(sd, parent))
    assert rendered == (
        "O:S-1-5-21-1-2-3-1001G:SYD:AI"
        "(A;CIID;KA;;;SY)"  # CI: inherited, still inheritable
        "(A;ID;KA;;;S-1-5-21-1-2-3-1001)(A;CIIOID;GA;;;CO)"  # CREATOR OWNER: effective copy + inherit-only
        "(A;OIIOID;KR;;;BU)"  # OI only: passes through a container as inherit-only
        "(A;ID;KR;;;AU)"  # NP: effective, no longer inheritable
        "(A;ID;KR;;;WD)(A;CIIOID;GR;;;WD)"  # generic rights: mapped effective copy + inherit-only
    )
    assert len(got) == 7


def test_powershell_quoting_and_paths():
    assert ps_quote("plain") == "'plain'"
    assert ps_quote("it's") == "'it''s'"
    assert ps_quote("a\u2019b") == "'a\u2019\u2019b'"
    assert ps_quote("$(calc)`n") == "'$(calc)`n'"  # single quotes: nothing expands
    assert ps_quote("a\nb") == "('a' + [char]0x000a + 'b')"
    assert ps_quote("") == "''"
    assert powershell_path(r"HKLM\SOFTWARE\X") == r"HKLM:\SOFTWARE\X"
    assert powershell_path(r"HKEY_LOCAL_MACHINE\SOFTWARE\X") == r"HKLM:\SOFTWARE\X"
    assert powershell_path(r"\REGISTRY\MACHINE\SYSTEM\X") == r"HKLM:\SYSTEM\X"
    assert powershell_path(r"HKCU\Software\X") == r"HKCU:\Software\X"
    assert powershell_path(r"HKU\S-1-5-19\X") == r"Registry::HKEY_USERS\S-1-5-19\X"
    assert powershell_path(r"HKLM:\SOFTWARE\X") == r"HKLM:\SOFTWARE\X"
    fix = suggest_fix(KEY, PARENT, article.audiosrv_principals(), 0x20106, "HKLM\\SOFTWARE\\it's\\x")
    assert "$path = 'HKLM:\\SOFTWARE\\it''s\\x'" in fix.powershell


@pytest.mark.parametrize("principal", ["NT SERVICE\\Audiosrv", AUDIOSRV])
def test_principals_by_name(principal):
    v = evaluate(KEY, [principal], access.KEY_READ)
    assert v.allowed and v.principals == [AUDIOSRV]
