"""`rpctrace explain`: findings in the article's terms, from synthesized incidents."""

from __future__ import annotations

import json

import pytest

from hive_samples import hive_files  # noqa: F401  (fixture)
from rpctrace.cli import main
from rpctrace.pipeline import findings as _findings
from rpctrace.explain import article
from rpctrace.explain.acl_sources import AclSources
from rpctrace.explain.rootcause import blame_rank
from rpctrace.synth import synthesize
from rpctrace.trace import load



def explain(trace, hives=(), sddl_pairs=()):
    """The findings `rpctrace explain` prints for a loaded trace."""
    return _findings(trace, None, hives, sddl_pairs)

SDDL_PAIR = [f"{article.AUDIO_RENDER_KEY_PATH}={article.AUDIO_RENDER_KEY_SDDL}",
             f"{article.AUDIO_RENDER_PARENT_PATH}={article.AUDIO_RENDER_PARENT_SDDL}"]


@pytest.fixture(scope="module")
def audiosrv(tmp_path_factory):
    path = tmp_path_factory.mktemp("a") / "a.etl"
    synthesize("audiosrv-access-denied", path, None, seed=3)
    return path


def test_article_finding_with_acl_and_fix(audiosrv):
    findings = explain(load([audiosrv]), (), SDDL_PAIR)
    assert len(findings) == 1
    f = findings[0]
    assert set(f) >= {"call", "summary", "client", "server", "failure", "identity", "acl", "fix"}
    assert f["client"]["image"] == "rundll32.exe"
    assert f["server"]["image"] == "svchost.exe" and f["server"]["service"] == "Audiosrv"
    assert f["interface"]["procedure"] == "PolicyConfigSetDefaultEndpoint"
    assert f["identity"] == {"user": "NT AUTHORITY\\LOCAL SERVICE", "service": "Audiosrv",
                             "service_sid": "S-1-5-80-2676549577-1911656217-2625096541-4178041876-1366760775",
                             "user_sid": "S-1-5-19"}
    assert f["failure"]["status_name"] == "STATUS_ACCESS_DENIED"
    assert f["failure"]["path"] == article.AUDIO_RENDER_KEY_PATH
    assert any("audiosrv+0x" in frame for frame in f["failure"]["stack"])
    summary = f["summary"]
    assert "audiosrv!PolicyConfigSetDefaultEndpoint" in summary
    assert "NT SERVICE\\Audiosrv may only read" in summary and "re-enable inheritance" in summary
    acl = f["acl"]
    assert acl["dacl_protected"] and not acl["allowed"] and acl["desired_assumed"]
    deciding = [a for a in acl["aces"] if a["index"] in acl["deciding"]]
    assert any(a["sid"] == f["identity"]["service_sid"] and a["mask_names"] == ["KEY_READ"] and a["explicit"]
               for a in deciding)
    assert f["fix"]["kind"] == "enable-inheritance"
    assert "SetAccessRuleProtection($false, $true)" in f["fix"]["powershell"]
    assert f["fix"]["after"]["allowed"]


def test_without_a_descriptor_the_finding_asks_for_one(audiosrv):
    (f,) = explain(load([audiosrv]))
    assert f["acl"] is None and f["fix"] is None
    assert "--hive" in f["summary"] and "STATUS_ACCESS_DENIED" in f["summary"]


def test_nested_blames_the_leaf_from_the_root_call(tmp_path):
    path = tmp_path / "n.etl"
    truth = tmp_path / "n.json"
    synthesize("nested", path, truth, seed=5)
    findings = explain(load([path]))
    leaf = [c for c in json.loads(truth.read_text())["calls"]
            if c["parent"] is not None and any(x["status"] == 0xC0000022 for x in c["failures"])]
    assert leaf
    f = [x for x in findings if x["failure"]["status"] == 0xC0000022]
    assert len(f) == 1
    assert f[0]["failure"]["call"] != f[0]["call"], "found in a child of the root call"
    assert f[0]["server"]["pid"] == leaf[0]["server"]["pid"]


def test_blame_ranking():
    assert blame_rank(0xC0000022) < blame_rank(0xC0000008) < blame_rank(0xC0000034) < blame_rank(0xC0000023)


def test_acl_from_a_real_hive(hive_files):  # noqa: F811
    acls = AclSources([str(hive_files["SYSTEM"])])
    failure = {"kind": "registry.open", "path": r"HKLM\SYSTEM\ControlSet001\Services\Audiosrv\Parameters",
               "desired_access": 0x20006}
    from rpctrace.knowledge.sids import principals_for_service

    v = acls.verdict(failure, principals_for_service("Audiosrv", "LOCAL SERVICE"))
    assert v["acl"]["source"].startswith("hive ")
    assert not v["acl"]["allowed"]  # Users get KEY_READ only; services are not administrators
    assert v["acl"]["sddl"].startswith("O:BAG:BAD:AI")
    assert v["fix"]["kind"] == "add-ace"


def test_explain_cli_json_and_text(audiosrv, capsys):
    args = ["explain", str(audiosrv), "--format", "json"]
    for pair in SDDL_PAIR:
        args += ["--sddl", pair]
    assert main(args) == 0
    findings = json.loads(capsys.readouterr().out)
    assert isinstance(findings, list) and findings[0]["fix"]["kind"] == "enable-inheritance"
    assert main(["explain", str(audiosrv)]) == 0
    assert "Finding 1" in capsys.readouterr().out
    assert main(["explain", str(audiosrv), "--sddl", "nonsense"]) == 2
    assert main(["explain", str(audiosrv), "--sddl", "HKLM\\X=not sddl ((("]) == 2


def test_demo_prints_the_sddl_pair_and_the_fix(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # the SDDL pair goes into an @FILE the suggested commands read (one argument per line)
    args = (tmp_path / "audiosrv-acl.args").read_text(encoding="utf-8").splitlines()
    assert args == ["--sddl", f"{article.AUDIO_RENDER_KEY_PATH}={article.AUDIO_RENDER_KEY_SDDL}",
                    "--sddl", f"{article.AUDIO_RENDER_PARENT_PATH}={article.AUDIO_RENDER_PARENT_SDDL}"]
    assert "@audiosrv-acl.args" in out
    assert "re-enable inheritance" in out.lower() and "SetAccessRuleProtection" in out
    assert out.count("SetAccessRuleProtection") == 1 and out.count("verdict: DENIED") == 1  # nothing twice
    assert len(out.splitlines()) <= 40 and max(map(len, out.splitlines())) < 600
    # the failing stack named from the demo modules' PDBs, read at run time from the copied store
    assert "audiosrv!PolicyConfigSetDefaultEndpoint+0x1e9" in out
    assert "MMDevAPI!CSubEndpointDevice::SetRegValue+0x24d" in out
    assert sorted(p.name for p in (tmp_path / "symbols").iterdir()) == ["MMDevAPI.pdb", "audiosrv.pdb"]


def test_explain_procmon_log_reports_failures_inside_rpc_dispatch(tmp_path, capsys):
    """LogFileUTC64Registry.pml: the RegCreateKey ACCESS DENIED while serving RPC calls, from the
    stacks alone (Procmon records no RPC events): 8 in svchost -k RPCSS (NETWORK SERVICE) and 2 in
    RuntimeBroker, as Procmon's own CSV export of the capture also shows."""
    import zlib
    from pathlib import Path

    data = Path(__file__).resolve().parents[1] / "data" / "CompressedLogFileUTC64RegistryPML"
    pml = tmp_path / "LogFileUTC64Registry.pml"
    pml.write_bytes(zlib.decompress(data.read_bytes()))
    assert main(["explain", str(pml), "--format", "json"]) == 0
    findings = json.loads(capsys.readouterr().out)
    denied = [f for f in findings if f["failure"]["status"] == 0xC0000022 and f["failure"]["operation"] == "RegCreateKey"]
    assert sum(f["failure"]["count"] for f in denied) == 10
    first = findings[0]
    assert first is denied[0] and first["call"] is None
    assert first["server"]["image"] == "svchost.exe" and "-k RPCSS" in first["server"]["command_line"]
    assert first["identity"]["user"] == "NT AUTHORITY\\NETWORK SERVICE"
    assert first["failure"]["count"] == 8
    assert "KEY_SET_VALUE" in first["failure"]["desired_access_names"]
    assert first["dispatch"]["entry"].startswith("rpcss+0x")
    assert any(frame.startswith("RPCRT4+0x") for frame in first["failure"]["stack"])
