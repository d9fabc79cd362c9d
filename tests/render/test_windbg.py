"""The WinDbg/livekd script: PORT_MESSAGE offsets per architecture checked against an independent
ctypes model of the structure, the argument slots against the calling conventions, and the
AudioSrv call's script against what the article needs."""

from __future__ import annotations

import ctypes as C
import json
import re

import pytest

from rpctrace import synth
from rpctrace.cli import main
from rpctrace.render.windbg import arch_for as _arch_for
from rpctrace.correlate import call_record, correlate
from rpctrace.knowledge.status import ntstatus_name
from rpctrace.model import Event
from rpctrace.render.windbg import LAYOUTS, layout, script_for_call, script_for_client
from rpctrace.trace import load
from rpctrace.trace.model import Trace


def arch_for(trace, pid):
    """The architecture `rpctrace windbg` picks for process ``pid`` of ``trace``."""
    return _arch_for(trace.pointer_size(), trace.is_wow64(pid))

PID, TID = 10068, 10892  # the article's client is rundll32; any ids do


def port_message(pointer, handle):
    """PORT_MESSAGE as phnt ntlpcapi.h declares it, with ``pointer`` for SIZE_T and ``handle``
    for the CLIENT_ID handles (PORT_MESSAGE64: both ULONGLONG)."""

    class CLIENT_ID(C.Structure):
        _fields_ = [("UniqueProcess", handle), ("UniqueThread", handle)]

    class S1(C.Structure):
        _fields_ = [("DataLength", C.c_int16), ("TotalLength", C.c_int16)]

    class U1(C.Union):
        _fields_ = [("s1", S1), ("Length", C.c_uint32)]

    class S2(C.Structure):
        _fields_ = [("Type", C.c_int16), ("DataInfoOffset", C.c_int16)]

    class U2(C.Union):
        _fields_ = [("s2", S2), ("ZeroInit", C.c_uint32)]

    class U3(C.Union):
        _fields_ = [("ClientId", CLIENT_ID), ("DoNotUseThisField", C.c_double)]

    class U4(C.Union):
        _fields_ = [("ClientViewSize", pointer), ("CallbackId", C.c_uint32)]

    class PORT_MESSAGE(C.Structure):
        _fields_ = [("u1", U1), ("u2", U2), ("u3", U3), ("MessageId", C.c_uint32), ("u4", U4)]

    return {
        "UniqueProcess": PORT_MESSAGE.u3.offset + CLIENT_ID.UniqueProcess.offset,
        "UniqueThread": PORT_MESSAGE.u3.offset + CLIENT_ID.UniqueThread.offset,
        "field_size": C.sizeof(handle),
        "MessageId": PORT_MESSAGE.MessageId.offset,
        "sizeof": C.sizeof(PORT_MESSAGE),
    }


MODELS = {
    "x86": port_message(C.c_uint32, C.c_uint32),  # 32-bit: SIZE_T and HANDLE are 4 bytes
    "x64": port_message(C.c_uint64, C.c_uint64),
    "wow64": port_message(C.c_uint64, C.c_uint64),  # PORT_MESSAGE64 (CLIENT_ID64, ULONGLONG)
}
#: the pointer size of the code the breakpoint stops in (WOW64: the 64-bit ntdll)
POINTER = {"x86": 4, "x64": 8, "wow64": 8}
WIDTH = {"dwo": 4, "qwo": 8}


def _width(accessor: str, arch: str) -> int:
    return WIDTH.get(accessor, POINTER[arch])  # poi reads a pointer of the target


def test_ctypes_model_matches_the_reference_table():
    # facts §5: x86 +0x8/+0xC/+0x10, 0x18 - x64 and PORT_MESSAGE64 +0x8/+0x10/+0x18, 0x28
    assert MODELS["x86"] == {"UniqueProcess": 8, "UniqueThread": 0xC, "field_size": 4, "MessageId": 0x10, "sizeof": 0x18}
    assert MODELS["x64"] == {"UniqueProcess": 8, "UniqueThread": 0x10, "field_size": 8, "MessageId": 0x18, "sizeof": 0x28}
    assert MODELS["wow64"] == MODELS["x64"]


@pytest.mark.parametrize("arch", ["x86", "x64", "wow64"])
def test_layout_table_matches_ctypes(arch):
    lay, model = layout(arch), MODELS[arch]
    assert (lay.client_pid_offset, lay.client_tid_offset, lay.client_id_field_size, lay.message_id_offset,
            lay.sizeof) == (model["UniqueProcess"], model["UniqueThread"], model["field_size"], model["MessageId"],
                            model["sizeof"])
    assert _width(lay.read, arch) == model["field_size"]


@pytest.mark.parametrize("arch", ["x86", "x64", "wow64"])
def test_script_offsets_match_ctypes(arch):
    model = MODELS[arch]
    text = script_for_client(PID, TID, arch, endpoint="AudioClientRpc")
    # the conditional breakpoint compares ClientId fields read through $t0 with the client's ids
    found = re.findall(r"\b(poi|dwo|qwo)\(@\$t0\+0x([0-9a-f]+)\) == 0x([0-9a-f]+)", text)
    assert found, text
    by_value = {int(v, 16): (acc, int(off, 16)) for acc, off, v in found}
    assert set(by_value) == {PID, TID}
    acc, off = by_value[PID]
    assert off == model["UniqueProcess"] and _width(acc, arch) == model["field_size"]
    acc, off = by_value[TID]
    assert off == model["UniqueThread"] and _width(acc, arch) == model["field_size"]
    # the layout line of the header (comment lines wrap: join the continuations)
    text = re.sub(r"\n\$\$   ", " ", text)
    m = re.search(r"MessageId at \+0x([0-9a-f]+) \(4 bytes\), header size 0x([0-9a-f]+)", text)
    assert (int(m.group(1), 16), int(m.group(2), 16)) == (model["MessageId"], model["sizeof"])
    m = re.search(r"ClientId\.UniqueProcess at \+0x([0-9a-f]+) \((\d) bytes\), ClientId\.UniqueThread at \+0x([0-9a-f]+)", text)
    assert (int(m.group(1), 16), int(m.group(2)), int(m.group(3), 16)) == (
        model["UniqueProcess"], model["field_size"], model["UniqueThread"])


@pytest.mark.parametrize("arch", ["x86", "x64", "wow64"])
def test_receive_message_argument_slots(arch):
    """ReceiveMessage is argument 5 of NtAlpcSendWaitReceivePort (8 arguments)."""
    ptr = POINTER[arch]
    text = script_for_client(PID, TID, arch)
    slots = re.findall(r"r \$t0 = (poi|dwo|qwo)\(@([er]sp)([+-])0x([0-9a-f]+)\)", text)
    assert len(slots) == 2, slots
    (acc1, sp1, sign1, off1), (acc2, sp2, sign2, off2) = slots
    entry = int(off1, 16) * (1 if sign1 == "+" else -1)
    back = int(off2, 16) * (1 if sign2 == "+" else -1)
    assert sp1 == sp2 == ("esp" if ptr == 4 else "rsp")
    assert _width(acc1, arch) == _width(acc2, arch) == ptr
    if ptr == 8:
        # x64: return address, then a 32-byte home area for rcx rdx r8 r9, then argument 5
        assert entry == 8 + 4 * 8 == 0x28
        # after ret, rsp is 8 higher: the caller's argument-5 slot
        assert back == entry - 8 == 0x20
        assert "poi(@rsp)" in text or "qwo(@rsp)" in text  # the return address breakpoint
    else:
        # x86 stdcall: return address, then arguments 1-4 on the stack, then argument 5
        assert entry == 4 + 4 * 4 == 0x14
        # ret 0x20 pops the return address and the 8 arguments
        assert back == entry - (4 + 8 * 4) == -0x10
        assert "dwo(@esp)" in text


def test_x64_mentions_the_articles_rdi_form_with_the_same_offsets():
    text = script_for_client(PID, TID, "x64")
    m = re.search(r"poi\(@rdi\+0x([0-9a-f]+)\) == 0x([0-9a-f]+)\) and \(poi\(@rdi\+0x([0-9a-f]+)\) == 0x([0-9a-f]+)", text)
    assert m
    assert (int(m.group(1), 16), int(m.group(2), 16)) == (MODELS["x64"]["UniqueProcess"], PID)
    assert (int(m.group(3), 16), int(m.group(4), 16)) == (MODELS["x64"]["UniqueThread"], TID)
    assert "nonvolatile" in text and "caller" in text


def test_wow64_uses_the_64_bit_side():
    text = script_for_client(PID, TID, "wow64")
    assert "!wow64exts.sw" in text and ".effmach amd64" in text and "PORT_MESSAGE64" in text
    assert "wow64!whNtAlpcSendWaitReceivePort" in text


def _commands(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith(("$$", "*"))]


def _check_pasteable(text: str) -> None:
    for line in text.splitlines():
        if line.startswith("$$"):
            assert ";" not in line, line  # a semicolon would end the $$ comment
    for line in _commands(text):
        # quotes and braces balance in every command (the nested breakpoint escapes its quotes)
        unescaped = re.sub(r'\\"', "", line)
        assert unescaped.count('"') % 2 == 0, line
        assert line.count("{") == line.count("}"), line


@pytest.mark.parametrize("arch", ["x86", "x64", "wow64"])
def test_radix_and_pasteable(arch):
    text = script_for_client(PID, TID, arch, endpoint="AudioClientRpc")
    _check_pasteable(text)
    assert "0n10068" in text and "0x2754" in text and "0n10892" in text and "0x2a8c" in text
    # numbers in commands carry their radix: a bare decimal pid would be read as hex
    for line in _commands(text):
        assert not re.search(r"\b10068\b|\b10892\b", line), line
    for step in ("!process 0x2754 0", ".process /r /p", "!handle 0 3", "!alpc /lpp", "!alpc /p", "!alpc /lpc",
                 "~*k", "bp ntdll!NtAlpcSendWaitReceivePort", "RPCRT4!Invoke"):
        assert step in text, step


@pytest.fixture(scope="module")
def audiosrv(tmp_path_factory):
    d = tmp_path_factory.mktemp("windbg")
    etl, truth = d / "a.etl", d / "a.truth.json"
    synth.synthesize("audiosrv-access-denied", etl, truth, seed=11)
    trace = load([etl])
    calls = correlate(trace).calls
    failing = [c for c in calls if any(op.fields.get("status") == 0xC0000022 for op in c.failures)]
    assert len(failing) == 1
    return etl, json.loads(truth.read_text()), trace, failing[0]


def test_audiosrv_call_script(audiosrv, capsys):
    etl, truth, trace, call = audiosrv
    record = call_record(call, trace, status_name=ntstatus_name)
    text = script_for_call(record, "x64")
    _check_pasteable(text)
    pid, tid = record["client"]["pid"], record["client"]["tid"]
    assert record["client"]["image"] == "rundll32.exe"
    for needle in ("AudioClientRpc", f"0x{pid:x}", f"0n{pid}", f"0x{tid:x}", f"0n{tid}",
                   "NtAlpcSendWaitReceivePort", "RPCRT4!Invoke", "!process 0 0 rundll32.exe",
                   f"!process 0x{record['server']['pid']:x} 6", "!process 0 0 svchost.exe",
                   f"~~[0x{record['server']['tid']:x}]s", "0xc0000022", "STATUS_ACCESS_DENIED",
                   "MMDevices\\Audio\\Render", "~. bp ntdll!NtOpenKeyEx",
                   f"poi(@$t0+0x8) == 0x{pid:x}", f"poi(@$t0+0x10) == 0x{tid:x}"):
        assert needle in text, needle
    # through the command: the same ids, the arch from the trace (64-bit, no Wow64 flag), and the
    # failing operation's user-mode stack as ln lines
    assert main(["windbg", str(etl), "--call", str(call.id)]) == 0
    out = capsys.readouterr().out
    assert "(x64)" in out.splitlines()[0]
    assert f"poi(@$t0+0x8) == 0x{pid:x}" in out
    lns = [line for line in out.splitlines() if line.startswith("ln ")]
    assert lns and lns[0].startswith("ln ntdll+0x") and any(line.startswith("ln audiosrv+0x") for line in lns)
    assert not any("ntoskrnl" in line for line in lns)


def test_arch_from_trace(tmp_path, capsys):
    etl = tmp_path / "x86.etl"
    synth.synthesize("audiosrv-access-denied", etl, None, seed=2, pointer_size=4)
    trace = load([etl])
    call = [c for c in correlate(trace).calls if any(op.fields.get("status") == 0xC0000022 for op in c.failures)][0]
    assert arch_for(trace, call.server_pid) == "x86"
    assert main(["windbg", str(etl), "--call", str(call.id)]) == 0
    out = capsys.readouterr().out
    assert f"dwo(@$t0+0xc) == 0x{call.client_tid:x}" in out and "dwo(@esp+0x14)" in out
    assert main(["windbg", str(etl), "--call", str(call.id), "--arch", "wow64"]) == 0
    assert "qwo(@$t0+0x10)" in capsys.readouterr().out


def _proc(pid, flags, size=8):
    return [
        Event(1, None, None, 0, "68fdd900-4a3e-11d1-84f4-0000f80464e3", 0, 0, 2, "trace.header", {"pointer_size": size}),
        Event(2, pid, None, 0, "3d6fa8d0-fe05-11d0-9dda-00c04fd7ba7c", 0, 3, 4, "process.rundown", {"flags": flags}),
    ]


def test_arch_for_wow64_flag():
    assert arch_for(Trace(_proc(50, 2)), 50) == "wow64"
    assert arch_for(Trace(_proc(50, 2)), 51) == "x64"
    assert arch_for(Trace(_proc(50, 4)), 50) == "x64"  # Protected, not Wow64
    assert arch_for(Trace(_proc(50, 0, size=4)), 50) == "x86"
    assert arch_for(Trace([]), None) == "x64"


def test_hostile_trace_strings_stay_in_comments():
    record = {
        "id": 1,
        "client": {"pid": 1, "tid": 2, "image": 'evil.exe; .shell calc\n.shell calc'},
        "server": {"pid": 3, "tid": 4, "image": "svc host.exe\r\n!process 0 7", "service": "a;b"},
        "endpoint": 'ep"; .shell calc; "\n.shell',
        "interface": {"uuid": "x\n.shell"},
        "opnum": 1,
        "alpc_message_id": 5,
        "failures": [{"kind": "registry.open", "path": "HKLM\\a;\n.shell", "status": 0xC0000022,
                      "status_name": "STATUS_ACCESS_DENIED", "stack": ["evil;.shell+0x1", "ok+0x10", "ntoskrnl+0x5"]}],
    }
    text = script_for_call(record, "x64")
    _check_pasteable(text)
    for line in _commands(text):
        assert ".shell" not in line and "evil" not in line and "svc host" not in line, line
    assert "ln ok+0x10" in text and "ln ntoskrnl" not in text


def test_bad_input():
    with pytest.raises(ValueError):
        script_for_client(1, 2, "arm64")
    with pytest.raises(ValueError):
        script_for_client(-1, 2, "x64")
    with pytest.raises(ValueError):
        script_for_call({"id": 9, "client": {"pid": None, "tid": None}}, "x64")
    assert set(LAYOUTS) == {"x86", "x64", "wow64"}


def test_cli_forms_and_errors(audiosrv, capsys):
    assert main(["windbg", "--client-pid", "0x2754", "--client-tid", "10892", "--arch", "x86",
                 "--endpoint", "AudioClientRpc"]) == 0
    out = capsys.readouterr().out
    assert "dwo(@$t0+0x8) == 0x2754" in out and "0n10892" in out and "AudioClientRpc" in out
    for argv in (["windbg"], ["windbg", "--call", "1"], ["windbg", str(audiosrv[0])],
                 ["windbg", str(audiosrv[0]), "--call", "99999"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("rpctrace: error:"), (argv, err)


def test_arch_for_wow64_flag_of_a_streamed_trace():
    """A streamed trace keeps no events: the process table notes the Wow64 flag as the process
    events pass (what `windbg --call` reads now that it numbers calls as `calls` does)."""
    from rpctrace.trace.model import TableBuilder

    tables = TableBuilder()
    for ev in _proc(50, 2):
        tables.add(ev)
    trace = Trace([], sources=[{"path": "x.etl", "header": {"pointer_size": 8}}])
    tables.finish(trace)
    assert trace.is_wow64(50) and not trace.is_wow64(51)
    assert arch_for(trace, 50) == "wow64"
