"""`rpctrace acl` end to end: --sddl and --hive, text and json, errors as one line and exit 2."""

from __future__ import annotations

import json

import pytest
from hive_samples import hive_files  # noqa: F401 - the fixture

from rpctrace.cli import main
from rpctrace.explain import article

AUDIOSRV = article.AUDIOSRV_SID
PRINCIPALS = ["--principal", "NT SERVICE\\Audiosrv", "LOCAL SERVICE", "--principal", "Users", "Everyone"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sddl_text_denied_and_inheritance_fix(capsys):
    code, out, err = run(capsys, "acl", article.AUDIO_RENDER_KEY_PATH,
                         "--sddl", f"{article.AUDIO_RENDER_KEY_PATH}={article.AUDIO_RENDER_KEY_SDDL}",
                         "--sddl", f"{article.AUDIO_RENDER_PARENT_PATH}={article.AUDIO_RENDER_PARENT_SDDL}",
                         *PRINCIPALS, "--access", "0x20106")
    assert code == 0 and err == ""
    assert "access      0x20106 = KEY_WRITE | KEY_WOW64_64KEY; checked: KEY_WRITE" in out
    assert "verdict     DENIED" in out and "protected (inheritance off)" in out
    assert "* #3 allow NT SERVICE\\Audiosrv" in out and "KEY_READ" in out
    assert "fix         Re-enable inheritance" in out
    assert "$acl.SetAccessRuleProtection($false, $true)" in out
    assert "'HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\MMDevices\\Audio\\Render\\{34bb9f66" in out
    assert "after       GRANTED: KEY_WRITE" in out


def test_sddl_json(capsys):
    code, out, _ = run(capsys, "acl", "--sddl", article.AUDIO_RENDER_KEY_SDDL, *PRINCIPALS,
                       "--access", "KEY_WRITE|KEY_WOW64_64KEY", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["sddl"] == article.AUDIO_RENDER_KEY_SDDL
    acc = doc["access"]
    assert acc["allowed"] is False and acc["dacl_protected"] is True
    assert acc["missing_names"] == ["KEY_SET_VALUE", "KEY_CREATE_SUB_KEY"]
    deciding = [a for a in acc["aces"] if a["index"] in acc["deciding"]]
    assert [(a["sid"], a["mask_names"], a["explicit"]) for a in deciding] == [(AUDIOSRV, ["KEY_READ"], True)]
    assert doc["fix"]["kind"] == "add-ace"  # no parent given
    assert doc["fix"]["ace"] == f"(A;;DCLC;;;{AUDIOSRV})"  # exactly the missing rights, this key only
    assert doc["fix"]["dangerous"] is False and doc["fix"]["danger"] is None
    assert doc["fix"]["after"]["allowed"] is True
    assert "$path = 'HKLM:\\<key path>'" in doc["fix"]["powershell"]
    assert doc["descriptor"]["dacl_protected"] is True and doc["descriptor"]["owner_name"] == "BUILTIN\\Administrators"


def test_default_access_is_maximum_allowed(capsys):
    code, out, _ = run(capsys, "acl", "--sddl", article.AUDIO_RENDER_KEY_SDDL, "--principal", "NT SERVICE\\Audiosrv")
    assert code == 0 and "GRANTED (maximum allowed): KEY_READ" in out and "fix " not in out


def test_hive_text_and_json(capsys, hive_files):  # noqa: F811
    hive = str(hive_files["SYSTEM"])
    key = r"HKLM\SYSTEM\CurrentControlSet\Services\Audiosrv"
    code, out, _ = run(capsys, "acl", key, "--hive", hive, "--principal", "NT SERVICE\\Audiosrv", "LS", "BU",
                       "--access", "write")
    assert code == 0
    assert "sddl        O:BAG:BAD:AI(A;ID;KR;;;BU)" in out
    assert "DACL        inherits from the parent, 7 ACE(s)" in out
    assert "verdict     DENIED" in out and "fix         Add the ACE (A;;DCLC;;;" + AUDIOSRV + ")" in out
    # a service's own key decides what runs as the service: the fix says so
    assert "DANGER      " in out and "service configuration" in out
    assert "$path = 'HKLM:\\SYSTEM\\ControlSet001\\Services\\Audiosrv'" in out
    code, out, _ = run(capsys, "acl", key, "--hive", hive, "--principal", "SY", "--access", "0xF003F", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["access"]["allowed"] is True and doc["fix"] is None
    assert doc["source"]["parent"] == r"HKLM\SYSTEM\CurrentControlSet\Services"
    assert doc["parent_sddl"].startswith("O:")
    assert [a["sid"] for a in doc["access"]["aces"]] == ["S-1-5-18"]


@pytest.mark.parametrize("argv,message", [
    (["--sddl", "O:BAG:SYD:(A;;KA;;;XX)", "--principal", "LS"], "--sddl: bad SDDL: security descriptor at character 19"),
    (["--sddl", "D:", "--principal", "Nobody"], "--principal: unknown account 'Nobody'"),
    (["--sddl", "D:", "--principal", "LS", "--access", "KEY_FLY"], "--access: unknown access right"),
])
def test_errors_are_one_line(capsys, argv, message):
    code, out, err = run(capsys, "acl", *argv)
    assert code == 2 and out == ""
    assert err.startswith("rpctrace: error: ") and message in err and err.count("\n") == 1


def test_hive_errors_are_one_line(capsys, hive_files, tmp_path):  # noqa: F811
    hive = str(hive_files["SYSTEM"])
    code, _, err = run(capsys, "acl", r"HKLM\SOFTWARE\Microsoft", "--hive", hive, "--principal", "LS")
    assert code == 2 and "SOFTWARE hive, but the file is a SYSTEM hive" in err and err.count("\n") == 1
    code, _, err = run(capsys, "acl", r"HKLM\SYSTEM\Nope", "--hive", hive, "--principal", "LS")
    assert code == 2 and "key not found" in err
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"\0" * 10000)
    code, _, err = run(capsys, "acl", r"HKLM\SYSTEM", "--hive", str(junk), "--principal", "LS")
    assert code == 2 and "not a registry hive" in err
    code, _, err = run(capsys, "acl", "--hive", hive, "--principal", "LS")
    assert code == 2 and "say which key" in err


def test_a_source_is_required(capsys):
    code, _, err = run(capsys, "acl", r"HKLM\SYSTEM", "--principal", "LS")
    assert code == 2 and "--hive PATH or --sddl KEYPATH=SDDL" in err and err.count("\n") == 1
    code, _, err = run(capsys, "acl", r"HKLM\SYSTEM", "--sddl", "D:")
    assert code == 2 and "--principal NAME|SID... or --as service:NAME" in err


def test_sddl_means_what_it_means_in_explain(capsys):
    """`--sddl KEYPATH=SDDL` names the key; a bare SDDL is the positional key's (or, alone, unnamed)."""
    pair = f"{article.AUDIO_RENDER_KEY_PATH}={article.AUDIO_RENDER_KEY_SDDL}"
    code, named, _ = run(capsys, "acl", "--sddl", pair, "--principal", "NT SERVICE\\Audiosrv", "--access", "write")
    assert code == 0 and f"key         {article.AUDIO_RENDER_KEY_PATH}" in named
    code, positional, _ = run(capsys, "acl", article.AUDIO_RENDER_KEY_PATH, "--sddl", article.AUDIO_RENDER_KEY_SDDL,
                              "--principal", "NT SERVICE\\Audiosrv", "--access", "write")
    assert code == 0 and positional == named
    code, _, err = run(capsys, "explain", "x.etl", "--sddl", article.AUDIO_RENDER_KEY_SDDL)
    assert code == 2 and "KEYPATH=SDDL" in err
