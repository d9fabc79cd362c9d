"""Give FileIo Create events the status of their operation.

A kernel FileIo Create (op 64) is logged when the request starts and carries no result; the
result comes in the OperationEnd event (op 76) of the same IRP.  Pairing them by IRP address
(reused only after the operation ends) gives the create its ``status``, which is what a person
looks for ("which open failed?").  :class:`FileStatus` pairs them one event at a time, for the
whole-trace assembly (:func:`join_file_status`) and the streamed one alike.
"""

from __future__ import annotations

from rpctrace.model import Event


class FileStatus:
    """Creates waiting for their OperationEnd, by IRP."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending: dict[int, Event] = {}

    def add(self, ev: Event) -> None:
        """Note a ``file.create`` or ``file.op`` event; an OperationEnd gives its create the status."""
        if ev.kind == "file.create":
            if ev.fields.get("irp") is not None:  # Procmon creates carry their result already
                self.pending[ev.fields["irp"]] = ev
        elif ev.kind == "file.op" and ev.fields.get("op") == "end":
            irp = ev.fields.get("irp")
            create = self.pending.pop(irp, None) if irp is not None else None
            if create is not None:
                create.fields["status"] = ev.fields["status"]


def join_file_status(events: list[Event]) -> None:
    """In place: copy each OperationEnd's status onto the pending Create with the same IRP."""
    join = FileStatus()
    add = join.add
    for ev in events:
        kind = ev.kind
        if kind == "file.create" or kind == "file.op":  # (per event: compared before the call)
            add(ev)
