"""Binary structures declared once, as named field tables (name, struct code).

Every fixed-size structure a reader decodes is declared beside the code that reads it as a
:class:`Layout`: a tuple of ``(field name, struct code)`` pairs from which the ``struct.Struct``
is built, so the names, the order and the offsets live in one place (in the spirit of
dissect.cstruct declarations).  The readers that use it: the network reader (pcap record headers,
SMB1/SMB2 headers and bodies, DCE/RPC PDUs, endpoint-mapper towers), the ETL reader (buffer,
logfile and record headers, kernel payload heads: :mod:`rpctrace.sources.etl.layouts`, whose
tables also write the offsets of the optional C module, ``_layouts.h``) and the Procmon reader
(record header).

``offset(name)`` gives a field's byte offset (for error messages, the tests and the C header),
``read()`` a dict for the rare structures, ``unpack_from()`` the plain tuple for the hot paths
(the ``struct.Struct`` method itself: no cost over a bare Struct).
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["Layout"]


class Layout:
    """A fixed-size binary structure: ``Layout("name", "<", (("field", "H"), ("_pad", "2x"), ...))``.

    Field codes are ``struct`` codes without a byte-order prefix; a code ending in ``x`` is
    padding and yields no value.  The byte order applies to the whole structure.
    """

    __slots__ = ("name", "fields", "names", "struct", "size", "offsets", "unpack_from", "pack")

    def __init__(self, name: str, order: str, fields: tuple[tuple[str, str], ...]):
        self.name = name
        self.fields = fields
        self.struct = struct.Struct(order + "".join(code for _, code in fields))
        self.size = self.struct.size
        self.unpack_from = self.struct.unpack_from
        self.pack = self.struct.pack
        offsets: dict[str, int] = {}
        at = 0
        names = []
        for fname, code in fields:
            offsets[fname] = at
            at += struct.calcsize(order + code)
            if not code.endswith("x"):
                names.append(fname)
        self.names = tuple(names)
        self.offsets = offsets

    def offset(self, field: str) -> int:
        """Byte offset of ``field`` from the start of the structure."""
        return self.offsets[field]

    def read(self, buf: bytes | bytearray | memoryview, at: int = 0) -> dict[str, Any]:
        """The fields at ``buf[at:]`` as a dict (raises ``struct.error`` when ``buf`` is short)."""
        return dict(zip(self.names, self.struct.unpack_from(buf, at)))

    def build(self, **values: Any) -> bytes:
        """The bytes of the structure (missing fields are 0): the trace writer's side."""
        return self.struct.pack(*(values.get(n, 0) for n in self.names))

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Layout({self.name!r}, {self.size} bytes)"
