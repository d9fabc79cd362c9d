"""Saved Microsoft-Windows-RPC events: .evtx (through the evtx package) and XML exports.

No public event log holds Microsoft-Windows-RPC events, so the RPC path is tested on XML exports
built here by hand from the provider's manifest (the event layout: data names per event id), in
the forms wevtutil, Event Viewer and tracerpt write.  The .evtx plumbing runs on the Security
5145 samples in ../shared/samples/evtx (GPL-3.0: read from there, never copied).
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from rpctrace.cli import main
from rpctrace.correlate import call_record, correlate
from rpctrace.errors import InputError
from rpctrace.knowledge import providers as P
from rpctrace.model import ticks_to_iso
from rpctrace.sources import open_source, sniff
from rpctrace.sources.safexml import EventStream, XmlRefused
from rpctrace.sources.winevent import parse_system_time
from rpctrace.trace import load

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"
EVTX_DIR = SHARED / "evtx"
#: the Microsoft-Windows-RPC manifest (Apache-2.0, cyberark/RPCMon), copied into tests/data compressed
MANIFEST_XZ = Path(__file__).resolve().parents[1] / "data" / "rpc-databases" / "Microsoft-Windows-RPC.xml.xz"

AUDIO_IF = "35464382-ad29-4881-9392-b43e55b8f7ac"
RPC_GUID = "{6AD52B32-D609-4BE9-AE07-CE8DAE937E39}"
CLIENT, SERVER = (4242, 4243), (1500, 1501)
ACT_CLIENT = "1b8f6e2a-0000-4000-8000-00000000c11e"
ACT_SERVER = "2c9a7f3b-0000-4000-8000-0000000005e7"

#: event id -> (version, opcode, task, [(data name, value)]) from the manifest's templates
CALL_START = [("InterfaceUuid", "{" + AUDIO_IF.upper() + "}"), ("ProcNum", "71"), ("Protocol", "3"),
              ("NetworkAddress", ""), ("Endpoint", "AudioClientRpc"), ("Options", ""),
              ("AuthenticationLevel", "6"), ("AuthenticationService", "10"), ("ImpersonationLevel", "2")]


def _data(items) -> str:
    return "".join(f'<Data Name="{n}">{v}</Data>' for n, v in items)


def event_xml(record: int, eid: int, ts: str, who: tuple[int, int], items, *, version: int = 1, opcode: int = 0,
              task: int = 0, activity: str | None = None, tracerpt: bool = False) -> str:
    corr = f'<Correlation ActivityID="{{{activity.upper()}}}"/>' if activity else "<Correlation/>"
    cpu = ' ProcessorID="1" KernelTime="0" UserTime="0"' if tracerpt else ""
    rendering = ('<RenderingInfo Culture="en-US"><Opcode>Start</Opcode><Task>RpcClientCall</Task>'
                 "<Provider>Microsoft-Windows-RPC</Provider></RenderingInfo>") if tracerpt else ""
    return (
        '<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System>'
        f'<Provider Name="Microsoft-Windows-RPC" Guid="{RPC_GUID}"/><EventID>{eid}</EventID>'
        f"<Version>{version}</Version><Level>4</Level><Task>{task}</Task><Opcode>{opcode}</Opcode>"
        f'<Keywords>0x4000000000000000</Keywords><TimeCreated SystemTime="{ts}"/>'
        f"<EventRecordID>{record}</EventRecordID>{corr}"
        f'<Execution ProcessID="{who[0]}" ThreadID="{who[1]}"{cpu}/>'
        "<Channel>Microsoft-Windows-RPC/Debug</Channel><Computer>HOST</Computer><Security/></System>"
        f"<EventData>{_data(items)}</EventData>{rendering}</Event>"
    )


def one_call_events(tracerpt: bool = False) -> list[str]:
    """RPC events 16, 14, 5, 6, 8, 7 of one LRPC call rundll32 -> svchost (Audiosrv)."""
    day = "2024-05-01T10:00:"
    return [
        event_xml(1, 16, day + "00.0000001Z", (SERVER[0], 1510),
                  [("Protocol", "ncalrpc"), ("Endpoint", "AudioClientRpc"), ("NetworkAddress", ""),
                   ("PendingQueueSize", "0"), ("EndpointFlags", "0"), ("NicFlags", "0")], opcode=1, task=4),
        event_xml(2, 14, day + "00.0000002Z", (SERVER[0], 1510),
                  [("InterfaceUuid", "{" + AUDIO_IF + "}"), ("TypeMgrUuid", "{00000000-0000-0000-0000-000000000000}"),
                   ("Flags", "0x20"), ("MaxCalls", "1234"), ("SDSize", "4"), ("SD", "01020304")], opcode=1, task=4),
        event_xml(3, 5, day + "01.1234567Z", CLIENT, CALL_START, opcode=1, task=1, activity=ACT_CLIENT,
                  tracerpt=tracerpt),
        event_xml(4, 6, day + "01.1240000Z", SERVER, CALL_START, opcode=1, task=2, activity=ACT_SERVER),
        event_xml(5, 8, day + "01.1290000Z", SERVER, [("Status", "0")], opcode=2, task=2, activity=ACT_SERVER),
        event_xml(6, 7, day + "01.1300000Z", CLIENT, [("Status", "5")], opcode=2, task=1, activity=ACT_CLIENT),
    ]


def wevtutil_form(events: list[str]) -> bytes:
    """``wevtutil qe Microsoft-Windows-RPC/Debug /f:xml``: a bare sequence, no root, UTF-8."""
    return "\r\n".join(events).encode("utf-8")


def event_viewer_form(events: list[str]) -> bytes:
    """Event Viewer "Save as XML": an <Events> root, declared and written as UTF-16 with a BOM."""
    text = '<?xml version="1.0" encoding="utf-16"?>\r\n<Events>' + "\r\n".join(events) + "</Events>"
    return codecs.BOM_UTF16_LE + text.encode("utf-16-le")


def tracerpt_form(events: list[str]) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Events>\n' + "\n".join(events) + "\n</Events>\n").encode()


# ------------------------------------------------------------------------------ the layout


def test_hand_built_names_follow_the_manifest():
    if not MANIFEST_XZ.exists():
        pytest.skip(f"{MANIFEST_XZ} is not here")
    import lzma

    ns = {"m": "http://schemas.microsoft.com/win/2004/08/events"}
    root = ElementTree.fromstring(lzma.decompress(MANIFEST_XZ.read_bytes()))  # the project's own reference file, trusted
    templates = {t.get("tid"): [d.get("name") for d in t.findall("m:data", ns)] for t in root.iter(f"{{{ns['m']}}}template")}
    events = {int(e.get("value")): templates.get(e.get("template")) for e in root.iter(f"{{{ns['m']}}}event")}
    assert events[5] == events[6] == [n for n, _ in CALL_START]
    assert events[7] == events[8] == ["Status"]
    assert events[14] == ["InterfaceUuid", "TypeMgrUuid", "Flags", "MaxCalls", "SDSize", "SD"]
    assert events[16] == ["Protocol", "Endpoint", "NetworkAddress", "PendingQueueSize", "EndpointFlags", "NicFlags"]


# ------------------------------------------------------------------------------ XML exports


@pytest.mark.parametrize("form", [wevtutil_form, event_viewer_form, tracerpt_form])
def test_xml_export_gives_a_call(tmp_path, form):
    path = tmp_path / f"rpc-{form.__name__}.xml"
    path.write_bytes(form(one_call_events(tracerpt=form is tracerpt_form)))
    assert sniff(str(path)) == "eventxml"
    trace = load([path])
    assert [e.kind for e in trace.events] == ["rpc.endpoint_bind", "rpc.interface_register", "rpc.client_start",
                                              "rpc.server_start", "rpc.server_stop", "rpc.client_stop"]
    bind, reg, start, sstart, sstop, stop = trace.events
    assert bind.fields["protocol"] == "ncalrpc" and bind.fields["endpoint"] == "AudioClientRpc"
    assert reg.fields["interface_uuid"] == AUDIO_IF and reg.fields["sd"] == b"\x01\x02\x03\x04"
    assert reg.fields["flags"] == 0x20 and reg.fields["max_calls"] == 1234
    assert start.provider == P.RPC and start.id == 5 and start.version == 1 and start.opcode == 1
    assert (start.pid, start.tid) == CLIENT and start.fields["activity_id"] == ACT_CLIENT
    assert start.fields["interface_uuid"] == AUDIO_IF and start.fields["procnum"] == 71
    assert start.fields["protocol"] == 3 and start.fields["auth_level"] == 6 and start.fields["auth_service"] == 10
    assert ticks_to_iso(start.ts) == "2024-05-01T10:00:01.1234567Z"  # all 7 digits kept
    assert start.cpu == (1 if form is tracerpt_form else None)
    assert stop.fields["status"] == 5 and sstop.fields["status"] == 0
    assert trace.sources[0]["rpc_records"] == 6 and trace.sources[0]["damage"] == []

    result = correlate(trace)
    assert len(result.calls) == 1
    (call,) = result.calls
    assert call.interface == AUDIO_IF and call.opnum == 71 and call.endpoint == "AudioClientRpc"
    assert call.protocol_name == "LRPC" and call.confidence <= 0.5
    assert (call.client_pid, call.client_tid) == CLIENT and (call.server_pid, call.server_tid) == SERVER
    assert call.status == 5
    assert any("rpc-only" in e for e in call.evidence)
    try:
        from rpctrace.knowledge import interfaces
    except ImportError:
        interfaces = None
    names = getattr(interfaces, "lookup", None)
    record = call_record(call, trace, names=names)
    assert record["interface"]["uuid"] == AUDIO_IF
    if names is not None:
        assert record["interface"]["name"]  # e.g. the Audiosrv interface, from the RPC databases


def test_cli_calls_on_xml_export(tmp_path, capsys):
    path = tmp_path / "rpc.xml"
    path.write_bytes(wevtutil_form(one_call_events()))
    code = main(["calls", str(path), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    (rec,) = json.loads(out)
    assert rec["interface"]["uuid"] == AUDIO_IF and rec["opnum"] == 71 and rec["confidence"] <= 0.5


def test_unknown_rpc_version_kept_raw_and_other_events_raw(tmp_path):
    events = one_call_events()
    events.append(event_xml(7, 5, "2024-05-01T10:00:02Z", CLIENT, CALL_START, version=2, opcode=1, task=1))
    events.append(
        '<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System>'
        '<Provider Name="Service Control Manager" Guid="{555908d1-a6d7-4695-8e1e-26931d2012f4}" '
        'EventSourceName="Service Control Manager"/><EventID Qualifiers="16384">7036</EventID><Version>0</Version>'
        '<Level>4</Level><Task>0</Task><Opcode>0</Opcode><Keywords>0x8080000000000000</Keywords>'
        '<TimeCreated SystemTime="2024-05-01T10:00:03.5Z"/><EventRecordID>99</EventRecordID><Correlation/>'
        '<Execution ProcessID="640" ThreadID="700"/><Channel>System</Channel><Computer>HOST</Computer>'
        '<Security/></System><EventData><Data Name="param1">Windows Audio</Data><Data Name="param2">running</Data>'
        "<Binary>410075</Binary></EventData></Event>"
    )
    path = tmp_path / "mixed.xml"
    path.write_bytes(wevtutil_form(events))
    reader = open_source(path)
    got = list(reader.events())
    assert len(got) == 8 and reader.stats.unknown_versions == 1 and reader.stats.raw_records == 2
    odd = next(e for e in got if e.kind == "raw" and e.id == 5)
    assert odd.version == 2 and "version 2" in odd.fields["note"] and odd.fields["ProcNum"] == "71"
    scm = next(e for e in got if e.id == 7036)
    assert scm.kind == "raw" and scm.fields["param1"] == "Windows Audio" and scm.fields["channel"] == "System"
    assert scm.fields["Binary"] == "410075" and scm.provider == "555908d1-a6d7-4695-8e1e-26931d2012f4"


def test_system_time_parsing():
    assert ticks_to_iso(parse_system_time("2020-07-31T07:27:31.7947753Z")) == "2020-07-31T07:27:31.7947753Z"
    assert ticks_to_iso(parse_system_time("2020-07-31T07:27:31.794775300Z")) == "2020-07-31T07:27:31.7947753Z"
    assert ticks_to_iso(parse_system_time("2020-07-31T07:27:31Z")) == "2020-07-31T07:27:31.0000000Z"
    assert ticks_to_iso(parse_system_time("2020-07-31T09:27:31.5+02:00")) == "2020-07-31T07:27:31.5000000Z"
    with pytest.raises(ValueError):
        parse_system_time("yesterday")


# ------------------------------------------------------------------------------ hostile XML

BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<Events><Event><System><Provider Name="x"/><EventID>1</EventID></System><EventData><Data>&lol9;</Data></EventData></Event></Events>
"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE e [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Events><Event><System><Provider Name="x"/><EventID>1</EventID></System><EventData><Data>&xxe;</Data></EventData></Event></Events>
"""


def _cli_error(capsys, path: Path) -> str:
    code = main(["events", str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err, err
    lines = [l for l in err.splitlines() if l.startswith("rpctrace: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("text,words", [
    (BOMB, "DTD"),
    (XXE, "DTD"),
    ("<Events><Event><System><EventID>1</EventID></System><EventData><Data>&xxe;</Data></EventData></Event></Events>",
     "undefined entity"),
    ("<Events><Event><System><EventID>1</EventID></System></Event><Event><System>", "not well-formed"),
])
def test_hostile_xml_is_an_input_error(tmp_path, capsys, text, words):
    path = tmp_path / "hostile.xml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        list(open_source(path).events())
    assert words in info.value.one_line() and str(path) in info.value.one_line()
    assert str(path) in _cli_error(capsys, path)


def test_broken_xml_keeps_what_was_read(tmp_path):
    path = tmp_path / "cut.xml"
    data = wevtutil_form(one_call_events())
    path.write_bytes(data[: len(data) - 40])
    reader = open_source(path)
    got = []
    with pytest.raises(InputError):
        for ev in reader.events():
            got.append(ev)
    assert len(got) == 5  # the events before the damage
    reader = open_source(path, keep_going=True)
    assert len(list(reader.events())) == 5 and len(reader.stats.damage) == 1


def test_xml_limits():
    deep = "<Event>" + "<a>" * 100 + "</a>" * 100 + "</Event>"
    stream = EventStream()
    with pytest.raises(XmlRefused, match="deeper"):
        stream.feed("<r>" + deep + "</r>", True)
    stream = EventStream(max_event_chars=1000)
    with pytest.raises(XmlRefused, match="more than 1000"):
        stream.feed("<r><Event><Data>" + "x" * 5000 + "</Data></Event></r>", True)


# ------------------------------------------------------------------------------ EVTX


def _evtx_samples() -> list[Path]:
    return sorted(EVTX_DIR.glob("*.evtx")) if EVTX_DIR.is_dir() else []


def test_evtx_samples_plumbing():
    samples = _evtx_samples()
    if not samples:
        pytest.skip("../shared/samples/evtx is not here (GPL-3.0 samples are never copied)")
    from evtx import PyEvtxParser

    for path in samples:
        theirs = sum(1 for _ in PyEvtxParser(str(path)).records())
        assert sniff(str(path)) == "evtx"
        reader = open_source(path)
        events = list(reader.events())
        assert len(events) == theirs == reader.stats.records
        for ev in events:
            assert ev.kind == "raw" and ev.id == 5145 and ev.provider == "54849625-5478-4994-a5ba-3e3b0328c30d"
            assert isinstance(ev.pid, int) and isinstance(ev.tid, int) and ev.ts > 0
            assert ev.fields["provider_name"] == "Microsoft-Windows-Security-Auditing"
            assert ev.fields["RelativeTargetName"] in ("svcctl", "protected_storage")
            assert ev.fields["ShareName"] == "\\\\*\\IPC$" and ev.fields["AccessMask"] == "0x12019f"
        trace = load([path])
        assert len(trace.events) == theirs and trace.sources[0]["format"] == "evtx"


def test_garbage_and_truncated_evtx(tmp_path, capsys):
    garbage = tmp_path / "garbage.evtx"
    garbage.write_bytes(b"ElfFile\x00" + bytes(range(256)) * 40)
    with pytest.raises(InputError):
        list(open_source(garbage).events())
    assert str(garbage) in _cli_error(capsys, garbage)
    tiny = tmp_path / "tiny.evtx"
    tiny.write_bytes(b"ElfFile\x00")
    with pytest.raises(InputError):
        open_source(tiny)
    samples = _evtx_samples()
    if not samples:
        return
    data = samples[0].read_bytes()
    cut = tmp_path / "cut.evtx"
    cut.write_bytes(data[:5000])
    with pytest.raises(InputError, match="truncated"):
        list(open_source(cut).events())
    reader = open_source(cut, keep_going=True)
    list(reader.events())
    assert reader.stats.damage and "truncated" in reader.stats.damage[0].one_line()
    bad_version = tmp_path / "v9.evtx"
    head = bytearray(data)
    head[38:40] = (9).to_bytes(2, "little")
    bad_version.write_bytes(bytes(head))
    with pytest.raises(InputError, match="unsupported EVTX format version 9"):
        open_source(bad_version)
