"""`rpctrace symbols`: wiring, help texts, output shapes."""

from __future__ import annotations

import argparse
import io
import json
from contextlib import redirect_stderr, redirect_stdout

from symbols_support import SYMBOLS

from rpctrace.cli import build_parser, main


def _cli(argv, env=None, monkeypatch=None):
    out, errs = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(errs):
        rc = main(argv)
    return rc, out.getvalue(), errs.getvalue()


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_every_option_has_help():
    symbols = dict(_subparsers(build_parser()))["symbols"]
    subs = dict(_subparsers(symbols))
    assert set(subs) == {"resolve", "fetch"}
    for name, sub in subs.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"symbols {name}: {action.option_strings or action.dest} has no help"


def test_group_without_subcommand_is_a_usage_error(capsys):
    """argparse's convention, as for a bare `rpctrace`: the usage on stderr, exit status 2."""
    import pytest

    with pytest.raises(SystemExit) as info:
        main(["symbols"])
    assert info.value.code == 2 and "usage: rpctrace symbols" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["symbols", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0 and "resolve" in out and "fetch" in out


def test_resolve_json_shape():
    rc, out, errs = _cli(["symbols", "resolve", "--pdb", str(SYMBOLS / "x86" / "audiosrv.pdb"), "--format", "json",
                          "12d40", "audiosrv+0x12ef9", "0x1"])
    assert rc == 0 and errs == ""
    doc = json.loads(out)
    assert doc["identity"]["arch"] == "x86" and doc["identity"]["age"] == 1
    inline, outer, none = doc["results"]
    assert [f["function"] for f in inline["frames"]] == ["DeviceIdLength", "PolicyConfigSetDefaultEndpoint"]
    assert inline["frames"][0]["inline"] and inline["frames"][0]["displacement"] is None
    assert outer["symbol"] == "audiosrv!PolicyConfigSetDefaultEndpoint+0x1e9" and outer["offset"] == 0x12EF9
    assert none["symbol"] is None and none["frames"] == []


def test_resolve_image_reports_where_it_looked(tmp_path):
    image = tmp_path / "audiosrv.dll"
    image.write_bytes((SYMBOLS / "x64" / "audiosrv.dll").read_bytes())  # its PDB is not beside it
    rc, out, errs = _cli(["symbols", "resolve", "--image", str(image), "0x12ef9", "--symbols", str(tmp_path / "none")])
    assert rc == 0
    assert out.startswith("# no symbols: audiosrv.pdb/") and "audiosrv+0x12ef9  no symbols" in out


def test_fetch_needs_a_symbol_path(tmp_path, monkeypatch):
    monkeypatch.delenv("_NT_SYMBOL_PATH", raising=False)
    monkeypatch.delenv("_NT_ALT_SYMBOL_PATH", raising=False)
    rc, out, errs = _cli(["symbols", "fetch", str(tmp_path / "x.etl")])
    assert rc == 2 and errs.count("\n") == 1 and "no symbol path" in errs


def test_bad_symbol_path_is_one_line(tmp_path):
    rc, out, errs = _cli(["symbols", "resolve", "--pdb", str(SYMBOLS / "x64" / "audiosrv.pdb"), "1",
                          "--symbols", "https://example.invalid/symbols"])
    assert rc == 2 and errs.count("\n") == 1 and "srv*URL" in errs
