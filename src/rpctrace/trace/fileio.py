"""Give FileIo Create events the status of their operation.

A kernel FileIo Create (op 64) is logged when the request starts and carries no result; the
result comes in the OperationEnd event (op 76) of the same IRP.  Pairing them by IRP address
(reused only after the operation ends) gives the create its ``status``, which is what a person
looks for ("which open failed?").
"""

from __future__ import annotations

from rpctrace.model import Event


def join_file_status(events: list[Event]) -> None:
    """In place: copy each OperationEnd's status onto the pending Create with the same IRP."""
    pending: dict[int, Event] = {}
    for ev in events:
        if ev.kind == "file.create":
            if ev.fields.get("irp") is not None:  # Procmon creates carry their result already
                pending[ev.fields["irp"]] = ev
        elif ev.kind == "file.op" and ev.fields.get("op") == "end":
            irp = ev.fields.get("irp")
            create = pending.pop(irp, None) if irp is not None else None
            if create is not None:
                create.fields["status"] = ev.fields["status"]
