"""Answers a user can trust (issue 14): blame what a person would blame, say what the input
cannot show, follow every hop, and never propose a fix that opens a hole without saying so."""

from __future__ import annotations

import csv
import json
import zlib
from pathlib import Path

import pytest
from hive_samples import hive_files  # noqa: F401  (fixture)

from rpctrace import synth
from rpctrace.cli import main
from rpctrace.knowledge.failures import classify

DATA = Path(__file__).resolve().parents[1] / "data"


def _pml(tmp_path, name: str) -> tuple[Path, Path]:
    pml, table = tmp_path / f"{name}.pml", tmp_path / f"{name}.csv"
    pml.write_bytes(zlib.decompress((DATA / f"Compressed{name}PML").read_bytes()))
    table.write_bytes(zlib.decompress((DATA / f"Compressed{name}CSV").read_bytes()))
    return pml, table


def _explain(capsys, *argv) -> tuple[int, list, str]:
    code = main(["explain", *argv, "--format", "json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_procmon_log_blames_the_access_denied_first(tmp_path, capsys):
    """LogfileTests64bitUTC.pml: 32 RegOpenKey ACCESS DENIED in SearchProtocolHost among 13,000
    expected results; they are the first finding, counted as Procmon's own CSV counts them."""
    pml, table = _pml(tmp_path, "LogfileTests64bitUTC")
    code, findings, _ = _explain(capsys, str(pml))
    assert code == 0 and findings
    first = findings[0]
    assert first["server"]["image"] == "SearchProtocolHost.exe" and first["failure"]["operation"] == "RegOpenKey"
    assert first["failure"]["status_name"] == "STATUS_ACCESS_DENIED" and first["outside"] is True
    with open(table, encoding="utf-8-sig", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["Result"] == "ACCESS DENIED"]
    assert first["failure"]["count"] == sum(1 for r in rows if r["Process Name"] == "SearchProtocolHost.exe"
                                            and r["Operation"] == "RegOpenKey") == 32
    # no expected result is a finding; the client side says it was not recorded
    assert all(classify(f["failure"]["status"], f["failure"]["kind"], f["failure"].get("operation")) == "blame"
               for f in findings)
    assert first["client"] is None and "not recorded" in first["client_note"] and first["confidence"] is None
    assert main(["explain", str(pml)]) == 0
    text = capsys.readouterr().out
    assert "expected results left out" in text and "rpctrace explain --all" in text
    assert "confidence 0.00" not in text and "an unknown process" not in text


@pytest.mark.parametrize("name", ["LogFileUTC64Registry", "LogFileUTC64Filesystem", "LogFileUTC64Process"])
def test_every_finding_of_the_other_procmon_logs_deserves_blame(tmp_path, capsys, name):
    pml, _ = _pml(tmp_path, name)
    code, findings, _ = _explain(capsys, str(pml))
    assert code == 0
    assert all(classify(f["failure"]["status"], f["failure"]["kind"], f["failure"].get("operation")) == "blame"
               for f in findings), [f["summary"] for f in findings if f["failure"]]
    code, everything, _ = _explain(capsys, str(pml), "--all")
    assert len(everything) >= len(findings)


def test_no_blame_worthy_failure_says_so_and_counts_what_was_left_out(tmp_path, capsys):
    etl = tmp_path / "busy.etl"
    synth.synthesize("busy-server", etl, None, seed=4, clients=16, calls=400)  # only optional keys are missing
    assert main(["explain", str(etl)]) == 0
    out = capsys.readouterr().out
    assert "Finding" not in out and "No failure to blame" in out
    assert "expected results left out" in out and "succeeded" not in out


def test_check_and_explain_say_what_the_input_cannot_show(tmp_path, capsys):
    import lzma

    shutdown = tmp_path / "ShutdownPerfDiagLogger.etl"
    shutdown.write_bytes(lzma.decompress((DATA / "ShutdownPerfDiagLogger.etl.xz").read_bytes()))
    assert main(["check", str(shutdown), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"rpc", "alpc"} <= set(doc["missing"]) and doc["advice"] and doc["events"]["image.rundown"] > 0
    assert main(["explain", str(shutdown)]) == 0
    out, err = capsys.readouterr()
    assert "succeeded" not in out and "no Microsoft-Windows-RPC events" in out and "no kernel ALPC events" in out
    assert "no Microsoft-Windows-RPC events" in err

    # a saved RPC log with call-start events only (event 6): no results at all
    events = [_xml_event(n, 6, f"2024-05-01T10:00:0{n}.0000000Z") for n in range(1, 4)]
    saved = tmp_path / "starts.xml"
    saved.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<Events>\n' + "\n".join(events) + "\n</Events>\n")
    assert main(["check", str(saved), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "rpc_results" in doc["missing"] and "rpc" not in doc["missing"]
    assert main(["explain", str(saved)]) == 0
    out, err = capsys.readouterr()
    assert "how calls ended" in out and "succeeded" not in out and "how calls ended" in err


def _xml_event(rec: int, eid: int, ts: str) -> str:
    data = [("InterfaceUuid", "{35464382-AD29-4881-9392-B43E55B8F7AC}"), ("ProcNum", "71"), ("Protocol", "3"),
            ("NetworkAddress", ""), ("Endpoint", "AudioClientRpc"), ("Options", ""), ("AuthenticationLevel", "6"),
            ("AuthenticationService", "10"), ("ImpersonationLevel", "2")]
    items = "".join(f'<Data Name="{n}">{v}</Data>' for n, v in data)
    return ('<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System>'
            '<Provider Name="Microsoft-Windows-RPC" Guid="{6AD52B32-D609-4BE9-AE07-CE8DAE937E39}"/>'
            f'<EventID>{eid}</EventID><Version>1</Version><Level>4</Level><Task>2</Task><Opcode>1</Opcode>'
            f'<Keywords>0x4000000000000000</Keywords><TimeCreated SystemTime="{ts}"/><EventRecordID>{rec}</EventRecordID>'
            '<Correlation ActivityID="{1B8F6E2A-0000-4000-8000-00000000C11E}"/><Execution ProcessID="1500" '
            'ThreadID="1501"/><Channel>Microsoft-Windows-RPC/Debug</Channel><Computer>HOST</Computer>'
            f'<Security UserID="S-1-5-18"/></System><EventData>{items}</EventData></Event>')


def test_nested_finding_follows_every_hop(tmp_path, capsys):
    etl, truth_path = tmp_path / "nested.etl", tmp_path / "nested.json"
    synth.synthesize("nested", etl, truth_path, seed=5)
    code, findings, _ = _explain(capsys, str(etl))
    f = findings[0]
    assert [h["server"]["service"] for h in f["hops"]] == ["Schedule", "UserManager", "LSM"]
    assert f["client"]["image"] == "mmc.exe" and f["hops"][0]["client"]["image"] == "mmc.exe"
    assert f["server"]["service"] == "LSM" and f["server"]["pid"] == f["hops"][-1]["server"]["pid"]
    assert f["interface"]["procedure"] == f["hops"][-1]["procedure"] and f["failure"]["call"] == f["hops"][-1]["call"]
    assert all(set(h) >= {"call", "client", "server", "interface", "procedure", "alpc_message_id", "status"}
               for h in f["hops"])
    summary = f["summary"]
    positions = [summary.index(f"({svc})") for svc in ("Schedule", "UserManager", "LSM")]
    assert positions == sorted(positions) and summary.startswith("mmc.exe")
    assert "--hive SYSTEM" in summary and "--hive SOFTWARE" not in summary  # the key is under HKLM\SYSTEM
    assert f["status"]["result"] is None and "not in the trace" in f["status"]["note"]


def test_audiosrv_finding_unchanged_in_substance(tmp_path, capsys):
    from rpctrace.explain import article

    etl = tmp_path / "a.etl"
    synth.synthesize("audiosrv-access-denied", etl, None, seed=3)
    code, findings, _ = _explain(capsys, str(etl), "--sddl", f"{article.AUDIO_RENDER_KEY_PATH}={article.AUDIO_RENDER_KEY_SDDL}",
                                 "--sddl", f"{article.AUDIO_RENDER_PARENT_PATH}={article.AUDIO_RENDER_PARENT_SDDL}")
    assert len(findings) == 1
    f = findings[0]
    assert len(f["hops"]) == 1 and f["client"]["image"] == "rundll32.exe" and f["server"]["service"] == "Audiosrv"
    assert "audiosrv!PolicyConfigSetDefaultEndpoint" in f["summary"] and "re-enable inheritance" in f["summary"]
    assert f["fix"]["kind"] == "enable-inheritance" and f["fix"]["dangerous"] is False


# ------------------------------------------------------------------ safe fixes

def test_broad_write_on_services_is_flagged_dangerous(hive_files, capsys):  # noqa: F811
    code = main(["acl", r"ControlSet001\Services", "--hive", str(hive_files["SYSTEM"]), "--principal", "BUILTIN\\Users",
                 "--access", "KEY_WRITE", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["fix"]["dangerous"] is True
    assert "BUILTIN\\Users" in doc["fix"]["danger"] and "service configuration" in doc["fix"]["danger"]
    assert doc["fix"]["alternative"]
    assert doc["fix"]["powershell"].startswith("$path = 'HKLM:\\SYSTEM\\ControlSet001\\Services'")


@pytest.mark.parametrize("hive,key,provider", [
    ("SYSTEM", r"ControlSet001\Services\Audiosrv", "'HKLM:\\SYSTEM\\ControlSet001\\Services\\Audiosrv'"),
    ("SYSTEM_WIN_10_1709", r"HKLM\SYSTEM\Select", "'HKLM:\\SYSTEM\\Select'"),
    ("SAM", r"SAM\Domains", "'HKLM:\\SAM\\SAM\\Domains'"),
    ("SECURITY", r"Policy", "'HKLM:\\SECURITY\\Policy'"),
    ("NTUSER.DAT", r"Software\Microsoft", "'Registry::HKEY_USERS\\<user SID>\\Software\\Microsoft'"),
    ("UsrClass.dat", r"Local Settings", "'Registry::HKEY_USERS\\<user SID>_Classes\\Local Settings'"),
])
def test_powershell_paths_are_provider_paths_for_every_hive_kind(hive_files, capsys, hive, key, provider):  # noqa: F811
    code = main(["acl", key, "--hive", str(hive_files[hive]), "--principal", "S-1-5-21-1-2-3-1001",
                 "--access", "KEY_WRITE", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["fix"] is not None
    first = doc["fix"]["powershell"].splitlines()[0]
    assert first == f"$path = {provider}", first
    assert first.startswith(("$path = 'HKLM:\\", "$path = 'Registry::"))


def test_acl_as_a_service_lists_its_token(capsys):
    from rpctrace.explain import article

    code = main(["acl", article.AUDIO_RENDER_KEY_PATH, "--sddl", article.AUDIO_RENDER_KEY_SDDL, "--as", "service:Audiosrv",
                 "--access", "KEY_WRITE", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    sids_ = [t["sid"] for t in doc["token"]]
    assert code == 0 and sids_[0] == article.AUDIOSRV_SID and "S-1-1-0" in sids_ and "S-1-5-11" in sids_
    assert doc["principals"][: len(sids_)] == sids_ and all(t["why"] for t in doc["token"])
    assert main(["acl", article.AUDIO_RENDER_KEY_PATH, "--sddl", article.AUDIO_RENDER_KEY_SDDL, "--as", "Audiosrv"]) == 2
    assert "service:NAME" in capsys.readouterr().err


def test_dirty_hive_is_read_with_a_warning(hive_files, tmp_path, capsys):  # noqa: F811
    import struct

    dirty = tmp_path / "SYSTEM"
    data = bytearray(hive_files["SYSTEM"].read_bytes())
    first, second = struct.unpack_from("<II", data, 4)
    struct.pack_into("<I", data, 8, second + 1)  # sequence numbers differ: a hive not written cleanly
    dirty.write_bytes(bytes(data))
    code = main(["acl", r"ControlSet001\Services\Audiosrv", "--hive", str(dirty), "--principal", "LS"])
    err = capsys.readouterr().err
    assert code == 0 and "the hive is dirty" in err and "--hive-log SYSTEM.LOG1" in err


def test_every_answering_command_says_what_the_input_cannot_show_once(tmp_path, capsys):
    """calls, tree, explain and report warn on stderr what the input lacks (the listing alone would
    be an empty table with no reason given); a loss is said once per file, not once more as a
    limit."""
    import lzma

    shutdown = tmp_path / "ShutdownPerfDiagLogger.etl"
    shutdown.write_bytes(lzma.decompress((DATA / "ShutdownPerfDiagLogger.etl.xz").read_bytes()))
    for command in (["calls"], ["tree"], ["explain", "--format", "json"],
                    ["report", "-o", str(tmp_path / "r.html")]):
        assert main([*command, str(shutdown)]) == 0
        err = capsys.readouterr().err
        assert err.count("no Microsoft-Windows-RPC events") == 1, (command, err)
        assert err.count("no kernel ALPC events") == 1, (command, err)

    amsi = tmp_path / "AMSITrace.etl"
    amsi.write_bytes(lzma.decompress((DATA / "AMSITrace.etl.xz").read_bytes()))
    assert main(["explain", str(amsi)]) == 0
    out, err = capsys.readouterr()
    assert "the logger lost 3 events and 0 buffers" in out  # the text lists the limits it found nothing within
    assert err.count("lost 3 events") == 1 and f"{amsi}: the logger lost 3 events and 0 buffers" in err


def test_advice_fits_inputs_that_cannot_hold_what_is_missing(tmp_path, capsys):
    """A Procmon log cannot hold RPC or ALPC events: the advice is to record a trace beside it,
    not to enable a provider Procmon does not have; the missing parts keep their names."""
    import zlib

    pml = tmp_path / "p.pml"
    pml.write_bytes(zlib.decompress((DATA / "CompressedLogFileUTC64ProcessPML").read_bytes()))
    assert main(["check", str(pml), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"rpc", "alpc"} <= set(doc["missing"])
    rpc, alpc = (doc["advice"][doc["missing"].index(m)] for m in ("rpc", "alpc"))
    assert rpc.startswith("a Process Monitor log holds no RPC events") and "record an ETW trace beside it" in rpc
    assert alpc.startswith("a Process Monitor log holds no kernel ALPC events")
    assert "enable the" not in rpc + alpc
    assert main(["calls", str(pml)]) == 0
    assert "a Process Monitor log holds no RPC events" in capsys.readouterr().err
