"""Connection-oriented DCE/RPC (ncacn_ip_tcp, ncacn_np): PDU framing, associations, calls.

Layouts from C706 (DCE 1.1 RPC) chapter 12 and [MS-RPCE] 2.2.2: a 16-byte common header
(version 5.0/5.1, packet type, flags, data representation, fragment length, auth length, call
id), a body per packet type, and an optional auth verifier (8-byte ``sec_trailer`` + token) at
the end of the fragment.  rpctrace needs headers only: stubs are never decoded (they are often
encrypted: packet privacy) except the endpoint mapper's ``ept_map`` answer (:mod:`.epm`), which
names the port an interface listens on.

One :class:`PduStream` per direction cuts a byte stream (a TCP direction, or the reads / writes
of one named pipe) into PDUs; one :class:`Association` per connection or pipe keeps the
presentation contexts (bind / alter_context -> interface UUID and version, accepted by
bind_ack / alter_context_resp), the auth type and level, the secondary address, and the calls in
flight, and emits ``net.*`` events through a callback.  Everything is bounded: a fragment is at
most 65,535 bytes (u16), a stream buffers at most one fragment, an association keeps at most
:data:`MAX_CONTEXTS` contexts and :data:`MAX_CALLS` calls in flight, and stub bytes are kept only
for endpoint-mapper answers (at most :data:`MAX_EPM_STUB`).
"""

from __future__ import annotations

import struct
import uuid as _uuid
from typing import Any, Callable

from rpctrace.sources.layout import Layout

__all__ = ["Association", "PduStream", "looks_like_pdu", "PTYPES", "AUTH_TYPES", "AUTH_LEVELS", "fault_name"]

_HEADER_FIELDS = (
    ("rpc_vers", "B"), ("rpc_vers_minor", "B"), ("ptype", "B"), ("pfc_flags", "B"), ("drep", "4s"),
    ("frag_length", "H"), ("auth_length", "H"), ("call_id", "I"),
)  # fmt: skip
#: the common header, little- and big-endian (drep[0] & 0x10 says which)
HEADER = {True: Layout("co_header", "<", _HEADER_FIELDS), False: Layout("co_header", ">", _HEADER_FIELDS)}
HEADER_SIZE = 16

_REQUEST = (("alloc_hint", "I"), ("p_cont_id", "H"), ("opnum", "H"))
_RESPONSE = (("alloc_hint", "I"), ("p_cont_id", "H"), ("cancel_count", "B"), ("_reserved", "x"))
_FAULT = _RESPONSE + (("status", "I"), ("_reserved2", "4x"))
_BIND = (("max_xmit_frag", "H"), ("max_recv_frag", "H"), ("assoc_group_id", "I"), ("n_context_elem", "B"),
         ("_reserved", "3x"))
_CONTEXT_ELEM = (("p_cont_id", "H"), ("n_transfer_syn", "B"), ("_reserved", "x"), ("if_uuid", "16s"),
                 ("if_version", "H"), ("if_version_minor", "H"))
_BIND_ACK = (("max_xmit_frag", "H"), ("max_recv_frag", "H"), ("assoc_group_id", "I"), ("sec_addr_length", "H"))
_RESULT_LIST = (("n_results", "B"), ("_reserved", "3x"))
_RESULT = (("result", "H"), ("reason", "H"), ("transfer_uuid", "16s"), ("transfer_version", "I"))
_BIND_NAK = (("reject_reason", "H"),)
_AUTH_VERIFIER = (("auth_type", "B"), ("auth_level", "B"), ("auth_pad_length", "B"), ("auth_reserved", "B"),
                  ("auth_context_id", "I"))


def _pair(name: str, fields: tuple) -> dict[bool, Layout]:
    return {True: Layout(name, "<", fields), False: Layout(name, ">", fields)}


REQUEST = _pair("request", _REQUEST)
RESPONSE = _pair("response", _RESPONSE)
FAULT = _pair("fault", _FAULT)
BIND = _pair("bind", _BIND)
CONTEXT_ELEM = _pair("p_cont_elem", _CONTEXT_ELEM)
BIND_ACK = _pair("bind_ack", _BIND_ACK)
RESULT_LIST = _pair("p_result_list", _RESULT_LIST)
RESULT = _pair("p_result", _RESULT)
BIND_NAK = _pair("bind_nak", _BIND_NAK)
AUTH_VERIFIER = _pair("sec_trailer", _AUTH_VERIFIER)
TRANSFER_SYNTAX_SIZE = 20

PTYPES = {
    0: "request", 1: "ping", 2: "response", 3: "fault", 4: "working", 5: "nocall", 6: "reject", 7: "ack",
    8: "cl_cancel", 9: "fack", 10: "cancel_ack", 11: "bind", 12: "bind_ack", 13: "bind_nak",
    14: "alter_context", 15: "alter_context_resp", 16: "auth3", 17: "shutdown", 18: "co_cancel", 19: "orphaned",
}  # fmt: skip
#: packet types a connection-oriented stream carries (C706 12.6.4)
CO_PTYPES = frozenset({0, 2, 3, 11, 12, 13, 14, 15, 16, 17, 18, 19})
PFC_FIRST_FRAG = 0x01
PFC_LAST_FRAG = 0x02
PFC_OBJECT_UUID = 0x80

#: RPC_C_AUTHN_* ([MS-RPCE] 2.2.1.1.7): the same numbers the ETW events' AuthenticationService use
AUTH_TYPES = {0: "none", 9: "negotiate", 10: "ntlm", 14: "schannel", 16: "kerberos", 68: "netlogon", 255: "default"}
#: RPC_C_AUTHN_LEVEL_* ([MS-RPCE] 2.2.1.1.8)
AUTH_LEVELS = {1: "none", 2: "connect", 3: "call", 4: "packet", 5: "packet_integrity", 6: "packet_privacy"}
#: p_cont_def_result_t and p_provider_reason_t (C706 12.6.3.1)
BIND_RESULTS = {0: "acceptance", 1: "user_rejection", 2: "provider_rejection", 3: "negotiate_ack"}
BIND_RESULT_REASONS = {0: "reason_not_specified", 1: "abstract_syntax_not_supported",
                       2: "proposed_transfer_syntaxes_not_supported", 3: "local_limit_exceeded"}
#: p_reject_reason_t of bind_nak (C706 12.6.3.1)
REJECT_REASONS = {0: "reason_not_specified", 1: "temporary_congestion", 2: "local_limit_exceeded",
                  3: "called_paddr_unknown", 4: "protocol_version_not_supported", 5: "default_context_not_supported",
                  6: "user_data_not_readable", 7: "no_psap_available", 8: "authentication_type_not_recognized",
                  9: "invalid_checksum"}
#: NCA status codes a fault can carry (C706 appendix E); Windows servers also put Win32 codes
#: (5 = access denied, 0x6f7 = bad stub data ...) in faults: those are named by the knowledge base
NCA_STATUS = {
    0x1C000001: "nca_s_fault_int_div_by_zero", 0x1C000002: "nca_s_fault_addr_error",
    0x1C000003: "nca_s_fault_fp_div_zero", 0x1C000004: "nca_s_fault_fp_underflow",
    0x1C000005: "nca_s_fault_fp_overflow", 0x1C000006: "nca_s_fault_invalid_tag",
    0x1C000007: "nca_s_fault_invalid_bound", 0x1C000008: "nca_s_rpc_version_mismatch",
    0x1C000009: "nca_s_unspec_reject", 0x1C00000A: "nca_s_bad_actid", 0x1C00000B: "nca_s_who_are_you_failed",
    0x1C00000C: "nca_s_manager_not_entered", 0x1C00000D: "nca_s_fault_cancel", 0x1C00000E: "nca_s_fault_ill_inst",
    0x1C00000F: "nca_s_fault_fp_error", 0x1C000010: "nca_s_fault_int_overflow", 0x1C000012: "nca_s_fault_unspec",
    0x1C000013: "nca_s_fault_remote_comm_failure", 0x1C000014: "nca_s_fault_pipe_empty",
    0x1C000015: "nca_s_fault_pipe_closed", 0x1C000016: "nca_s_fault_pipe_order",
    0x1C000017: "nca_s_fault_pipe_discipline", 0x1C000018: "nca_s_fault_pipe_comm_error",
    0x1C000019: "nca_s_fault_pipe_memory", 0x1C00001A: "nca_s_fault_context_mismatch",
    0x1C00001B: "nca_s_fault_remote_no_memory", 0x1C00001C: "nca_s_invalid_pres_context_id",
    0x1C00001D: "nca_s_unsupported_authn_level", 0x1C00001F: "nca_s_invalid_checksum",
    0x1C000020: "nca_s_invalid_crc", 0x1C000021: "nca_s_fault_user_defined",
    0x1C000022: "nca_s_fault_tx_open_failed", 0x1C000023: "nca_s_fault_codeset_conv_error",
    0x1C000024: "nca_s_fault_object_not_found", 0x1C000025: "nca_s_fault_no_client_stub",
    0x1C010002: "nca_s_op_rng_error", 0x1C010003: "nca_s_unk_if", 0x1C010006: "nca_s_wrong_boot_time",
    0x1C010009: "nca_s_you_crashed", 0x1C01000B: "nca_s_proto_error", 0x1C010013: "nca_s_out_args_too_big",
    0x1C010014: "nca_s_server_too_busy", 0x1C010017: "nca_s_unsupported_type",
}  # fmt: skip

EPM_UUID = "e1af8308-5d1f-11c9-91a4-08002b14a0fa"
EPT_MAP = 3
NDR64_UUID = "71710533-beba-4937-8319-b5dbef9ccc36"

#: presentation contexts kept per association (a bind proposes a few; hostile ones many)
MAX_CONTEXTS = 256
#: calls in flight (request seen, response not complete) per association
MAX_CALLS = 4096
#: contexts one bind may propose before the rest is ignored
MAX_CONTEXT_ELEMS = 64
#: bytes of an endpoint-mapper answer kept for decoding (answers are a few hundred bytes)
MAX_EPM_STUB = 64 * 1024


def fault_name(status: int | None) -> str | None:
    """The name of a fault status: NCA codes here, Win32/NTSTATUS/HRESULT from the knowledge base."""
    if status is None:
        return None
    name = NCA_STATUS.get(status)
    if name is not None:
        return name
    from rpctrace.knowledge.codes import describe

    info = describe(status, "RPC" if status <= 0xFFFF else None)
    return info.name if info is not None else None


def uuid_text(raw: bytes, little: bool) -> str:
    """A UUID as lowercase text: little-endian NDR puts the first three fields byte-swapped."""
    return str(_uuid.UUID(bytes_le=raw) if little else _uuid.UUID(bytes=raw))


def header_ok(rpc_vers: int, minor: int, ptype: int, drep0: int, frag_length: int, auth_length: int) -> str | None:
    """Why a common header is not a plausible connection-oriented PDU, or None."""
    if rpc_vers != 5 or minor > 1:
        return f"not DCE/RPC version 5.0/5.1 ({rpc_vers}.{minor})"
    if ptype not in CO_PTYPES:
        return f"packet type {ptype} is not a connection-oriented one"
    if drep0 & 0xEF:
        return f"unknown data representation 0x{drep0:02x}"
    if frag_length < HEADER_SIZE:
        return f"fragment length {frag_length} is shorter than the header"
    if auth_length and auth_length + 8 + HEADER_SIZE > frag_length:
        return f"auth length {auth_length} does not fit in fragment length {frag_length}"
    return None


def looks_like_pdu(data: bytes | bytearray | memoryview) -> bool:
    """Do ``data`` start with a plausible connection-oriented DCE/RPC header?"""
    if len(data) < HEADER_SIZE:
        return False
    little = bool(data[4] & 0x10)
    v, m, pt, _f, drep, flen, alen, _cid = HEADER[little].unpack_from(data, 0)
    return header_ok(v, m, pt, drep[0], flen, alen) is None


Emit = Callable[[str, int, int, dict[str, Any]], None]


class Endpoints:
    """Who talks on an association: addresses and ports by side (0/1 of the transport), the
    transport ("TCP" or "NP"), the pipe name and file id for named pipes, and an id."""

    __slots__ = ("transport", "addresses", "ports", "pipe", "fid", "connection", "client_side")

    def __init__(self, transport: str, addresses: tuple[str, str], ports: tuple[int, int], connection: str,
                 pipe: str | None = None, fid: str | None = None, client_side: int | None = None):
        self.transport = transport
        self.addresses = addresses
        self.ports = ports
        self.connection = connection
        self.pipe = pipe
        self.fid = fid
        self.client_side = client_side

    def fields(self, client_side: int) -> dict[str, Any]:
        s = 1 - client_side
        return {
            "transport": self.transport,
            "connection": self.connection,
            "client_address": self.addresses[client_side],
            "client_port": self.ports[client_side],
            "server_address": self.addresses[s],
            "server_port": self.ports[s],
            "pipe": self.pipe,
            "fid": self.fid,
        }


class _Partial:
    """A call's request or response whose last fragment has not come yet."""

    __slots__ = ("first_frame", "ts", "fragments", "stub_length", "stub", "opnum", "context_id")

    def __init__(self, first_frame: int, ts: int, opnum: int | None, context_id: int):
        self.first_frame = first_frame
        self.ts = ts
        self.fragments = 0
        self.stub_length = 0
        self.stub: bytearray | None = None
        self.opnum = opnum
        self.context_id = context_id


class Association:
    """The state of one DCE/RPC association (a TCP connection or one named pipe).

    ``emit(kind, ts, frame, fields)`` receives the events; ``epm_lookup(server address, port or
    pipe)`` names the interface an endpoint-mapper answer gave for an endpoint, for
    connections captured after their bind; ``epm_learn(...)`` records such answers.
    """

    __slots__ = ("ends", "emit", "contexts", "proposed", "auth_type", "auth_level", "secondary_address",
                 "requests", "responses", "outstanding", "epm_lookup", "epm_learn", "damage", "ndr64")

    def __init__(self, ends: Endpoints, emit: Emit, epm_lookup=None, epm_learn=None, damage=None):
        self.ends = ends
        self.emit = emit
        self.contexts: dict[int, tuple[str, int, int, str]] = {}  # ctx id -> (uuid, major, minor, source)
        self.proposed: dict[int, list[tuple[int, str, int, int, bool]]] = {}  # call id -> contexts offered
        self.auth_type: int | None = None
        self.auth_level: int | None = None
        self.secondary_address: str | None = None
        self.requests: dict[int, _Partial] = {}
        self.responses: dict[int, _Partial] = {}
        self.outstanding: dict[int, tuple[int, int]] = {}  # call id -> (opnum, ctx) of EPM requests
        self.epm_lookup = epm_lookup
        self.epm_learn = epm_learn
        self.damage = damage
        self.ndr64: set[int] = set()

    # -- helpers --------------------------------------------------------------------------
    def _client_side(self, side: int, from_client: bool) -> int:
        ends = self.ends
        if ends.client_side is None:
            ends.client_side = side if from_client else 1 - side
        return ends.client_side

    def _auth(self, pdu: bytes, little: bool, frag_length: int, auth_length: int) -> tuple[int | None, int | None, int]:
        """(auth type, auth level, bytes of verifier + auth padding) of a fragment."""
        if not auth_length:
            return None, None, 0
        at = frag_length - auth_length - 8
        auth_type, auth_level, pad, _r, _ctx = AUTH_VERIFIER[little].unpack_from(pdu, at)
        self.auth_type, self.auth_level = auth_type, auth_level
        return auth_type, auth_level, auth_length + 8 + pad

    def _interface(self, ctx: int) -> tuple[str | None, int | None, int | None, str | None]:
        got = self.contexts.get(ctx)
        if got is not None:
            return got
        if self.epm_lookup is not None:
            ends = self.ends
            cs = ends.client_side if ends.client_side is not None else 0
            key = ends.pipe if ends.transport == "NP" else ends.ports[1 - cs]
            hit = self.epm_lookup(ends.addresses[1 - cs], ends.transport, key)
            if hit is not None:
                return hit[0], hit[1], hit[2], "epm"
        return None, None, None, None

    def _bounded(self, table: dict, limit: int, what: str, frame: int) -> None:
        if len(table) >= limit:
            table.pop(next(iter(table)))
            if self.damage is not None:
                self.damage(frame, f"more than {limit} {what} on {self.ends.connection}: the oldest is dropped")

    # -- PDUs ---------------------------------------------------------------------------------
    def pdu(self, side: int, pdu: bytes, first_frame: int, frame: int, ts: int, first_ts: int) -> None:
        """One complete fragment from transport side ``side``."""
        little = bool(pdu[4] & 0x10)
        _v, _m, ptype, flags, _drep, frag_length, auth_length, call_id = HEADER[little].unpack_from(pdu, 0)
        try:
            if ptype == 0:
                self._request(side, pdu, little, flags, frag_length, auth_length, call_id, first_frame, frame, first_ts)
            elif ptype == 2 or ptype == 3:
                self._response(side, pdu, little, ptype, flags, frag_length, auth_length, call_id, first_frame, frame,
                               ts, first_ts)
            elif ptype == 11 or ptype == 14:
                self._bind(side, pdu, little, ptype, frag_length, auth_length, call_id, frame, ts)
            elif ptype == 12 or ptype == 15:
                self._bind_ack(side, pdu, little, ptype, frag_length, auth_length, call_id, frame, ts)
            elif ptype == 13:
                self._bind_nak(side, pdu, little, frag_length, call_id, frame, ts)
            elif ptype == 16:
                self._client_side(side, True)
                self._auth(pdu, little, frag_length, auth_length)
        except (IndexError, ValueError, struct.error) as exc:  # a body shorter than its layout
            if self.damage is not None:
                self.damage(frame, f"{PTYPES.get(ptype, ptype)} PDU (call id {call_id}) on {self.ends.connection} "
                                   f"is malformed: {exc}")

    def _request(self, side, pdu, little, flags, frag_length, auth_length, call_id, first_frame, frame, ts) -> None:
        cs = self._client_side(side, True)
        _hint, ctx, opnum = REQUEST[little].unpack_from(pdu, HEADER_SIZE)
        auth_type, auth_level, trailer = self._auth(pdu, little, frag_length, auth_length)
        body = HEADER_SIZE + 8
        obj = None
        if flags & PFC_OBJECT_UUID:
            obj = uuid_text(pdu[body:body + 16], little)
            body += 16
        stub = max(0, frag_length - body - trailer)
        if flags & PFC_FIRST_FRAG or call_id not in self.requests:
            if not flags & PFC_FIRST_FRAG and self.damage is not None:
                pass  # a continuation whose first fragment was not captured: still a call
            iface, major, minor, source = self._interface(ctx)
            fields = self.ends.fields(cs)
            fields.update({
                "call_id": call_id, "opnum": opnum, "context_id": ctx, "interface_uuid": iface,
                "interface_version": f"{major}.{minor}" if major is not None else None, "interface_source": source,
                "auth_type": auth_type if auth_length else self.auth_type,
                "auth_level": auth_level if auth_length else self.auth_level,
                "object_uuid": obj, "first_frame": first_frame, "frame": frame,
                "first_fragment_seen": bool(flags & PFC_FIRST_FRAG), "ndr64": ctx in self.ndr64,
            })
            self.emit("net.rpc_request", ts, frame, fields)
            if not flags & PFC_LAST_FRAG:
                self._bounded(self.requests, MAX_CALLS, "fragmented requests in flight", frame)
                part = self.requests[call_id] = _Partial(first_frame, ts, opnum, ctx)
                part.fragments = 1
                part.stub_length = stub
            if iface == EPM_UUID and opnum == EPT_MAP:
                self._bounded(self.outstanding, MAX_CALLS, "endpoint-mapper calls in flight", frame)
                self.outstanding[call_id] = (opnum, ctx)
        else:
            part = self.requests[call_id]
            part.fragments += 1
            part.stub_length += stub
            if flags & PFC_LAST_FRAG:
                del self.requests[call_id]

    def _response(self, side, pdu, little, ptype, flags, frag_length, auth_length, call_id, first_frame, frame, ts,
                  first_ts) -> None:
        cs = self._client_side(side, False)
        auth_type, auth_level, trailer = self._auth(pdu, little, frag_length, auth_length)
        if ptype == 3:
            _hint, ctx, _cancel = RESPONSE[little].unpack_from(pdu, HEADER_SIZE)
            # the status follows; some stacks leave out the 4 reserved bytes after it
            status = FAULT[little].struct.unpack_from(pdu + bytes(4), HEADER_SIZE)[3] if len(pdu) >= 28 else None
            self.requests.pop(call_id, None)
            self.responses.pop(call_id, None)
            self.outstanding.pop(call_id, None)
            fields = self.ends.fields(cs)
            fields.update({"call_id": call_id, "context_id": ctx, "status": status, "status_name": fault_name(status),
                           "first_frame": first_frame, "frame": frame, "auth_type": auth_type, "auth_level": auth_level})
            self.emit("net.rpc_fault", ts, frame, fields)
            return
        _hint, ctx, _cancel = RESPONSE[little].unpack_from(pdu, HEADER_SIZE)
        body = HEADER_SIZE + 8
        stub = max(0, frag_length - body - trailer)
        part = self.responses.get(call_id)
        if part is None:
            self._bounded(self.responses, MAX_CALLS, "responses in flight", frame)
            part = self.responses[call_id] = _Partial(first_frame, first_ts, None, ctx)
            if not flags & PFC_FIRST_FRAG:
                part.fragments = -1  # marks "first fragment not seen"
        part.fragments += 1 if part.fragments >= 0 else 0
        part.stub_length += stub
        wants_stub = call_id in self.outstanding and not auth_level or (auth_level is not None and auth_level < 6)
        if call_id in self.outstanding and wants_stub:
            if part.stub is None:
                part.stub = bytearray()
            if len(part.stub) + stub <= MAX_EPM_STUB:
                part.stub += pdu[body:body + stub]
        if not flags & PFC_LAST_FRAG:
            return
        del self.responses[call_id]
        self.requests.pop(call_id, None)
        fields = self.ends.fields(cs)
        fields.update({"call_id": call_id, "context_id": ctx, "first_frame": part.first_frame, "frame": frame,
                       "fragments": part.fragments if part.fragments > 0 else None, "stub_length": part.stub_length,
                       "auth_type": auth_type if auth_length else self.auth_type,
                       "auth_level": auth_level if auth_length else self.auth_level})
        self.emit("net.rpc_response", ts, frame, fields)
        epm = self.outstanding.pop(call_id, None)
        if epm is not None and part.stub is not None:
            self._epm_answer(bytes(part.stub), little, cs, frame, ts)

    def _epm_answer(self, stub: bytes, little: bool, cs: int, frame: int, ts: int) -> None:
        from rpctrace.sources.net.epm import parse_map_response

        ends = self.ends
        try:
            entries = parse_map_response(stub, little)
        except ValueError as exc:
            if self.damage is not None:
                self.damage(frame, f"endpoint-mapper answer on {ends.connection} not decoded: {exc}")
            return
        server = ends.addresses[1 - cs]
        for e in entries:
            fields = ends.fields(cs)
            fields.update({"frame": frame, "interface_uuid": e.uuid, "interface_version": f"{e.major}.{e.minor}",
                           "protocol": e.protocol, "port": e.port, "endpoint_pipe": e.pipe, "address": e.address})
            self.emit("net.epm_map", ts, frame, fields)
            if self.epm_learn is not None:
                self.epm_learn(server, e)

    def _bind(self, side, pdu, little, ptype, frag_length, auth_length, call_id, frame, ts) -> None:
        cs = self._client_side(side, True)
        auth_type, auth_level, _t = self._auth(pdu, little, frag_length, auth_length)
        _xmit, _recv, assoc_group, n = BIND[little].unpack_from(pdu, HEADER_SIZE)
        at = HEADER_SIZE + BIND[little].size
        elem = CONTEXT_ELEM[little]
        offered = []
        end = frag_length - (auth_length + 8 if auth_length else 0)
        for _ in range(min(n, MAX_CONTEXT_ELEMS)):
            if at + elem.size > end:
                raise ValueError(f"context list runs past the fragment ({n} contexts)")
            ctx, n_syn, raw, major, minor = elem.unpack_from(pdu, at)
            at += elem.size
            ndr64 = False
            for k in range(n_syn):
                if at + TRANSFER_SYNTAX_SIZE > end:
                    raise ValueError("transfer syntaxes run past the fragment")
                if k == 0 and n_syn == 1 and uuid_text(pdu[at:at + 16], little) == NDR64_UUID:
                    ndr64 = True
                at += TRANSFER_SYNTAX_SIZE
            offered.append((ctx, uuid_text(raw, little), major, minor, ndr64))
        self._bounded(self.proposed, 16, "binds waiting for their answer", frame)
        self.proposed[call_id] = offered
        # Until the answer comes (or if it was not captured) the offered contexts stand.
        for ctx, iface, major, minor, _ndr64 in offered:
            if ctx not in self.contexts:
                self._bounded(self.contexts, MAX_CONTEXTS, "presentation contexts", frame)
                self.contexts[ctx] = (iface, major, minor, "bind" if ptype == 11 else "alter_context")
        fields = self.ends.fields(cs)
        fields.update({"call_id": call_id, "alter_context": ptype == 14, "assoc_group_id": assoc_group,
                       "contexts": [{"context_id": c, "interface_uuid": u, "interface_version": f"{a}.{b}"}
                                    for c, u, a, b, _n in offered],
                       "auth_type": auth_type, "auth_level": auth_level, "frame": frame})
        self.emit("net.rpc_bind", ts, frame, fields)

    def _bind_ack(self, side, pdu, little, ptype, frag_length, auth_length, call_id, frame, ts) -> None:
        cs = self._client_side(side, False)
        auth_type, auth_level, _t = self._auth(pdu, little, frag_length, auth_length)
        _xmit, _recv, assoc_group, sec_len = BIND_ACK[little].unpack_from(pdu, HEADER_SIZE)
        at = HEADER_SIZE + BIND_ACK[little].size
        end = frag_length - (auth_length + 8 if auth_length else 0)
        if at + sec_len > end:
            raise ValueError(f"secondary address length {sec_len} runs past the fragment")
        sec = pdu[at:at + sec_len].split(b"\0", 1)[0].decode("latin-1") if sec_len else ""
        if sec:
            self.secondary_address = sec
        at += sec_len
        at += (-at) & 3
        (n,) = RESULT_LIST[little].unpack_from(pdu, at)
        at += RESULT_LIST[little].size
        offered = self.proposed.pop(call_id, None) or []
        results = []
        rl = RESULT[little]
        for i in range(min(n, MAX_CONTEXT_ELEMS)):
            if at + rl.size > end:
                raise ValueError(f"result list runs past the fragment ({n} results)")
            result, reason, tuuid, _tver = rl.unpack_from(pdu, at)
            at += rl.size
            ctx = offered[i] if i < len(offered) else None
            if ctx is not None:
                if result == 0:
                    self.contexts[ctx[0]] = (ctx[1], ctx[2], ctx[3], "bind" if ptype == 12 else "alter_context")
                    if uuid_text(tuuid, little) == NDR64_UUID:
                        self.ndr64.add(ctx[0])
                elif self.contexts.get(ctx[0], (None,))[0] == ctx[1]:
                    del self.contexts[ctx[0]]
            results.append({"context_id": ctx[0] if ctx else None, "interface_uuid": ctx[1] if ctx else None,
                            "result": result, "result_name": BIND_RESULTS.get(result),
                            "reason": reason, "reason_name": BIND_RESULT_REASONS.get(reason) if result else None})
        fields = self.ends.fields(cs)
        fields.update({"call_id": call_id, "alter_context": ptype == 15, "assoc_group_id": assoc_group,
                       "secondary_address": sec or None, "results": results, "auth_type": auth_type,
                       "auth_level": auth_level, "frame": frame})
        self.emit("net.rpc_bind_ack", ts, frame, fields)

    def _bind_nak(self, side, pdu, little, frag_length, call_id, frame, ts) -> None:
        cs = self._client_side(side, False)
        (reason,) = BIND_NAK[little].unpack_from(pdu, HEADER_SIZE)
        offered = self.proposed.pop(call_id, None) or []
        for ctx, iface, *_rest in offered:
            if self.contexts.get(ctx, (None,))[0] == iface:
                del self.contexts[ctx]
        fields = self.ends.fields(cs)
        fields.update({"call_id": call_id, "reject_reason": reason, "reject_reason_name": REJECT_REASONS.get(reason),
                       "interfaces": [i for _c, i, *_r in offered], "frame": frame})
        self.emit("net.rpc_bind_nak", ts, frame, fields)

    def finish(self) -> None:
        """The capture ended: forget what is in flight (requests were already reported)."""
        self.requests.clear()
        self.responses.clear()
        self.outstanding.clear()


class PduStream:
    """Cuts one direction's bytes into fragments for an :class:`Association`.

    A fragment is at most 65,535 bytes (its length is a u16), so the buffer holds at most one
    fragment plus one segment.  After a gap or a header that is not plausible, the stream is
    lost: it discards bytes until a chunk starts with a plausible header (a PDU boundary).
    """

    __slots__ = ("assoc", "side", "buf", "first_frame", "first_ts", "lost", "where")

    def __init__(self, assoc: Association, side: int, where: str):
        self.assoc = assoc
        self.side = side
        self.buf = bytearray()
        self.first_frame = 0
        self.first_ts = 0
        self.lost = False
        self.where = where

    def gap(self) -> None:
        self.buf.clear()
        self.lost = True

    def data(self, chunk: bytes, frame: int, ts: int) -> None:
        buf = self.buf
        if self.lost:
            if not looks_like_pdu(chunk):
                return
            self.lost = False
        if not buf:
            self.first_frame = frame
            self.first_ts = ts
        buf += chunk
        while len(buf) >= HEADER_SIZE:
            little = bool(buf[4] & 0x10)
            v, m, pt, _f, drep, flen, alen, cid = HEADER[little].unpack_from(buf, 0)
            why = header_ok(v, m, pt, drep[0], flen, alen)
            if why is not None:
                if self.assoc.damage is not None:
                    self.assoc.damage(frame, f"{self.where}: {why}; skipping to the next PDU boundary")
                buf.clear()
                self.lost = True
                return
            if len(buf) < flen:
                return
            pdu = bytes(buf[:flen])
            del buf[:flen]
            self.assoc.pdu(self.side, pdu, self.first_frame, frame, ts, self.first_ts)
            self.first_frame = frame
            self.first_ts = ts
