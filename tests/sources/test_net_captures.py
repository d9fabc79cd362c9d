"""Real DCE/RPC captures: every request/response pair checked against tshark's decoding.

The expected values are Wireshark's (tshark 4.0.17, Debian 12) decoding of the same files, produced
by ``tools/tshark_expected.py`` and written here, so the tests need no tshark: for each request,
(request frame, response frame or None, call id, opnum, interface UUID from tshark's own bind
decoding, round trip in microseconds from tshark's frame times, fault status).  For
dcerpc_synthetic.pcap tshark was told ``-d tcp.port==445,dcerpc`` (that file carries DCE/RPC
straight on port 445, which rpctrace recognizes by content and tshark by port).

The captures (tests/data/net, README there): Zeek's test traces (BSD-3-Clause) and Arkime's
(Apache-2.0).  What they cover: Netlogon over TCP with Netlogon secure-channel auth and packet
privacy (dce_rpc_netlogon), an authenticated (SPNEGO/NTLM) bind with alter_context
(dce_rpc_ntlm), a Kerberos-authenticated bind to port 135 with a DCOM activation
(kerberos135_auth), DRSUAPI with privacy and a secondary address naming a pipe
(cs_window7-join_stream092), named pipes over SMB1 (raw_ntlm_in_smb: srvsvc, lsarpc) and SMB2
(smb2-zero-byte-error-ioctl: srvsvc, lsarpc), a connection captured after its bind
(mapi-first60: interface unknown, opnum and call id known), and binds rejected, requests never
answered, faults (dcerpc_synthetic).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rpctrace.correlate.remote import wire_calls
from rpctrace.knowledge.interfaces import lookup
from rpctrace.sources import open_source, sniff
from rpctrace.sources.net import NetReader

DATA = Path(__file__).resolve().parents[1] / "data" / "net"

#: tshark's decoding (see the module docstring)
TSHARK = {
    "cs_window7-join_stream092.pcap": [(11, 12, 2, 0, 'e3514235-4b06-11d1-ab04-00c04fc2dcd2', 5544, None), (13, 14, 3, 12, 'e3514235-4b06-11d1-ab04-00c04fc2dcd2', 788, None), (15, 16, 4, 1, 'e3514235-4b06-11d1-ab04-00c04fc2dcd2', 580, None)],
    "dce_rpc_netlogon.pcapng": [(3, 4, 2, 45, '12345678-1234-abcd-ef00-01234567cffb', 758, None)],
    "dce_rpc_ntlm.pcapng": [],
    "dcerpc_synthetic.pcap": [(6, None, 1, 3, 'e3514235-4b06-11d1-ab04-00c04fc2dcd2', None, None), (13, 14, 1, 5, '12345778-1234-abcd-ef00-0123456789ac', 1000000, 469827586), (33, None, 1, 21, '4b324fc8-1670-01d3-1278-5a47bf6ee188', None, None), (40, None, 1, 0, '1ff70682-0a51-30e8-076d-740be8cee98b', None, None), (47, None, 1, 2, '338cd001-2244-31f1-aaaa-900038001003', None, None), (54, 55, 1, 7, 'c681d488-d850-11d0-8c52-00c04fd90f7e', 1000000, None), (61, 62, 1, 8, 'df1941c5-fe89-4e79-bf10-463657acf44d', 1000000, None), (68, 69, 1, 9, '12345778-1234-abcd-ef00-0123456789ab', 1000000, None), (75, 76, 1, 10, '6bffd098-a112-3610-9833-46c3f87e345a', 1000000, None), (82, 83, 1, 11, '3919286a-b10c-11d0-9ba8-00c04fd92ef5', 1000000, None), (89, 90, 1, 12, 'e1af8308-5d1f-11c9-91a4-08002b14a0fa', 1000000, None), (96, 97, 1, 13, '86d35949-83c9-4044-b424-db363231fd0c', 1000000, None), (103, 104, 1, 14, '00000131-0000-0000-c000-000000000046', 1000000, None), (110, 111, 1, 15, '00000134-0000-0000-c000-000000000046', 1000000, None), (117, 118, 1, 16, '000001a0-0000-0000-c000-000000000046', 1000000, None), (124, 125, 1, 99, 'deadbeef-cafe-babe-1234-567890abcdef', 1000000, None)],
    "kerberos135_auth.pcapng": [(10, 11, 8, 4, '000001a0-0000-0000-c000-000000000046', 606, None)],
    "mapi-first60.pcap": [(3, 4, 6439, 2, None, 1375, None), (5, 6, 6440, 2, None, 875, None), (7, 8, 6441, 2, None, 2374, None), (9, 11, 6442, 2, None, 2624, None), (12, 14, 6443, 2, None, 13117, None), (16, 17, 6444, 2, None, 48094, None), (18, 19, 6445, 2, None, 3498, None), (20, 21, 6446, 2, None, 1124, None), (22, 23, 6447, 2, None, 56965, None), (24, 25, 6448, 2, None, 2748, None), (26, 27, 6449, 2, None, 999, None), (28, 29, 6450, 2, None, 40600, None), (30, 31, 6451, 2, None, 47097, None), (32, 33, 6452, 2, None, 1375, None), (34, 35, 6453, 2, None, 874, None), (36, 37, 6454, 2, None, 8868, None), (38, 39, 6455, 2, None, 6997, None), (40, 42, 6456, 2, None, 17863, None), (44, 46, 6457, 2, None, 41474, None), (48, 49, 6458, 2, None, 3497, None), (50, 51, 6459, 2, None, 1124, None), (52, 56, 6460, 2, None, 56839, None), (57, 58, 6461, 2, None, 3622, None), (59, 60, 6462, 2, None, 999, None)],
    "raw_ntlm_in_smb.pcap": [(34, 35, 2, 15, '4b324fc8-1670-01d3-1278-5a47bf6ee188', 244, None), (57, 58, 4, 45, '12345778-1234-abcd-ef00-0123456789ab', 257, None), (60, 61, 6, 44, '12345778-1234-abcd-ef00-0123456789ab', 269, None), (63, 64, 7, 14, '12345778-1234-abcd-ef00-0123456789ab', 230, None), (66, 67, 8, 0, '12345778-1234-abcd-ef00-0123456789ab', 173, None)],
    "smb2-zero-byte-error-ioctl.pcapng": [(59, 61, 0, 15, '4b324fc8-1670-01d3-1278-5a47bf6ee188', 10310, None), (104, 106, 2, 45, '12345778-1234-abcd-ef00-0123456789ab', 2013, None), (113, 114, 4, 44, '12345778-1234-abcd-ef00-0123456789ab', 446, None), (119, 120, 5, 14, '12345778-1234-abcd-ef00-0123456789ab', 801, None), (125, 126, 6, 0, '12345778-1234-abcd-ef00-0123456789ab', 434, None), (131, 132, 7, 44, '12345778-1234-abcd-ef00-0123456789ab', 496, None), (137, 138, 8, 14, '12345778-1234-abcd-ef00-0123456789ab', 649, None), (143, 144, 9, 0, '12345778-1234-abcd-ef00-0123456789ab', 454, None)],
}


def _calls(name: str):
    with NetReader(DATA / name) as reader:
        events = list(reader.events())
        calls, counts = wire_calls(events)
    return events, calls, counts, reader.stats


def _mine(calls):
    return [(c.wire.request_frame, c.wire.response_frame, c.wire.call_id, c.opnum, c.interface,
             (c.end - c.start) // 10 if c.end is not None else None, c.status if c.wire.fault else None)
            for c in calls]


@pytest.mark.parametrize("name", sorted(TSHARK))
def test_every_call_matches_tshark(name):
    events, calls, counts, stats = _calls(name)
    assert _mine(calls) == TSHARK[name]
    assert stats.stopped is None


@pytest.mark.parametrize("name", sorted(TSHARK))
def test_sniffed_as_capture(name):
    assert sniff(str(DATA / name)) == "pcap"
    source = open_source(DATA / name)
    try:
        assert isinstance(source, NetReader)
    finally:
        source.close()


def test_netlogon_over_tcp():
    events, calls, _counts, _stats = _calls("dce_rpc_netlogon.pcapng")
    (call,) = calls
    assert call.protocol_name == "TCP" and call.endpoint == "49676"
    w = call.wire
    assert (w.client_address, w.client_port, w.server_address, w.server_port) == ("10.10.10.121", 58774, "10.10.10.100", 49676)
    assert lookup(call.interface, call.opnum) == ("netlogon", "NetrLogonSamLogonWithFlags")
    assert (call.auth_service, call.auth_level) == (68, 6)  # Netlogon secure channel, packet privacy
    assert call.status == 0 and (call.end - call.start) == 7580  # 758 us
    ack = next(e for e in events if e.kind == "net.rpc_bind_ack")
    # contexts 0 and 2 are refused (transfer syntax, bind-time feature negotiation); 1 is accepted
    assert [r["result"] for r in ack.fields["results"]] == [2, 0, 3]
    assert ack.fields["secondary_address"] == "49676"


def test_authenticated_bind():
    events, calls, _c, _s = _calls("dce_rpc_ntlm.pcapng")
    assert calls == []  # binds only
    binds = [e for e in events if e.kind == "net.rpc_bind"]
    assert [b.fields["alter_context"] for b in binds] == [False, True, True]
    assert {(b.fields["auth_type"], b.fields["auth_level"]) for b in binds} == {(9, 5)}  # SPNEGO, integrity
    assert binds[0].fields["contexts"][0]["interface_uuid"] == "00000143-0000-0000-c000-000000000046"


def test_kerberos_bind_on_port_135():
    _e, calls, _c, _s = _calls("kerberos135_auth.pcapng")
    (call,) = calls
    assert lookup(call.interface, call.opnum) == ("IRemoteSCMActivator", "RemoteCreateInstance")
    assert call.endpoint == "135" and call.auth_service == 9 and call.auth_level == 2
    assert call.wire.interface_source == "alter_context"


def test_secondary_address_names_a_pipe():
    events, calls, _c, _s = _calls("cs_window7-join_stream092.pcap")
    ack = next(e for e in events if e.kind == "net.rpc_bind_ack")
    assert ack.fields["secondary_address"] == "\\PIPE\\drsuapi"
    assert [lookup(c.interface, c.opnum)[1] for c in calls] == ["IDL_DRSBind", "IDL_DRSCrackNames", "IDL_DRSUnbind"]


@pytest.mark.parametrize("name, smb", [("raw_ntlm_in_smb.pcap", 1), ("smb2-zero-byte-error-ioctl.pcapng", 2)])
def test_named_pipes(name, smb):
    events, calls, _c, _s = _calls(name)
    assert {c.protocol_name for c in calls} == {"NP"}
    pipes = [(c.wire.pipe, lookup(c.interface, c.opnum)[1]) for c in calls]
    assert pipes[0] == ("srvsvc", "NetrShareEnum")
    assert ("lsarpc", "LsarOpenPolicy2") in pipes and ("lsarpc", "LsarLookupNames") in pipes
    assert all(c.endpoint == "\\PIPE\\" + c.wire.pipe for c in calls)
    opens = [e for e in events if e.kind == "net.pipe_open"]
    assert [o.fields["pipe"] for o in opens] == ["srvsvc", "lsarpc"]
    assert all(c.wire.server_port == 445 for c in calls)
    # SMB1 file ids are 16 bits, SMB2's 128
    assert {len(c.wire.connection.rsplit("/", 1)[1]) for c in calls} == {4 if smb == 1 else 32}


def test_connection_captured_after_its_bind():
    _e, calls, counts, _s = _calls("mapi-first60.pcap")
    assert len(calls) == 24 and {c.opnum for c in calls} == {2}
    assert all(c.interface is None for c in calls)
    assert all("interface unknown" in " ".join(c.evidence) for c in calls)
    assert counts["orphan_responses"] == 1  # frame 2 answers a request sent before the capture


def test_rejected_bind_unanswered_requests_and_faults():
    events, calls, counts, _s = _calls("dcerpc_synthetic.pcap")
    nak = next(e for e in events if e.kind == "net.rpc_bind_nak")
    assert (nak.fields["frame"], nak.fields["reject_reason"], nak.fields["reject_reason_name"]) == (
        20, 0, "reason_not_specified")
    assert counts["binds_rejected"] == 1
    unanswered = [c for c in calls if c.end is None]
    assert [c.wire.request_frame for c in unanswered] == [6, 33, 40, 47]
    assert all("no response captured" in " ".join(c.evidence) for c in unanswered)
    fault = next(c for c in calls if c.wire.fault)
    assert (fault.status, fault.wire.fault_name) == (0x1C010002, "nca_s_op_rng_error")
