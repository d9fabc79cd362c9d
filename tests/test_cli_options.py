"""The command line as a new user meets it: every --help works, bare `rpctrace` is a usage error,
one option means one thing in every command, the shared filters agree across commands, output
errors name the output, and a progress bar shows on a terminal only."""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rpctrace import synth
from rpctrace.cli import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def _subparsers():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, sub.choices


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_works(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: rpctrace {command}") and "Traceback" not in out


def test_top_level_help_and_bare_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert all(c in text for c in COMMANDS)
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("usage: rpctrace")


def test_bare_rpctrace_as_a_process():
    done = subprocess.run([sys.executable, "-m", "rpctrace"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("usage: rpctrace") and "Traceback" not in done.stderr


def test_every_option_has_help_text():
    parser, commands = _subparsers()
    for name, p in [("rpctrace", parser), *commands.items()]:
        for action in p._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
                continue
            assert action.help, f"{name}: {action.option_strings or action.dest} has no help text"


def test_shared_options_mean_the_same_everywhere():
    """An option that appears in several commands has the same help text (so the same meaning)."""
    _, commands = _subparsers()
    seen: dict[str, tuple[str, str]] = {}
    # per-command texts for what is the same kind of thing (the file written, the call chosen, ...)
    allowed = {"--format", "--call", "--seed", "--out", "-o", "--output", "--sddl"}
    for name, p in commands.items():
        for action in p._actions:
            for opt in action.option_strings:
                if opt in allowed or opt in ("-h", "--help") or action.help == argparse.SUPPRESS:
                    continue
                if opt in seen:
                    assert seen[opt][1] == action.help, f"{opt}: {seen[opt][0]} and {name} say different things"
                else:
                    seen[opt] = (name, action.help)
    # the output file is -o/--output wherever a command writes one
    for name in ("report", "export", "windbg", "synth", "record"):
        opts = {o for a in commands[name]._actions for o in a.option_strings}
        assert {"-o", "--output"} <= opts, name
    for name in ("calls", "tree", "report", "export"):
        opts = {o for a in commands[name]._actions for o in a.option_strings}
        assert {"--client", "--server", "--interface", "--failed"} <= opts, name
    for name in ("explain", "report", "acl"):
        opts = {o for a in commands[name]._actions for o in a.option_strings}
        assert {"--hive", "--sddl"} <= opts, name


def test_docs_cli_table_is_current():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import cli_docs
    finally:
        sys.path.pop(0)
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == cli_docs.render(), \
        "docs/cli.md is out of date: run python tools/cli_docs.py"


def test_readme_lists_every_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    use = readme[readme.index("## Use"):]
    use = use[: use.index("\n## ", 5)]
    for command in COMMANDS:
        assert re.search(rf"^rpctrace {command}\b", use, re.M), f"README's Use section does not list {command}"


# ------------------------------------------------------------------ global options

@pytest.fixture(scope="module")
def audiosrv(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    etl = d / "audiosrv.etl"
    synth.synthesize("audiosrv-access-denied", etl, d / "truth.json", seed=5)
    return etl


def test_global_options_before_and_after_the_command(audiosrv, tmp_path, capsys):
    db = tmp_path / "mine.rpcdb.json"
    db.write_text(json.dumps({"35464382-ad29-4881-9392-b43e55b8f7ac": {
        "Module": "audiosrv.dll", "Service": "Audiosrv", "Procedures": [f"Mine{n}" for n in range(80)]}}))
    from rpctrace.knowledge.interfaces import reset_user_databases

    try:
        for argv in (["--rpcdb", str(db), "calls", str(audiosrv), "--format", "json"],
                     ["calls", str(audiosrv), "--format", "json", "--rpcdb", str(db)],
                     ["--keep-going", "calls", str(audiosrv), "--format", "json", "--rpcdb", str(db)],
                     ["calls", "--keep-going", str(audiosrv), "--format", "json", "--rpcdb", str(db)]):
            reset_user_databases()
            assert main(argv) == 0, argv
            calls = json.loads(capsys.readouterr().out)
            assert any(c["procedure"] == "Mine71" for c in calls), argv
        parser = build_parser()
        for argv in (["--keep-going", "calls", "x.etl"], ["calls", "x.etl", "--keep-going"]):
            assert parser.parse_args(argv).keep_going is True
        assert parser.parse_args(["calls", "x.etl"]).keep_going is False
    finally:
        reset_user_databases()


# ------------------------------------------------------------------ filters

def _ids(capsys, argv) -> list[int]:
    assert main(argv) == 0, argv
    return sorted(c["id"] for c in json.loads(capsys.readouterr().out))


@pytest.mark.parametrize("spec", ["rundll32.exe", "rundll32", "RUNDLL32.EXE", "Rundll32"])
def test_client_name_with_or_without_exe_any_case(audiosrv, capsys, spec):
    ids = _ids(capsys, ["calls", str(audiosrv), "--format", "json", "--client", spec])
    assert ids == _ids(capsys, ["calls", str(audiosrv), "--format", "json", "--client", "rundll32.exe"]) and ids


def test_server_by_service_name_and_the_same_filters_everywhere(audiosrv, tmp_path, capsys):
    everything = _ids(capsys, ["calls", str(audiosrv), "--format", "json"])
    by_service = _ids(capsys, ["calls", str(audiosrv), "--format", "json", "--server", "Audiosrv"])
    by_lower = _ids(capsys, ["calls", str(audiosrv), "--format", "json", "--server", "audiosrv"])
    assert by_service == by_lower and 0 < len(by_service) < len(everything)
    assert main(["calls", str(audiosrv), "--format", "json", "--server", "Audiosrv"]) == 0
    servers = {(c["server"]["image"], c["server"]["service"]) for c in json.loads(capsys.readouterr().out)}
    assert servers == {("svchost.exe", "Audiosrv")}
    by_name = _ids(capsys, ["calls", str(audiosrv), "--format", "json", "--interface", "AudioServer/PolicyConfig"])
    by_uuid = _ids(capsys, ["calls", str(audiosrv), "--format", "json", "--interface",
                            "{35464382-AD29-4881-9392-B43E55B8F7AC}"])
    assert by_name == by_uuid and by_name
    failed_audio = _ids(capsys, ["calls", str(audiosrv), "--format", "json", "--server", "Audiosrv", "--failed"])
    assert failed_audio and set(failed_audio) <= set(by_service)

    # tree: the same calls are its roots
    assert main(["tree", str(audiosrv), "--server", "Audiosrv", "--failed"]) == 0
    tree_ids = sorted(int(m) for m in re.findall(r"^    call (\d+) ", capsys.readouterr().out, re.M))
    assert tree_ids == failed_audio
    # export: the same calls are its slices
    out = tmp_path / "x.json"
    assert main(["export", str(audiosrv), "-o", str(out), "--server", "Audiosrv", "--failed"]) == 0
    doc = json.loads(out.read_text())
    assert sorted({e["args"]["call"] for e in doc["traceEvents"] if e["ph"] == "X"}) == failed_audio
    # report: the same calls are its tree, and the page says it is a part
    page = tmp_path / "x.html"
    assert main(["report", str(audiosrv), "-o", str(page), "--server", "Audiosrv", "--failed"]) == 0
    text = page.read_text(encoding="utf-8")
    assert sorted(int(i) for i in re.findall(r'class="call fc tc[^"]*" id="call-(\d+)"', text)) == failed_audio
    assert f"{len(failed_audio)}</b> of the {len(everything)} RPC calls" in text and "--server Audiosrv --failed" in text
    capsys.readouterr()


# ------------------------------------------------------------------ outputs

@pytest.mark.parametrize("argv", [
    ["report", "{etl}", "-o", "/nonexistent/x.html"],
    ["export", "{etl}", "-o", "/nonexistent/x.json"],
    ["windbg", "{etl}", "--call", "1", "-o", "/nonexistent/x.txt"],
    ["synth", "nested", "-o", "/nonexistent/x.etl"],
    ["record", "-o", "/nonexistent/x.wprp"],
])
def test_output_errors_name_the_output(argv, audiosrv, capsys):
    argv = [a.replace("{etl}", str(audiosrv)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    target = argv[argv.index("-o") + 1]
    assert err == f"rpctrace: error: cannot write {target}: no such directory\n"


def test_output_that_is_a_directory(audiosrv, tmp_path, capsys):
    assert main(["report", str(audiosrv), "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"rpctrace: error: cannot write {tmp_path}: it is a directory\n"
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


# ------------------------------------------------------------------ synth sizes

@pytest.mark.parametrize("argv,message", [
    (["--events", "-5"], "--events must be between 1 and"),
    (["--calls", "-1"], "--calls must be between 1 and"),
    (["--clients", "0"], "--clients must be between 1 and"),
    (["--events", "5000", "--calls", "10"], "give --events"),
    (["--events", "10"], "--events 10 is less than the nested scenario needs"),
])
def test_synth_rejects_negative_or_contradictory_sizes(argv, message, tmp_path, capsys):
    out = tmp_path / "x.etl"
    assert main(["synth", "nested", "-o", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rpctrace: error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


# ------------------------------------------------------------------ progress

def _run_on_pty(argv: list[str], env: dict) -> str:
    """Run rpctrace with stderr on a pseudo-terminal; what it drew there."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "rpctrace", *argv], stdout=subprocess.DEVNULL, stderr=slave,
                            env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(master)
    assert proc.returncode == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_progress_bar_on_a_terminal_only(audiosrv, tmp_path):
    env = dict(os.environ, RPCTRACE_PROGRESS_DELAY="0", COLUMNS="100")
    drawn = _run_on_pty(["synth", "busy-server", "-o", str(tmp_path / "b.etl"), "--events", "30000"], env)
    assert "rpctrace: writing busy-server" in drawn
    drawn = _run_on_pty(["calls", str(audiosrv)], env)
    assert "rpctrace: reading" in drawn
    # JSON output, or stderr not a terminal: nothing
    drawn = _run_on_pty(["calls", str(audiosrv), "--format", "json"], env)
    assert "rpctrace: reading" not in drawn
    done = subprocess.run([sys.executable, "-m", "rpctrace", "calls", str(audiosrv)], capture_output=True, text=True,
                          env=env)
    assert done.returncode == 0 and "reading" not in done.stderr
    drawn = _run_on_pty(["calls", str(audiosrv)], dict(env, RPCTRACE_PROGRESS="0"))
    assert "rpctrace: reading" not in drawn
