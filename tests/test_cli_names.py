"""`rpctrace names` end to end: lookups by UUID and opnum, --search, JSON, unknown UUIDs, user
databases taking precedence, bad input as one line with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rpctrace.cli import main
from rpctrace.knowledge import interfaces

NETLOGON = "12345678-1234-abcd-ef00-01234567cffb"
UNKNOWN = "00000000-1111-2222-3333-444444444444"


@pytest.fixture(autouse=True)
def no_user_databases(monkeypatch, tmp_path_factory):
    monkeypatch.delenv(interfaces.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-empty")))
    monkeypatch.delenv("APPDATA", raising=False)
    interfaces.reset_user_databases()
    yield
    interfaces.reset_user_databases()


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_netlogon_opnum_30(capsys):
    code, out, err = run(capsys, "names", NETLOGON, "30")
    assert code == 0 and err == ""
    assert out.splitlines()[0] == "netlogon (MS-NRPC) NetrServerPasswordSet2"
    assert "opnum 30: NetrServerPasswordSet2, named by [MS-NRPC]" in out
    assert "the specification's IDL calls it logon" in out
    assert "[MS-NRPC] Netlogon Remote Protocol, revision 49.0" in out
    assert "module:     netlogon.dll" in out and "service:    Netlogon" in out


def test_whole_interface_lists_every_opnum_and_its_source(capsys):
    code, out, _ = run(capsys, "names", "{" + NETLOGON.upper() + "}")
    assert code == 0
    assert out.startswith("netlogon (MS-NRPC)\n")
    assert "procedures: 60 named (opnums 0-59)" in out
    lines = [ln.split() for ln in out.splitlines() if ln.startswith("    ") and ln.split()[0].isdigit()]
    assert len(lines) == 60
    assert ["30", "NetrServerPasswordSet2", "[MS-NRPC]"] in lines
    assert any(src == "rpcmon-win10-1909" for _, _, src in lines)  # opnums the spec leaves unnamed
    assert "Apache-2.0" in out and "rpcmon-win10-1909:" in out  # every source with its licence


def test_json_record(capsys):
    code, out, _ = run(capsys, "names", NETLOGON, "0x1e", "--format", "json")
    assert code == 0
    rec = json.loads(out)
    assert rec["known"] and rec["name"] == "netlogon" and rec["idl_name"] == "logon"
    assert rec["name_source"] == "rpctrace-curated" and rec["version"] == "1.0"
    assert rec["specifications"][0]["spec"] == "MS-NRPC"
    assert rec["procedure"] == {"opnum": 30, "name": "NetrServerPasswordSet2", "source": "spec:MS-NRPC",
                                "build": rec["procedure"]["build"]}
    assert rec["procedure"]["build"].startswith("[MS-NRPC]")
    assert {s["id"] for s in rec["sources"]} >= {"spec:MS-NRPC", "rpctrace-curated"}
    assert all("license" in s for s in rec["sources"])


def test_search_finds_efsr(capsys):
    code, out, _ = run(capsys, "names", "--search", "EfsRpcOpenFileRaw")
    assert code == 0
    assert "c681d488-d850-11d0-8c52-00c04fd90f7e  efsrpc [MS-EFSR]  opnum 0: EfsRpcOpenFileRaw" in out
    code, out, _ = run(capsys, "names", "--search", "efsrpcopenfileraw", "--format", "json")
    doc = json.loads(out)
    assert doc["total"] == 2 and {m["specifications"][0] for m in doc["matches"]} == {"MS-EFSR"}


def test_search_limit_and_no_match(capsys):
    code, out, _ = run(capsys, "names", "--search", "Rpc", "--limit", "3")
    assert code == 0 and len(out.splitlines()) == 4 and "more matches (--limit 0 shows them all)" in out
    code, out, _ = run(capsys, "names", "--search", "zz-no-such-name-zz")
    assert code == 1 and "No interface or procedure name matches" in out and "--rpcdb" in out


def test_unknown_uuid_says_so_and_suggests_rpcdb(capsys):
    code, out, err = run(capsys, "names", UNKNOWN, "3")
    assert code == 1 and err == ""
    assert f"rpctrace does not know interface {UNKNOWN} (opnum 3)." in out
    assert "--rpcdb FILE" in out and '"Procedures"' in out and '"rpctrace-rpcdb"' in out
    code, out, _ = run(capsys, "names", UNKNOWN, "--format", "json")
    assert code == 1 and json.loads(out)["known"] is False and "rpcdb" in json.loads(out)["hint"]


def test_known_interface_unnamed_opnum(capsys):
    code, out, _ = run(capsys, "names", NETLOGON, "999")
    assert code == 1 and out.startswith("netlogon (MS-NRPC): no name known for opnum 999")


def test_user_database_takes_precedence(capsys, tmp_path):
    db = tmp_path / "mine.json"
    db.write_text(json.dumps({"format": "rpctrace-rpcdb", "interfaces": {
        NETLOGON: {"name": "MyNetlogon", "procedures": {"30": "MySet"}},
        UNKNOWN: {"name": "Contoso", "module": "contoso.dll", "procedures": ["ContosoOpen"]}}}))
    code, out, _ = run(capsys, "--rpcdb", str(db), "names", NETLOGON, "30")
    assert code == 0 and out.splitlines()[0] == "MyNetlogon (MS-NRPC) MySet"
    interfaces.reset_user_databases()
    code, out, _ = run(capsys, "names", "--rpcdb", str(db), UNKNOWN)
    assert code == 0 and out.startswith("Contoso\n") and "your database mine.json" in out
    interfaces.reset_user_databases()


@pytest.mark.parametrize("argv,message", [
    (["names", "not-a-uuid"], "'not-a-uuid' is not a UUID"),
    (["names", NETLOGON, "thirty"], "opnum 'thirty' is not a number"),
    (["names", NETLOGON, "70000"], "opnum 70000 is out of range"),
    (["names"], "give an interface UUID"),
    (["names", NETLOGON, "--search", "x"], "either a UUID or --search"),
    (["names", "--search", "  "], "--search needs some text"),
    (["names", "--search", "x", "--limit", "-1"], "--limit must be"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err


def test_bad_rpcdb_file_is_one_line_exit_2(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    code, _, err = run(capsys, "names", "--rpcdb", str(bad), NETLOGON)
    assert code == 2 and err.count("\n") == 1 and str(bad) in err and "not valid JSON" in err


def test_help_text_for_every_option():
    import argparse

    from rpctrace.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    names = sub.choices["names"]
    for action in names._actions:
        assert action.help, action.dest
    out = subprocess.run([sys.executable, "-m", "rpctrace", "names", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for option in ("UUID", "OPNUM", "--search", "--limit", "--format", "--rpcdb"):
        assert option in out
    assert "Exit status: 0 found, 1 not known, 2 bad input" in " ".join(out.split())
