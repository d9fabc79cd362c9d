"""Every output names frames from PDBs read at run time (explain, tree, events, report,
Perfetto, WinDbg), and a procedure no database names is taken from the server's stack.

The trace is the writer's AudioSrv scenario (64- and 32-bit), its stacks through the modules
of tests/data/symbols (PE/PDB pairs built by clang and lld-link); the symbols come from a local
store laid out as symbol stores are (``name.pdb/GUIDAGE/name.pdb``), never from the network.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout

import pytest
from symbols_support import make_store

from rpctrace.cli import main

SERVER_FUNCTION = "audiosrv!PolicyConfigSetDefaultEndpoint"
ASKER = "MMDevAPI!CSubEndpointDevice::SetRegValue"


@pytest.fixture(scope="module", params=[8, 4], ids=["x64", "x86"])
def case(request, tmp_path_factory):
    from rpctrace.synth import synthesize

    ptr = request.param
    arch = "x64" if ptr == 8 else "x86"
    root = tmp_path_factory.mktemp(f"symbols-{arch}")
    path = root / "audiosrv.etl"
    synthesize("audiosrv-access-denied", path, None, seed=5, calls=3, clients=1, pointer_size=ptr)
    store = make_store(root / "store", arch, binaries=False)
    return path, str(store)


def _run(argv):
    out, errs = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(errs):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), errs.getvalue()


def _failing_call(path) -> int:
    rc, out, errs = _run(["explain", path, "--format", "json"])
    assert rc == 0, errs
    return json.loads(out)[0]["call"]


def test_explain_names_the_failing_stack_and_keeps_the_database_procedure(case):
    path, store = case
    rc, out, errs = _run(["explain", path, "--symbols", store])
    assert rc == 0, errs
    assert f"{SERVER_FUNCTION}+0x" in out and f"{ASKER}+0x" in out
    rc, out, errs = _run(["explain", path, "--symbols", store, "--format", "json"])
    finding = json.loads(out)[0]
    assert finding["interface"]["procedure"] == "PolicyConfigSetDefaultEndpoint"
    assert finding["interface"]["procedure_source"] == "database"
    frames = finding["failure"]["stack"]
    assert any(f.startswith(f"{SERVER_FUNCTION}+0x") for f in frames), frames


def test_without_a_symbol_source_frames_stay_module_plus_offset(case, monkeypatch):
    path, _ = case
    monkeypatch.delenv("_NT_SYMBOL_PATH", raising=False)
    rc, out, errs = _run(["explain", path])
    assert rc == 0, errs
    assert "audiosrv+0x" in out and "!PolicyConfigSetDefaultEndpoint+0x" not in out


def test_nt_symbol_path_is_a_symbol_source(case, monkeypatch):
    path, store = case
    monkeypatch.setenv("_NT_SYMBOL_PATH", store)
    rc, out, errs = _run(["tree", path])
    assert rc == 0, errs
    assert f"{SERVER_FUNCTION}+0x" in out or f"{ASKER}+0x" in out, out[:2000]


def test_events_json_has_a_symbol_per_frame(case):
    path, store = case
    rc, out, errs = _run(["events", path, "--format", "jsonl", "--symbols", store])
    assert rc == 0, errs
    named = 0
    for line in out.splitlines():
        ev = json.loads(line)
        if "stack" not in ev:
            continue
        assert len(ev["stack_symbols"]) == len(ev["stack"]) == len(ev["stack_addresses"])
        for text, sym in zip(ev["stack"], ev["stack_symbols"]):
            if sym is not None:
                named += 1
                assert text == sym["symbol"] and sym["module"] in ("audiosrv", "MMDevAPI")
                assert text.startswith(f"{sym['module']}!{sym['function']}+0x")
    assert named > 0


def test_windbg_breaks_on_the_server_function(case):
    path, store = case
    call = _failing_call(path)
    rc, out, errs = _run(["windbg", path, "--call", call, "--symbols", store])
    assert rc == 0, errs
    assert f"~. bp /1 {SERVER_FUNCTION}\n" in out
    assert f"~. bp {ASKER}\n" in out
    rc, plain, errs = _run(["windbg", path, "--call", call])
    assert "~. bp /1 RPCRT4!Invoke\n" in plain and f"bp /1 {SERVER_FUNCTION}" not in plain


def test_perfetto_failing_operation_carries_its_named_stack(case, tmp_path):
    path, store = case
    out_file = tmp_path / "t.json"
    rc, _, errs = _run(["export", path, "--format", "perfetto", "-o", out_file, "--symbols", store])
    assert rc == 0, errs
    events = json.loads(out_file.read_text())["traceEvents"]
    stacks = [e["args"]["stack"] for e in events if e.get("ph") == "i" and e["args"].get("failed") and "stack" in e["args"]]
    assert stacks and any(any(f.startswith(f"{SERVER_FUNCTION}+0x") for f in s) for s in stacks)


def test_report_shows_symbol_names(case, tmp_path):
    path, store = case
    out_file = tmp_path / "r.html"
    rc, _, errs = _run(["report", path, "-o", out_file, "--symbols", store])
    assert rc == 0, errs
    assert f"{SERVER_FUNCTION}+0x" in out_file.read_text(encoding="utf-8")


def _no_procedure_names(monkeypatch):
    """An interface database that knows the interface but not its procedures."""
    from rpctrace.knowledge import interfaces

    real = interfaces.lookup

    def lookup(uuid, opnum=None):
        return real(uuid, opnum)[0], None

    monkeypatch.setattr(interfaces, "lookup", lookup)


def test_a_procedure_no_database_names_comes_from_the_server_stack(case, monkeypatch):
    path, store = case
    _no_procedure_names(monkeypatch)
    rc, out, errs = _run(["explain", path, "--symbols", store, "--format", "json"])
    assert rc == 0, errs
    finding = json.loads(out)[0]
    assert finding["interface"]["procedure"] == "PolicyConfigSetDefaultEndpoint"
    assert finding["interface"]["procedure_source"] == "symbols"
    rc, out, errs = _run(["explain", path, "--symbols", store])
    assert f"{SERVER_FUNCTION} (named from symbols" in out
    # without symbols nothing is made up: the opnum stays
    rc, out, errs = _run(["explain", path, "--format", "json"])
    finding = json.loads(out)[0]
    assert finding["interface"]["procedure"] is None and finding["interface"]["procedure_source"] is None


def test_derived_procedures_agree_with_the_database(case):
    """On every call whose server stack runs through the RPC runtime, the function the PDB names
    above the dispatch is the procedure the interface database names for its opnum."""
    from rpctrace import pipeline
    from rpctrace.correlate.procedure import derived_procedure
    from rpctrace.knowledge.interfaces import lookup

    path, store = case
    trace, result = pipeline.calls([path], symbols=store)
    compared = 0
    for call in result.calls:
        derived = derived_procedure(trace, call)
        if derived is None:
            continue
        assert derived == lookup(call.interface, call.opnum)[1], call.id
        compared += 1
    assert compared > 0


def test_calls_json_marks_a_derived_procedure(case, monkeypatch):
    from rpctrace import pipeline

    path, store = case
    _no_procedure_names(monkeypatch)
    trace, result = pipeline.calls([path], symbols=store)
    records = list(pipeline.call_records(trace, result.calls))
    derived = [r for r in records if r.get("procedure_source") == "symbols"]
    assert derived and all(r["procedure"] == "PolicyConfigSetDefaultEndpoint" for r in derived)
    assert all("procedure_source" not in r for r in records if r["procedure"] is None)


@pytest.mark.parametrize("frame, name", [
    ("audiosrv!PolicyConfigSetDefaultEndpoint+0x1e9", "audiosrv!PolicyConfigSetDefaultEndpoint"),
    ("MMDevAPI!CSubEndpointDevice::~CSubEndpointDevice+0x10", "MMDevAPI!CSubEndpointDevice::~CSubEndpointDevice"),
    ('evil!f"; .shell calc; "+0x1', None),
    ("evil!f g+0x1", None),
    ("evil!operator<<+0x1", None),
    ("audiosrv+0x12ef9", None),
])
def test_windbg_breakpoints_only_on_names_a_debugger_takes_as_they_are(frame, name):
    from rpctrace.render.windbg import _symbol_name

    assert _symbol_name(frame) == name
