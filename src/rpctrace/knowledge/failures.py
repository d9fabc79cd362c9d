"""Failure classes: which failed operations deserve blame, and which are the expected results that
Windows code produces by the thousand on a healthy machine.

A service probing an optional registry value gets STATUS_OBJECT_NAME_NOT_FOUND; a caller sizing a
buffer gets STATUS_BUFFER_TOO_SMALL; the file system refuses fast I/O and the I/O manager retries
the slow way.  None of that is why a call failed, and a tool that lists them first buries the
one ACCESS DENIED that is.  So every source and every output uses this one table:

* **blame-worthy** (the default for any error status): access denied, privilege not held, bad
  impersonation level, sharing violation, logon failure, RPC errors and faults, a non-success
  status returned to the client, and every error this table does not call expected (an unknown
  error is shown, never hidden);
* **expected**: the statuses below, each with the reason a person would give, for the operations
  where that reason holds.

Only error-severity statuses (0xC...) are failures at all (:func:`rpctrace.knowledge.status.is_failure`);
warnings such as STATUS_BUFFER_OVERFLOW and STATUS_NO_MORE_ENTRIES are not failures in the first
place.  ``explain --all``, ``calls --failed`` (blame-worthy first) and the report (expected results
in grey, not red) all follow this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from rpctrace.knowledge.status import is_failure

__all__ = ["EXPECTED", "Expected", "classify", "event_class", "event_expected_reason", "expected_reason", "is_blameworthy"]

#: operation kinds that create or open by name (probes of what may not exist)
_OPENS = ("registry.open", "registry.create", "registry.query", "registry.query_value", "registry.enum_key",
          "registry.enum_value", "registry.query_multiple_value", "registry.delete", "registry.delete_value",
          "file.create", "file.op")
_CREATES = ("registry.create", "file.create", "file.op")


#: operations (Procmon's names) that ask whether something is supported: an error is the answer
_PROBES = ("DeviceIoControl", "FileSystemControl", "QueryRemoteProtocolInformation", "QueryInformationFile",
           "QueryAllInformationFile", "QueryStreamInformationFile", "QueryIdInformation", "QueryNormalizedNameInformationFile",
           "QueryNetworkOpenInformationFile", "QueryEaInformationFile", "QueryFileInternalInformation",
           "QuerySecurityFile", "QueryVolumeInformation")


@dataclass(frozen=True)
class Expected:
    """A status that is an expected result for ``kinds`` (None: any operation), or only for the
    named ``operations`` (Procmon's operation names) when those are given."""

    status: int
    name: str
    reason: str
    kinds: tuple[str, ...] | None = None
    operations: tuple[str, ...] | None = None

    def applies(self, kind: str | None, operation: str | None = None) -> bool:
        if self.operations is not None:
            return operation in self.operations
        return self.kinds is None or kind is None or kind in self.kinds


def _table(*rows: Expected) -> dict[int, Expected]:
    return {row.status: row for row in rows}


#: the expected results, by status (facts: ntstatus.h names; reasons: how Windows code uses them)
EXPECTED: dict[int, Expected] = _table(
    Expected(0xC0000034, "STATUS_OBJECT_NAME_NOT_FOUND",
             "a probe of an optional key, value or file that does not exist (programs read settings that way)", _OPENS),
    Expected(0xC000003A, "STATUS_OBJECT_PATH_NOT_FOUND",
             "a probe below a key or folder that does not exist", _OPENS),
    Expected(0xC000000F, "STATUS_NO_SUCH_FILE", "a probe of a file that does not exist", _OPENS),
    Expected(0xC0000225, "STATUS_NOT_FOUND", "a lookup of something optional that is not there", None),
    Expected(0xC0000023, "STATUS_BUFFER_TOO_SMALL",
             "the caller asked how large a buffer to allocate and retries with that size", None),
    Expected(0xC0000275, "STATUS_NOT_A_REPARSE_POINT",
             "a check whether a file is a reparse point (symbolic link, junction) found it is not", None),
    Expected(0xC0000279, "STATUS_IO_REPARSE_TAG_NOT_HANDLED",
             "a reparse point no filter handles here; the open is retried or the point read as data", None),
    Expected(0xC01C0004, "STATUS_FLT_DISALLOW_FAST_IO",
             "a filter driver refused the fast I/O path; the I/O manager repeats the request as an IRP", None),
    Expected(0xC0000010, "STATUS_INVALID_DEVICE_REQUEST",
             "a control code the device does not support, asked to find out whether it does", None),
    Expected(0xC00000BA, "STATUS_FILE_IS_A_DIRECTORY",
             "an open that asked for a file found a directory (callers test names this way)", None),
    Expected(0xC0000103, "STATUS_NOT_A_DIRECTORY",
             "an open that asked for a directory found a file (callers test names this way)", None),
    Expected(0xC0000035, "STATUS_OBJECT_NAME_COLLISION",
             "create-if-absent found the key or file already there, which is what the caller wanted", _CREATES),
    Expected(0xC0000120, "STATUS_CANCELLED",
             "a pending request (usually a change notification) cancelled when its handle was closed", None),
    Expected(0xC0000011, "STATUS_END_OF_FILE", "a read reached the end of the file", None),
    Expected(0xC00000E2, "STATUS_OPLOCK_NOT_GRANTED",
             "an opportunistic lock was not granted; the file is then used without one", None),
    Expected(0xC0000052, "STATUS_NO_EAS_ON_FILE", "a query of extended attributes of a file that has none", None),
    Expected(0xC000004F, "STATUS_EAS_NOT_SUPPORTED", "a query of extended attributes on a file system without them",
             None),
    Expected(0xC000000D, "STATUS_INVALID_PARAMETER",
             "a control code or information class this file system or device does not take, asked to find out",
             operations=_PROBES),
    Expected(0xC00000BB, "STATUS_NOT_SUPPORTED", "a feature probe answered: not supported here", operations=_PROBES),
    Expected(0xC0000273, "STATUS_NO_MORE_MATCHES", "a search that found nothing more", None),
    Expected(0xC00002F0, "STATUS_OBJECTID_NOT_FOUND", "a query of a file's object ID when it has none", None),
    Expected(0xC000A2A3, "STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED",
             "a probe of offloaded copy (ODX) where the storage does not offer it", None),
    Expected(0xC000046D, "STATUS_OBJECT_NOT_EXTERNALLY_BACKED",
             "a probe whether a file is backed by a compressed (WOF) store: it is not", None),
)


def expected_reason(status: object, kind: str | None = None, operation: str | None = None) -> str | None:
    """Why a failed operation of ``kind`` (Procmon: ``operation``) with ``status`` is an expected
    result, or None."""
    if type(status) is not int:
        return None
    row = EXPECTED.get(status & 0xFFFFFFFF)
    return row.reason if row is not None and row.applies(kind, operation) else None


def classify(status: object, kind: str | None = None, operation: str | None = None) -> str:
    """``"ok"`` (not a failure), ``"expected"`` (a failure that is an expected result) or
    ``"blame"`` (a failure that deserves blame)."""
    if not is_failure(status):
        return "ok"
    return "expected" if expected_reason(status, kind, operation) is not None else "blame"


def is_blameworthy(status: object, kind: str | None = None, operation: str | None = None) -> bool:
    """A failure that deserves blame (see the module docstring)."""
    return is_failure(status) and expected_reason(status, kind, operation) is None


def event_class(ev) -> str:
    """:func:`classify` for an event (its status, kind and, from Procmon, operation name)."""
    f = ev.fields
    return classify(f.get("status"), ev.kind, f.get("operation"))


def event_expected_reason(ev) -> str | None:
    """:func:`expected_reason` for an event that failed."""
    f = ev.fields
    return expected_reason(f.get("status"), ev.kind, f.get("operation")) if is_failure(f.get("status")) else None
