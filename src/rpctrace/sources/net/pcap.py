"""The capture container: pcap and pcapng files -> numbered, timestamped frames.

dpkt (BSD) declares the container structures: the pcap file header (``dpkt.pcap.FileHdr`` /
``LEFileHdr``), the record headers (``PktHdr``, ``PktModHdr``: their field tables build the
:class:`~.layout.Layout` used here), and the pcapng blocks (``SectionHeaderBlock``,
``InterfaceDescriptionBlock`` with its options).  The record loop is written here rather than
taken from ``dpkt.pcap.Reader`` / ``dpkt.pcapng.Reader`` because those (1.9.8) read whatever
length a record claims (a hostile 4 GiB ``caplen`` becomes a 4 GiB read), accept truncated
records silently, give float timestamps (nanoseconds lost), use the first pcapng interface's
link type and resolution for every packet, and say nothing about where damage is.  Here every
length is bounded, timestamps are exact integers (100 ns FILETIME ticks), each pcapng packet
uses its own interface's link type, resolution and offset, and damage raises
:class:`~rpctrace.errors.InputError` naming the frame and byte offset after every frame before
it was given out.

Frame numbers count packets from 1, as Wireshark's ``frame.number`` does.
"""

from __future__ import annotations

import struct
from typing import Iterator, NamedTuple

import dpkt
import dpkt.pcapng

from rpctrace.errors import InputError
from rpctrace.sources.layout import Layout

__all__ = ["Frame", "iter_frames", "is_capture", "MAX_FRAME", "MAX_BLOCK"]

#: largest frame accepted (snap lengths are at most 256 KiB in practice; TSO frames 64 KiB)
MAX_FRAME = 1024 * 1024
#: largest pcapng block accepted
MAX_BLOCK = MAX_FRAME + 4096
#: seconds from 1601-01-01 to 1970-01-01
EPOCH_1970 = 11_644_473_600
TICKS = 10_000_000

PCAP_MAGICS = {  # first 4 bytes -> (little-endian, nanosecond, modified record header)
    b"\xd4\xc3\xb2\xa1": (True, False, False), b"\xa1\xb2\xc3\xd4": (False, False, False),
    b"\x4d\x3c\xb2\xa1": (True, True, False), b"\xa1\xb2\x3c\x4d": (False, True, False),
    b"\x34\xcd\xb2\xa1": (True, False, True), b"\xa1\xb2\xcd\x34": (False, False, True),
}  # fmt: skip
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


def _from_dpkt(cls, order: str) -> Layout:
    return Layout(cls.__name__, order, tuple((name, code) for name, code, _default in cls.__hdr__))


RECORD = {False: _from_dpkt(dpkt.pcap.PktHdr, ">"), True: _from_dpkt(dpkt.pcap.PktHdr, "<")}
RECORD_MOD = {False: _from_dpkt(dpkt.pcap.PktModHdr, ">"), True: _from_dpkt(dpkt.pcap.PktModHdr, "<")}
BLOCK = {False: Layout("block", ">", (("type", "I"), ("length", "I"))), True: Layout("block", "<", (("type", "I"), ("length", "I")))}
EPB = {o: Layout("epb", "<" if o else ">", (("iface", "I"), ("ts_high", "I"), ("ts_low", "I"), ("caplen", "I"),
                                           ("length", "I"))) for o in (False, True)}
PB = {o: Layout("pb", "<" if o else ">", (("iface", "H"), ("drops", "H"), ("ts_high", "I"), ("ts_low", "I"),
                                         ("caplen", "I"), ("length", "I"))) for o in (False, True)}
SPB = {o: Layout("spb", "<" if o else ">", (("length", "I"),)) for o in (False, True)}
BOM = 0x1A2B3C4D


class Frame(NamedTuple):
    number: int  # 1-based
    ts: int  # FILETIME ticks (100 ns since 1601, UTC)
    linktype: int
    data: bytes
    offset: int  # byte offset of the record (pcap) or block (pcapng) in the file


def is_capture(head: bytes) -> bool:
    """Do the first bytes say pcap or pcapng?"""
    return head[:4] in PCAP_MAGICS or head[:4] == PCAPNG_MAGIC


def iter_frames(path: str, data) -> Iterator[Frame]:
    """The frames of the capture in ``data`` (bytes or an mmap of ``path``)."""
    head = bytes(data[:4])
    if head in PCAP_MAGICS:
        return _pcap(path, data, *PCAP_MAGICS[head])
    if head == PCAPNG_MAGIC:
        return _pcapng(path, data)
    raise InputError(path, "not a pcap or pcapng capture", offset=0)


def _pcap(path: str, data, little: bool, nano: bool, modified: bool) -> Iterator[Frame]:
    size = len(data)
    hdr_cls = dpkt.pcap.LEFileHdr if little else dpkt.pcap.FileHdr
    if size < hdr_cls.__hdr_len__:
        raise InputError(path, f"pcap file header cut short ({size} of {hdr_cls.__hdr_len__} bytes)", offset=0)
    fh = hdr_cls(bytes(data[:hdr_cls.__hdr_len__]))
    linktype = fh.linktype & 0x0FFFFFFF  # the top bits carry FCS information (pcap-linktype)
    rec = (RECORD_MOD if modified else RECORD)[little]
    unpack = rec.unpack_from
    rsize = rec.size
    at = hdr_cls.__hdr_len__
    number = 0
    while at < size:
        number += 1
        if at + rsize > size:
            raise InputError(path, f"frame {number}: record header cut short ({size - at} of {rsize} bytes)",
                             offset=at)
        fields = unpack(data, at)
        sec, frac, caplen = fields[0], fields[1], fields[2]
        if caplen > MAX_FRAME:
            raise InputError(path, f"frame {number}: record claims {caplen} bytes (more than {MAX_FRAME})", offset=at)
        start = at + rsize
        if start + caplen > size:
            raise InputError(path, f"frame {number}: truncated, record says {caplen} bytes, {size - start} left",
                             offset=at)
        ts = (sec + EPOCH_1970) * TICKS + (frac // 100 if nano else frac * 10)
        yield Frame(number, ts, linktype, bytes(data[start:start + caplen]), at)
        at = start + caplen


class _Iface:
    __slots__ = ("linktype", "num", "den_shift", "den", "offset")

    def __init__(self, linktype: int, resol: int, offset: int):
        self.linktype = linktype
        if resol & 0x80:
            self.den_shift, self.den = resol & 0x7F, 0
        else:
            self.den_shift, self.den = -1, 10 ** (resol & 0x7F)
        self.offset = offset

    def ticks(self, value: int) -> int:
        if self.den_shift >= 0:
            t = (value * TICKS) >> self.den_shift
        else:
            t = value * TICKS // self.den
        return t + (self.offset + EPOCH_1970) * TICKS


def _pcapng(path: str, data) -> Iterator[Frame]:
    size = len(data)
    at = 0
    little = True
    ifaces: list[_Iface] = []
    number = 0
    while at < size:
        if at + 12 > size:
            raise InputError(path, f"block header cut short after frame {number} ({size - at} bytes left)", offset=at)
        if bytes(data[at:at + 4]) == PCAPNG_MAGIC:
            (bom,) = struct.unpack_from("<I", data, at + 8)
            if bom == BOM:
                little = True
            elif bom == 0x4D3C2B1A:
                little = False
            else:
                raise InputError(path, f"section header with an unknown byte-order magic 0x{bom:08x}", offset=at)
            ifaces = []
        btype, length = BLOCK[little].unpack_from(data, at)
        if length < 12 or length > MAX_BLOCK or length % 4:
            raise InputError(path, f"after frame {number}: block of type 0x{btype:x} claims {length} bytes", offset=at)
        if at + length > size:
            raise InputError(path, f"after frame {number}: block of type 0x{btype:x} is truncated ({length} bytes "
                                   f"claimed, {size - at} left)", offset=at)
        block = bytes(data[at:at + length])
        if struct.unpack_from("<I" if little else ">I", block, length - 4)[0] != length:
            raise InputError(path, f"after frame {number}: block of type 0x{btype:x} has a trailing length that "
                                   "does not match", offset=at)
        if btype == 1:  # Interface Description Block
            ifaces.append(_interface(path, block, little, at))
        elif btype in (6, 2, 3):
            number += 1
            if btype == 6:
                iface, hi, lo, caplen, _orig = EPB[little].unpack_from(block, 8)
                start = 28
            elif btype == 2:
                iface, _drops, hi, lo, caplen, _orig = PB[little].unpack_from(block, 8)
                start = 28
            else:
                (orig,) = SPB[little].unpack_from(block, 8)
                iface, hi, lo, start = 0, None, 0, 12
                caplen = min(orig, length - 16)
            if iface >= len(ifaces):
                raise InputError(path, f"frame {number}: names interface {iface}, but {len(ifaces)} are described",
                                 offset=at)
            if caplen > MAX_FRAME or start + caplen > length - 4:
                raise InputError(path, f"frame {number}: packet of {caplen} bytes does not fit its {length}-byte "
                                       "block", offset=at)
            info = ifaces[iface]
            ts = info.ticks((hi << 32) | lo) if hi is not None else 0
            yield Frame(number, ts, info.linktype, block[start:start + caplen], at)
        at += length


def _interface(path: str, block: bytes, little: bool, at: int) -> _Iface:
    cls = dpkt.pcapng.InterfaceDescriptionBlockLE if little else dpkt.pcapng.InterfaceDescriptionBlock
    try:
        idb = cls(block)
    except (dpkt.UnpackError, struct.error, ValueError, IndexError) as exc:
        raise InputError(path, f"interface description block not readable: {exc}", offset=at) from None
    resol, offset = 6, 0
    for opt in idb.opts:
        if opt.code == dpkt.pcapng.PCAPNG_OPT_IF_TSRESOL and len(opt.data) >= 1:
            resol = opt.data[0]
            if (resol & 0x7F) > 63:
                raise InputError(path, f"interface timestamp resolution 0x{resol:02x} is out of range", offset=at)
        elif opt.code == dpkt.pcapng.PCAPNG_OPT_IF_TSOFFSET and len(opt.data) >= 8:
            offset = struct.unpack_from("<q" if little else ">q", opt.data, 0)[0]
    return _Iface(idb.linktype, resol, offset)
