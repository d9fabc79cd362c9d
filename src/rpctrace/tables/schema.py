"""The index's tables, declared once: named, typed, documented columns and a schema version.

Every Parquet file ``rpctrace index`` writes has exactly the columns of one :data:`TABLES`
entry, in that order, with these types; the query views, the docs (docs/scale.md) and the tests
read the same declaration.  Change a column's meaning or type and :data:`SCHEMA_VERSION` goes
up: file sets carry it in their names, so a new version never mixes with rows of an old one.

``host`` and ``day`` are not columns of any file: they are the Hive-style partition
directories (``calls/host=H/day=YYYY-MM-DD/...``) and readers (DuckDB, Spark, pyarrow) add them
from the path.  A column of the same name inside the files would clash with them in Spark.

Types are named by a small vocabulary (:data:`TYPES`) so that this module needs no pyarrow to
import; :func:`arrow_schema` builds the pyarrow schema when writing.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SCHEMA_VERSION", "TABLES", "Column", "Table", "arrow_schema", "PARTITIONS"]

#: goes up whenever a column is added, removed, renamed, retyped or changes meaning
SCHEMA_VERSION = 1

#: the partition directories every table is split by, outermost first
PARTITIONS = ("host", "day")

#: column type vocabulary -> how pyarrow spells it (see :func:`arrow_schema`)
TYPES = ("string", "int64", "int32", "float64", "bool", "timestamp", "list<string>")


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # one of TYPES; "timestamp" is microseconds since 1970, UTC
    doc: str
    nullable: bool = True

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"column {self.name}: unknown type {self.type}")


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


C = Column

_TRACE_ID = C("trace_id", "string", "the trace: the first 20 hex digits of the SHA-256 of its (decompressed) bytes", False)

CALLS = Table("calls", "one row per reconstructed RPC call (the fields of `rpctrace calls --format json`)", (
    _TRACE_ID,
    C("call_id", "int64", "the call's number in its trace (`rpctrace calls`, `--call ID`)", False),
    C("client_pid", "int64", "client process id"),
    C("client_tid", "int64", "client thread id"),
    C("client_image", "string", "client image name, when the trace names it"),
    C("server_pid", "int64", "server process id"),
    C("server_tid", "int64", "server thread that handled the call"),
    C("server_image", "string", "server image name"),
    C("server_service", "string", "the service the server process acted as (svchost -s, or the interface's owner)"),
    C("interface_uuid", "string", "RPC interface UUID (lowercase, no braces)"),
    C("interface_name", "string", "interface name from rpctrace's knowledge"),
    C("opnum", "int64", "procedure number"),
    C("procedure", "string", "procedure name, when known"),
    C("endpoint", "string", "RPC endpoint (ALPC port name for LRPC)"),
    C("protocol", "string", "LRPC, NP, TCP or HTTP"),
    C("mode", "string", "sync, async or datagram, when the trace shows it"),
    C("completion_tid", "int64", "asynchronous calls: the client thread that took the reply"),
    C("alpc_message_id", "int64", "the ALPC message that carried the request"),
    C("start", "timestamp", "client start (or the earliest moment seen of the call), UTC"),
    C("end", "timestamp", "client end (or the latest moment seen)"),
    C("server_start", "timestamp", "server start"),
    C("server_end", "timestamp", "server end"),
    C("duration_us", "float64", "end - start in microseconds"),
    C("status", "int64", "RPC status of the call (client's event 7, else the server's event 8)"),
    C("failed", "bool", "the call failed: an RPC status, or a failing operation of the server's work (what --failed selects)", False),
    C("failure_count", "int64", "failed registry and file operations the server did for this call", False),
    C("auth_level", "int64", "RPC authentication level"),
    C("auth_service", "int64", "RPC authentication service"),
    C("confidence", "float64", "how sure the client-server join is (1.0: ALPC message and RPC events agree)", False),
    C("evidence", "list<string>", "the joins that held", False),
    C("ambiguous", "bool", "several server calls fitted (RPC-only fallback)", False),
    C("parent_call_id", "int64", "the call whose server work made this call (nested calls)"),
))

FAILURES = Table("failures", "one row per failed registry or file operation: done for a call (call_id set) or "
                             "outside any call (call_id null)", (
    _TRACE_ID,
    C("call_id", "int64", "the call the server was handling, or null"),
    C("kind", "string", "registry.open, registry.set_value, file.create, ..."),
    C("path", "string", "registry key (HKLM form) or file path"),
    C("status", "int64", "NTSTATUS"),
    C("status_name", "string", "STATUS_ACCESS_DENIED, ..."),
    C("desired_access", "int64", "access asked for, when the source records it"),
    C("pid", "int64", "process that failed"),
    C("tid", "int64", "thread that failed"),
    C("ts", "timestamp", "when, UTC"),
    C("finding_call_id", "int64", "when `rpctrace explain` blames this failure: the call of that finding "
                                  "(the root call; null for findings without a call)"),
    C("finding", "bool", "`rpctrace explain` blames this failure for a finding", False),
    C("finding_summary", "string", "the finding's one-paragraph explanation"),
    C("identity_user", "string", "the account the failing thread ran as (findings only)"),
    C("identity_service", "string", "the service the failing thread ran as (findings only)"),
    C("identity_service_sid", "string", "that service's SID (findings only)"),
))

PROCESSES = Table("processes", "one row per process the trace names", (
    _TRACE_ID,
    C("pid", "int64", "process id", False),
    C("image", "string", "image name"),
    C("command_line", "string", "command line"),
    C("parent_pid", "int64", "parent process id"),
    C("session_id", "int64", "session"),
    C("user_sid", "string", "the process token's user SID"),
    C("user", "string", "that SID's well-known name, when it has one"),
    C("service", "string", "the service the command line names (svchost -s NAME)"),
    C("start", "timestamp", "process start, when inside the trace"),
    C("end", "timestamp", "process end, when inside the trace"),
))

TRACES = Table("traces", "one row per input: where it came from, its host and time range, what it holds and lacks", (
    _TRACE_ID,
    C("path", "string", "the input file, absolute (for a member of a .zip: the archive)", False),
    C("member", "string", "the member of the .zip archive that holds the trace"),
    C("input_bytes", "int64", "size of the trace (decompressed)", False),
    C("compression", "string", "gzip, xz, bzip2 or zip when the input was compressed"),
    C("format", "string", "etl, pml, evtx or eventxml"),
    C("computer_name", "string", "the computer the trace names (Procmon header, event log records), as written"),
    C("host_source", "string", "where the host partition value came from (or why it is a fallback)", False),
    C("start", "timestamp", "first event, UTC"),
    C("end", "timestamp", "last event, UTC"),
    C("events", "int64", "events read", False),
    C("calls", "int64", "calls reconstructed", False),
    C("failed_calls", "int64", "calls that failed", False),
    C("failures", "int64", "rows of this trace in failures", False),
    C("findings", "int64", "findings `rpctrace explain` gives", False),
    C("rpc_events", "int64", "Microsoft-Windows-RPC call start events (client 5, server 6)", False),
    C("rpc_stop_events", "int64", "RPC call stop events (7, 8): the calls' results", False),
    C("alpc_events", "int64", "kernel ALPC events", False),
    C("registry_events", "int64", "registry operations (KCB bookkeeping not counted)", False),
    C("file_events", "int64", "file operations", False),
    C("stacks", "int64", "ETW stack walk events (a Procmon log's stacks are inside its events: see missing)", False),
    C("process_rundown", "int64", "process rundown events (processes running when recording began)", False),
    C("image_loads", "int64", "image load and rundown events", False),
    C("processes", "int64", "processes named (rows of this trace in processes)", False),
    C("events_lost", "int64", "events the logger says it lost", False),
    C("buffers_lost", "int64", "buffers the logger says it lost", False),
    C("damaged_regions", "int64", "damaged regions skipped (--keep-going)", False),
    C("unpaired", "int64", "ALPC messages and RPC events that could not be paired", False),
    C("outside_failures_dropped", "int64", "failures outside calls beyond the kept 100,000 (counted only)", False),
    C("missing", "list<string>", "what `rpctrace check` says is missing: rpc, rpc_results, alpc, server_work, "
                                 "registry, file, stacks, process_rundown, image_loads", False),
    C("lacks", "list<string>", "what the trace lacks or lost and what that costs, one line each (check's advice, "
                               "the losses, the damage)", False),
    C("error", "string", "the damage that ended reading early, one line (what was read before it is indexed)"),
    C("os_build", "int64", "Windows build from the trace header"),
    C("pointer_size", "int64", "4 or 8"),
    C("rpctrace_version", "string", "the rpctrace that indexed it", False),
    C("schema_version", "int64", "SCHEMA_VERSION of these tables", False),
))

#: every table, by name, in the order the docs list them
TABLES: dict[str, Table] = {t.name: t for t in (CALLS, FAILURES, PROCESSES, TRACES)}


def arrow_schema(table: Table):
    """The pyarrow schema of ``table`` (pyarrow is imported here, when writing or reading)."""
    import pyarrow as pa

    types = {
        "string": pa.string(), "int64": pa.int64(), "int32": pa.int32(), "float64": pa.float64(),
        "bool": pa.bool_(), "timestamp": pa.timestamp("us", tz="UTC"), "list<string>": pa.list_(pa.string()),
    }
    return pa.schema([pa.field(c.name, types[c.type], nullable=c.nullable) for c in table.columns],
                     metadata={"rpctrace.table": table.name, "rpctrace.schema_version": str(SCHEMA_VERSION)})
