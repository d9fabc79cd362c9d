"""The capture recipe: the WPR profile is well-formed and enables what rpctrace reads; the xperf
and logman commands carry the same selection; `rpctrace record` writes, prints, and runs wpr only
on Windows (the runner is injected here)."""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET

import pytest

from rpctrace import record
from rpctrace.cli import main
from rpctrace.commands import record as record_cmd
from rpctrace.errors import RpctraceError
from rpctrace.render import recipe

RPC = "6ad52b32-d609-4be9-ae07-ce8dae937e39"
KERNEL_REGISTRY = "70eb4f03-c1de-4f73-a051-33d13d5413bd"


def _profile():
    return ET.fromstring(recipe.wprp_profile().encode("utf-8"))


def test_wprp_is_well_formed_and_ordered():
    root = _profile()
    assert root.tag == "WindowsPerformanceRecorder"
    profiles = root.find("Profiles")
    tags = [child.tag for child in profiles]
    # WPR order: collectors, system provider, event providers, profiles
    assert tags == ["SystemCollector", "EventCollector", "SystemProvider", "EventProvider", "EventProvider", "Profile"]
    assert profiles.find("SystemCollector").get("Name") == "NT Kernel Logger"
    assert recipe.wprp_profile() == recipe.wprp_profile()  # deterministic


def test_wprp_system_keywords_and_stacks():
    system = _profile().find("Profiles/SystemProvider")
    keywords = {k.get("Value") for k in system.findall("Keywords/Keyword")}
    assert keywords == {"ProcessThread", "Loader", "Registry", "FileIO", "FileIOInit", "Alpc"}
    stacks = {s.get("Value") for s in system.findall("Stacks/Stack")}
    # stacks on the ALPC events (types 33-37) and on the registry events rpctrace attributes
    assert {"AlpcSendMessage", "AlpcReceiveMessage", "AlpcWaitForReply", "AlpcWaitForNewMessage", "AlpcUnwait"} <= stacks
    assert {"RegistryOpenKey", "RegistryCreateKey", "RegistrySetValue", "RegistryQueryValue"} <= stacks
    assert all(s.startswith(("Alpc", "Registry")) for s in stacks)


def test_wprp_event_providers_and_profile_references():
    profiles = _profile().find("Profiles")
    providers = {p.get("Id"): p for p in profiles.findall("EventProvider")}
    by_guid = {p.get("Name"): p for p in providers.values()}
    assert set(by_guid) == {RPC, KERNEL_REGISTRY}
    rpc, reg = by_guid[RPC], by_guid[KERNEL_REGISTRY]
    assert [k.get("Value") for k in rpc.findall("Keywords/Keyword")] == ["0xFFFFFFFFFFFFFFFF"]
    assert rpc.get("Level") == "5"
    reg_kw = int(reg.find("Keywords/Keyword").get("Value"), 16)
    # CreateKey 0x1000, OpenKey 0x2000, SetValueKey 0x100 (the events rpctrace decodes: ids 1, 2, 5)
    assert reg_kw & 0x1000 and reg_kw & 0x2000 and reg_kw & 0x100
    assert set(providers) == {"EventProvider_Microsoft-Windows-RPC", "EventProvider_Microsoft-Windows-Kernel-Registry"}
    profile = profiles.find("Profile")
    assert profile.get("Name") == "rpctrace" and profile.get("Id") == "rpctrace.Verbose.File"
    assert profile.get("LoggingMode") == "File" and profile.get("DetailLevel") == "Verbose"
    ids = {e.get("Id") for e in profiles if e.get("Id")}
    refs = [e.get("Value") for e in profile.iter() if e.tag.endswith("Id") and e.get("Value")]
    assert refs and all(r in ids for r in refs)
    assert {e.get("Value") for e in profile.iter("EventProviderId")} == set(providers)
    assert profile.find("Collectors/SystemCollectorId/SystemProviderId").get("Value") == "SystemProvider_rpctrace"


def test_wprp_comments_are_valid_xml_comments():
    text = recipe.wprp_profile()
    for chunk in text.split("<!--")[1:]:
        body = chunk.split("-->")[0]
        assert "--" not in body and not body.endswith("-")


def test_xperf_commands():
    cmds = recipe.xperf_commands(r"C:\traces\incident.etl")
    start_kernel, start_user, stop = cmds
    flags = start_kernel.split("-on ")[1].split()[0].split("+")
    assert flags == ["PROC_THREAD", "LOADER", "REGISTRY", "FILE_IO", "FILE_IO_INIT", "ALPC"]
    walks = start_kernel.split("-stackwalk ")[1].split()[0].split("+")
    assert {"AlpcSendMessage", "AlpcReceiveMessage", "AlpcWaitForReply", "AlpcWaitForNewMessage", "AlpcUnwait"} <= set(walks)
    assert {"RegOpenKey", "RegCreateKey", "RegSetValue", "RegQueryValue"} <= set(walks)
    assert '-f "C:\\traces\\incident.kernel.etl"' in start_kernel
    assert "Microsoft-Windows-RPC:0xFFFFFFFFFFFFFFFF:5" in start_user
    assert "Microsoft-Windows-Kernel-Registry:0x7300:4" in start_user
    assert stop == 'xperf -stop rpctrace -stop -d "C:\\traces\\incident.etl"'  # merged into one file


def test_logman_commands():
    cmds = recipe.logman_commands("incident.etl")
    kernel = cmds[0]
    assert kernel.startswith('logman start "NT Kernel Logger" -p "Windows Kernel Trace" 0x')
    mask = int(kernel.split('"Windows Kernel Trace" ')[1].split()[0], 16)
    # EVENT_TRACE_FLAG_PROCESS|THREAD|IMAGE_LOAD|REGISTRY|ALPC|FILE_IO|FILE_IO_INIT (evntrace.h)
    assert mask == 0x1 | 0x2 | 0x4 | 0x20000 | 0x100000 | 0x02000000 | 0x04000000 == 0x06120007
    assert '-o "incident.kernel.etl" -ets' in kernel
    assert any(f"-p {{{RPC}}} 0xFFFFFFFFFFFFFFFF 5" in c for c in cmds)
    assert any(c.startswith("logman update rpctrace") and f"{{{KERNEL_REGISTRY}}} 0x7300" in c for c in cmds)
    assert cmds[-2:] == ["logman stop rpctrace -ets", 'logman stop "NT Kernel Logger" -ets']


def test_plan_and_injected_windows_runner(tmp_path):
    ran = []

    def runner(argv):
        ran.append(list(argv))
        return 0

    profile, etl = str(tmp_path / "p.wprp"), str(tmp_path / "out.etl")
    start = record.make_plan("start", profile, etl)
    assert start.run == [["wpr", "-start", f"{profile}!rpctrace", "-filemode"]]
    record.run(start, runner=runner, platform="win32")
    stop = record.make_plan("stop", profile, etl)
    record.run(stop, runner=runner, platform="win32")
    assert ran == [["wpr", "-start", f"{profile}!rpctrace", "-filemode"], ["wpr", "-stop", etl]]
    assert record.make_plan("write", profile, etl).run == []
    # off Windows nothing runs
    with pytest.raises(record.NeedsWindows):
        record.run(start, runner=runner, platform="linux")
    assert len(ran) == 2
    # a failing or missing wpr is one error
    with pytest.raises(RpctraceError, match="exit status 5"):
        record.run(start, runner=lambda argv: 5, platform="win32")

    def missing(argv):
        raise FileNotFoundError(argv[0])

    with pytest.raises(RpctraceError, match="wpr not found"):
        record.run(start, runner=missing, platform="win32")


def _args(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    record_cmd.register(sub)
    return parser.parse_args(["record", *argv])


def test_record_command_on_windows_runs_wpr(tmp_path, capsys):
    ran = []

    def runner(argv):
        ran.append(list(argv))
        return 0
    profile = tmp_path / "p.wprp"
    assert record_cmd.cmd_record(_args(["--profile", str(profile), "--start"]), runner=runner, platform="win32") == 0
    assert profile.exists() and ET.parse(profile).getroot().tag == "WindowsPerformanceRecorder"
    assert "rpctrace record --stop" in capsys.readouterr().out
    etl = tmp_path / "incident.etl"
    assert record_cmd.cmd_record(_args(["--stop", str(etl)]), runner=runner, platform="win32") == 0
    assert f"rpctrace calls \"{etl}\" --failed" in capsys.readouterr().out
    assert ran == [["wpr", "-start", f"{profile}!rpctrace", "-filemode"], ["wpr", "-stop", str(etl)]]
    # --print runs nothing even on Windows
    assert record_cmd.cmd_record(_args(["--profile", str(profile), "--start", "--print"]), runner=runner,
                                 platform="win32") == 0
    assert "Would run: wpr -start" in capsys.readouterr().out and len(ran) == 2


def test_record_command_elsewhere(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(record.sys, "platform", "linux")
    monkeypatch.chdir(tmp_path)
    assert main(["record"]) == 0
    out = capsys.readouterr()
    assert (tmp_path / "rpctrace.wprp").exists()
    ET.parse(tmp_path / "rpctrace.wprp")
    assert 'wpr -start "rpctrace.wprp!rpctrace" -filemode' in out.out
    assert 'wpr -stop "incident.etl"' in out.out and "xperf -on PROC_THREAD" in out.out
    assert 'logman start "NT Kernel Logger"' in out.out and "rpctrace calls" in out.out
    assert out.err == ""
    # --start: one clear line, exit 2, and the commands to run on Windows
    assert main(["record", "--start", "--profile", str(tmp_path / "q.wprp")]) == 2
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and "needs Windows" in out.err
    assert "wpr -start" in out.out
    assert main(["record", "--stop", str(tmp_path / "x.etl")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    # the profile to stdout
    assert main(["record", "--profile", "-"]) == 0
    ET.fromstring(capsys.readouterr().out)
    assert main(["record", "--profile", "-", "--start"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
