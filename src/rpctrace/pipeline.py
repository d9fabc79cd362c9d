"""The one place that runs rpctrace's stages: sources -> trace -> correlate -> explain.

Commands parse their arguments, call one function here and hand the result to a renderer;
renderers never compute.  Two ways through the stages:

* **streamed** (:func:`calls`): one file is read as a stream and calls are rebuilt as events pass,
  so memory follows the calls, not the events (``rpctrace calls`` on ten million events);
* **whole** (:func:`load`): every event is kept, for what needs the whole trace (``events``,
  ``explain``'s stacks and identities, the report's timeline).

``on_progress(done, total)`` is a plain callable (see :mod:`rpctrace.progress`): the stages
report how far reading is, the command decides whether a bar is shown.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Callable, Iterable, Sequence

from rpctrace.correlate.calls import Correlation
from rpctrace.correlate.select import CallFilter
from rpctrace.trace.model import Trace

__all__ = ["calls", "coverage", "findings", "load", "source_warnings"]

OnProgress = Callable[[float, float], None]


def source_warnings(trace: Trace) -> list[str]:
    """One line per loss or damage the readers counted (commands print them on stderr, so that
    stdout stays machine-readable)."""
    lines = []
    for info in trace.sources:
        lost = info.get("events_lost", 0) + info.get("buffers_lost", 0)
        if lost or info.get("buffers_flagged_lost"):
            lines.append(f"{info['path']}: the logger lost {info.get('events_lost', 0)} events and "
                         f"{info.get('buffers_lost', 0)} buffers")
        damage = info.get("damage") or []
        if damage:
            lines.append(f"{info['path']}: skipped {len(damage)} damaged region(s); first: {damage[0]}")
    return lines


def load(files: Sequence[str], keep_going: bool = False, on_progress: OnProgress | None = None) -> Trace:
    """Every event of ``files``, assembled.  Damage that ended reading is in ``trace.error`` (the
    caller reports it after using what was read); it is raised only when nothing was read."""
    from rpctrace.trace import load as load_trace

    trace = load_trace(files, keep_going=keep_going, on_progress=on_progress)
    if trace.error is not None and not trace.events:
        raise trace.error
    return trace


#: calls of a report shown in detail (the rest: failing ones in brief, others counted)
REPORT_DETAILED_CALLS = 3000


def calls(files: Sequence[str], keep_going: bool = False, operations: str = "all",
          on_progress: OnProgress | None = None, keep_all_for: int = 0,
          stacks: bool | None = None) -> tuple[Trace, Correlation]:
    """``(trace, correlation)``, streamed when there is one file (see the module docstring).

    ``operations="failed"`` keeps only the servers' failed operations (a listing shows no
    others); ``"all"`` keeps every operation and the stacks of failed ones (the tree).
    ``stacks`` reads stack walks (default: unless ``operations="failed"``)."""
    trace, result = correlate_files(files, keep_going=keep_going, operations=operations, on_progress=on_progress,
                                    keep_all_for=keep_all_for, stacks=stacks)
    if trace.error is not None and not trace.records:
        raise trace.error
    return trace, result


def coverage(trace: Trace):
    """What the inputs hold and lack (:mod:`rpctrace.trace.coverage`)."""
    from rpctrace.trace.coverage import coverage as measure

    return measure(trace.kinds, [s for s in trace.sources if "path" in s], trace.error, trace.formats)


def limits(trace: Trace) -> list[str]:
    """The lines that say how the inputs limit an answer (printed by every answering command)."""
    from rpctrace.trace.coverage import limits as lines

    return lines(coverage(trace))


def select(result: Correlation, trace: Trace, flt: CallFilter | None, alpc: bool = False) -> Iterable:
    """The calls of ``result`` that pass ``flt`` (lazily); with ``alpc`` also the ALPC exchanges
    that belong to no RPC call.  With ``--failed`` the calls with a failure that deserves blame
    come first, then those whose failures are all expected results."""
    from itertools import chain

    pool = chain(result.calls, result.alpc) if alpc and result.alpc else result.calls
    if flt is None or not flt.active:
        return pool
    chosen = flt.apply(pool, trace)
    if not flt.failed:
        return chosen
    chosen = list(chosen)
    blamed = [c for c in chosen if c.blamed or c.status]
    return blamed + [c for c in chosen if not (c.blamed or c.status)]


def acl_sources(hives: Iterable[str] = (), sddl_pairs: Iterable[str] = (), hive_logs: Iterable[str] = ()):
    """The security descriptors the person gave (``--hive`` with its ``--hive-log`` files,
    ``--sddl KEYPATH=SDDL``), checked before any trace is read: a typo costs no minute of reading
    first.  Their ``warnings`` say what the person must know (a dirty hive read as it is)."""
    from rpctrace.explain.acl_sources import AclSources

    return AclSources.from_args(list(hives), list(sddl_pairs), hive_logs=list(hive_logs))


def findings(trace: Trace, correlation: Correlation | None = None, hives: Iterable[str] = (),
             sddl_pairs: Iterable[str] = (), acls=None, include_expected: bool = False) -> list[dict]:
    """What ``explain`` prints: the findings of a trace (whole, or streamed with its correlation),
    with ACL verdicts from ``acls`` or else from ``hives`` and ``sddl_pairs``; expected results
    only with ``include_expected`` (``explain --all``)."""
    from rpctrace.correlate import correlate
    from rpctrace.explain.findings import build_findings

    if acls is None:
        acls = acl_sources(hives, sddl_pairs)
    return build_findings(trace, correlation if correlation is not None else correlate(trace), acls,
                          include_expected=include_expected)


@dataclass
class Explanation:
    """What ``explain`` shows: the findings, the expected results it left out, and the limits of
    the inputs (what they could not show)."""

    trace: Trace
    findings: list[dict]
    left_out: int
    limits: list[str]
    calls: int


def explain(files: Sequence[str], keep_going: bool = False, acls=None, include_expected: bool = False,
            on_progress: OnProgress | None = None, on_stage: Callable[[str], None] | None = None,
            call_id: int | None = None) -> Explanation:
    """Read the inputs streamed (calls keep their operations; captures join in) and explain them;
    with ``call_id``, only the findings about that call (its own, or one whose hops or failure
    run through it: a nested call's failure is blamed in its root call's finding)."""
    from rpctrace.errors import RpctraceError
    from rpctrace.explain.findings import expected_left_out

    trace, result = calls(files, keep_going=keep_going, on_progress=on_progress)
    if call_id is not None and not any(c.id == call_id for c in result.calls):
        raise RpctraceError(f"no call {call_id} (calls are numbered 1..{len(result.calls)})")
    if on_stage is not None:
        on_stage("explaining")
    found = findings(trace, result, acls=acls, include_expected=include_expected)
    if call_id is not None:
        found = [f for f in found if f.get("call") == call_id or (f.get("failure") or {}).get("call") == call_id
                 or any(h.get("call") == call_id for h in f.get("hops") or ())]
    left_out = 0 if include_expected else expected_left_out(trace, result)
    return Explanation(trace, found, left_out, limits(trace), len(result.calls))


def tree_roots(result: Correlation, trace: Trace, flt: CallFilter | None = None, call_id: int | None = None) -> list:
    """Where a call tree starts: the call ``call_id``; else, without filters, every call no other
    call made; with filters, every call that passes and is not inside another call that passes
    (so each matching call is shown once, with what it led to)."""
    if call_id is not None:
        return [c for c in result.calls if c.id == call_id]
    if flt is None or not flt.active:
        return [c for c in result.calls if c.parent is None]
    match = flt.matcher(trace)
    chosen = [c for c in result.calls if match(c)]
    ids = {id(c) for c in chosen}
    roots = []
    for c in chosen:
        p, depth = c.parent, 0
        while p is not None and id(p) not in ids and depth < 64:
            p, depth = p.parent, depth + 1
        if p is None or id(p) not in ids:
            roots.append(c)
    return roots


def call_with_stacks(trace: Trace, call_id: int) -> dict:
    """The record of call ``call_id`` of a whole trace, each failure with its stack as
    ``module+0xoffset`` frames (what the WinDbg script and the report show)."""
    from rpctrace.correlate import call_record, correlate
    from rpctrace.errors import RpctraceError
    from rpctrace.knowledge.interfaces import lookup
    from rpctrace.knowledge.status import ntstatus_name

    calls = correlate(trace).calls
    found = [c for c in calls if c.id == call_id]
    if not found:
        raise RpctraceError(f"no call {call_id} (calls are numbered 1..{len(calls)})")
    call = found[0]
    record = call_record(call, trace, names=lookup, status_name=ntstatus_name)
    for rec, op in zip(record["failures"], call.failures):
        if op.stack:
            rec["stack"] = [trace.symbolize(op.pid, addr) for addr in op.stack]
    return record


def acl_check(key: str | None, hives: Sequence[str], sddl_pairs: Sequence[str], principal_names: Sequence[str],
              access_text: str, hive_logs: Sequence[str] = (), as_service: str | None = None) -> dict:
    """What ``rpctrace acl`` reports: the key's descriptor (and its parent's) from ``hives`` or
    ``sddl_pairs``, the verdict for ``principal_names`` (and, with ``as_service``, every SID a
    token of that service holds) asking ``access_text``, and the fix."""
    from rpctrace.errors import InputError, RpctraceError
    from rpctrace.security.check import evaluate, resolve_principals
    from rpctrace.security.fixes import suggest_fix
    from rpctrace.explain.acl_sources import AclSources
    from rpctrace.security import SecurityDescriptorError, to_sddl
    from rpctrace.knowledge import access

    from rpctrace.knowledge import sids as sid_names

    names = list(principal_names)
    token = None
    if as_service:
        kind, _, name = as_service.partition(":")
        if kind.lower() != "service" or not name.strip():
            raise RpctraceError(f"--as: expected service:NAME (e.g. service:Audiosrv), got {as_service!r}")
        token = sid_names.principal_notes(name.strip(), None)
        names = [sid for sid, _, _ in token] + names
    if not names:
        raise RpctraceError("say whose access to check: --principal NAME|SID... or --as service:NAME")
    try:
        principals = resolve_principals(names)
    except ValueError as exc:
        raise RpctraceError(f"--principal: {exc}") from None
    try:
        desired = access.parse(access_text, "key")
    except ValueError as exc:
        raise RpctraceError(f"--access: {exc}") from None
    try:
        sources = AclSources.from_args(list(hives), list(sddl_pairs), key=key or "", hive_logs=list(hive_logs))
    except InputError as exc:
        if exc.path == "--sddl" or exc.path.startswith("--sddl "):
            raise RpctraceError(f"--sddl: {exc.message}") from None
        raise
    if key is None and len(sddl_pairs) == 1:
        from rpctrace.explain.acl_sources import split_sddl_pair

        key = split_sddl_pair(sddl_pairs[0])[0]  # --sddl KEYPATH=SDDL names the key
    if key is None and hives:
        raise RpctraceError("say which key: rpctrace acl KEYPATH --hive PATH ...")
    name = key or ""  # "": the one key a bare --sddl describes, unnamed
    found = sources.require(name)
    parent_path = sources.parent_path(name) if key else None
    parent = None
    parent_error = None
    if parent_path:
        try:
            parent = sources.require(parent_path)
        except InputError as exc:  # a missing or damaged parent only costs the inheritance fix
            if found.hive_path is not None:
                parent_error = exc.message
    verdict = evaluate(found.sd, principals, desired, "key")
    full_key = found.full_path or key or None  # PowerShell needs the path the running system knows
    fix = None
    if not verdict.allowed:
        fix = suggest_fix(found.sd, parent.sd if parent else None, principals, desired, full_key, "key")

    def sddl_of(sd) -> str | None:
        if sd is None:
            return None
        try:
            return to_sddl(sd, "key")
        except SecurityDescriptorError as exc:
            return f"(no SDDL form: {exc.message})"

    if found.hive_path is not None:
        source: dict = {"hive": found.hive_path, "key": key, "full_path": full_key, "parent": parent_path,
                        "hive_kind": found.hive_kind}
        if parent_error:
            source["parent_error"] = parent_error
    else:
        source = {"sddl": found.sddl_text, "key": key or None, "parent": parent_path if parent else None}
    return {
        "source": source,
        "sddl": found.sddl_text if found.sddl_text is not None else sddl_of(found.sd),
        "parent_sddl": (parent.sddl_text or sddl_of(parent.sd)) if parent else None,
        "descriptor": found.sd.to_dict("key"),
        "principals": principals,
        "token": ([{"sid": sid, "name": sid_names.name_of(sid), "why": why} for sid, why, _ in token]
                  if token is not None else None),
        "warnings": list(sources.warnings),
        "access": verdict.to_dict(),
        "fix": fix.to_dict() if fix else None,
    }


@dataclass
class ReportModel:
    """What the HTML report shows, computed: the calls of the page, its findings and its scope."""

    trace: Trace
    calls: list
    findings: list[dict]
    total_calls: int
    scope: str | None
    unpaired: dict[str, int]
    detailed: int = REPORT_DETAILED_CALLS
    limits: list[str] = field(default_factory=list)  # what the inputs could not show
    warnings: list[str] = field(default_factory=list)  # about the descriptors given (a dirty hive)


def _with_descendants(chosen: Iterable) -> list:
    seen: dict[int, object] = {}
    for call in chosen:
        for c in call.subtree():
            if id(c) in seen:
                break
            seen[id(c)] = c
    return list(seen.values())


def report(files: Sequence[str], keep_going: bool = False, flt: CallFilter | None = None, call_id: int | None = None,
           hives: Iterable[str] = (), sddl_pairs: Iterable[str] = (), hive_logs: Iterable[str] = (),
           on_progress: OnProgress | None = None,
           on_stage: Callable[[str], None] | None = None) -> ReportModel:
    """The report's model, streamed: the trace is read once, calls keep their operations, and the
    findings come from the calls and the failures outside them (no event list is kept)."""
    from rpctrace.errors import RpctraceError

    acls = acl_sources(hives, sddl_pairs, hive_logs)
    # every operation of the calls a page can show in detail, and of every call that failed;
    # the others keep a count (a busy trace's operations would not fit in memory)
    detail = REPORT_DETAILED_CALLS if call_id is None and not (flt is not None and flt.active) else 0
    trace, result = calls(files, keep_going=keep_going, operations="report" if detail else "all",
                          on_progress=on_progress, keep_all_for=2 * detail)
    if on_stage is not None:
        on_stage("explaining")
    found = findings(trace, result, acls=acls)
    chosen = result.calls
    scope = None
    if call_id is not None:
        chosen = [c for c in result.calls if c.id == call_id]
        if not chosen:
            raise RpctraceError(f"no call {call_id} (calls are numbered 1..{len(result.calls)})")
        scope = f"--call {call_id}"
    elif flt is not None and flt.active:
        chosen = tree_roots(result, trace, flt)
        scope = flt.describe()
    if scope is not None:
        chosen = _with_descendants(chosen)
        ids = {c.id for c in chosen}
        found = [f for f in found if f.get("call") in ids
                 or (f.get("call") is None and call_id is None and _process_matches(flt, trace, f))]
    return ReportModel(trace, list(chosen), found, len(result.calls), scope, result.unpaired,
                       limits=limits(trace), warnings=list(acls.warnings))


def _process_matches(flt: CallFilter | None, trace: Trace, finding: dict) -> bool:
    """Whether a finding without a call (a failure seen only on the server's stack) belongs to a
    filtered page: only ``--server`` and ``--failed`` can say (there is no client or interface)."""
    if flt is None or flt.client or flt.interface:
        return False
    if not flt.server:
        return True
    from rpctrace.correlate.select import _ProcessMatch

    pid = (finding.get("server") or {}).get("pid")
    return _ProcessMatch(flt.server, trace, "server")(pid, None, None)


def record_maker(trace: Trace):
    """The maker of call records (the ``calls --format json`` shape) for ``trace``, with names
    from the interface database and status names."""
    from rpctrace.correlate.records import RecordMaker
    from rpctrace.knowledge.interfaces import lookup
    from rpctrace.knowledge.status import ntstatus_name

    return RecordMaker(trace, names=lookup, status_name=ntstatus_name)


def call_records(trace: Trace, chosen: Iterable) -> Iterable[dict]:
    """The records of ``chosen`` calls, one at a time (a listing can hold a million calls)."""
    return map(record_maker(trace), chosen)


def gc_paused():
    """A context in which the cyclic garbage collector does not run (building many small objects
    that live on, it would only rescan them; see :mod:`rpctrace.trace.gcpause`)."""
    from rpctrace.trace.gcpause import gc_paused as paused

    return paused()


def interface_names(uuid_text: str):
    """``(uuid, InterfaceInfo | None)`` for an interface UUID as typed (braces and case do not
    matter); ``uuid`` is None when the text is not a UUID."""
    from rpctrace.knowledge import interfaces

    uuid = interfaces.normalize_uuid(uuid_text)
    return uuid, (interfaces.info(uuid) if uuid is not None else None)


def search_names(text: str) -> list:
    """Interfaces and procedures whose name (or UUID, module, service, specification) holds ``text``."""
    from rpctrace.knowledge import interfaces

    return interfaces.search(text)


@dataclass
class DemoModel:
    """What ``rpctrace demo`` shows: the trace it wrote, what rpctrace found in it, and the files."""

    out_dir: str
    etl: str
    truth: str
    acl_args: str
    records: int
    calls: int
    servers: int
    findings: list[dict]


def demo(out_dir: str, seed: int = 1) -> DemoModel:
    """Write the article's AudioSrv incident as a trace (with its ground truth), read it back and
    explain it with the key's ACL as the article describes it.

    The ACL is not in any trace: the article describes it, so the demo supplies that description
    as SDDL (what ``--sddl KEYPATH=SDDL`` takes), also written to a file that every command reads
    with ``@FILE`` (argparse's arguments from a file), so the suggested commands stay short."""
    import os

    from rpctrace import synth
    from rpctrace.correlate import correlate
    from rpctrace.explain import article
    from rpctrace.render.files import open_output

    os.makedirs(out_dir, exist_ok=True)
    etl = os.path.join(out_dir, "audiosrv-access-denied.etl")
    truth = os.path.join(out_dir, "audiosrv-access-denied.truth.json")
    acl_args = os.path.join(out_dir, "audiosrv-acl.args")
    summary = synth.synthesize("audiosrv-access-denied", etl, truth, seed=seed)
    sddl = [f"{article.AUDIO_RENDER_KEY_PATH}={article.AUDIO_RENDER_KEY_SDDL}",
            f"{article.AUDIO_RENDER_PARENT_PATH}={article.AUDIO_RENDER_PARENT_SDDL}"]
    with open_output(acl_args) as fh:
        fh.write("".join(f"--sddl\n{pair}\n" for pair in sddl))
    trace = load([etl])
    result = correlate(trace)
    found = findings(trace, result, (), sddl)
    return DemoModel(out_dir, etl, truth, acl_args, summary["record_count"], len(result.calls),
                     len({c.server_pid for c in result.calls if c.server_pid}), found)


# ------------------------------------------------------------------ reading and correlating files

def correlate_files(paths, keep_going: bool = False, operations: str = "all", on_progress=None,
                    keep_all_for: int = 0, stacks: bool | None = None):
    """``(trace, correlation)`` for the files of one incident.

    One file is read as a stream (:class:`rpctrace.trace.stream.TraceStream`): calls are
    reconstructed as the events pass and only the calls and their servers' operations are kept,
    so memory follows the number of calls, not of events.  Several files are merged first
    (clock alignment needs them whole), then correlated.  The returned trace has the process
    and image tables and ``error`` (damage that ended reading); with one file its ``events``
    list is empty and ``records`` says how many events were read.  ``operations="failed"``
    keeps only the servers' failed operations (see :class:`Correlator`).  ``on_progress(done,
    total)`` is called as reading advances, when the reader can tell how far it is.
    """
    from rpctrace.correlate import Correlator
    from rpctrace.trace import load
    from rpctrace.trace.gcpause import gc_paused
    from rpctrace.trace.stream import open_stream

    if operations not in ("all", "failed", "report"):
        raise ValueError(f"operations must be 'all', 'failed' or 'report', not {operations!r}")
    paths = list(paths)
    captures = _captures(paths)
    if captures:
        return _with_captures(paths, captures, keep_going, operations)
    formats = [_format_of(p) for p in paths]
    if len(paths) != 1:
        trace = load(paths, keep_going=keep_going, on_progress=on_progress)
        trace.records = len(trace.events)
        trace.kinds = dict(Counter(map(_KIND, trace.events)))
        trace.formats = formats
        with gc_paused():
            correlator = Correlator(operations, keep_all_for)
            correlator.feed(trace.events)
            return trace, correlator.finish()
    # a listing of calls (operations="failed") shows no stacks: they need not be kept
    stream = open_stream(paths[0], keep_going=keep_going, stacks=operations != "failed" if stacks is None else stacks)
    try:
        with gc_paused():
            correlator = Correlator(operations, keep_all_for)
            reader = stream.reader
            kinds: Counter = Counter()
            for batch in stream.batches():
                kinds.update(map(_KIND, batch))
                correlator.feed(batch)
                if on_progress is not None:
                    pos = getattr(reader, "position", None)
                    if pos and pos[1]:
                        on_progress(*pos)
            trace = stream.finish()
            result = correlator.finish(pid_of=stream.pid_of)
            for call in result.calls:
                if call.operations:
                    stream.complete(call.operations)
            if result.outside:
                stream.complete(result.outside)
    finally:
        stream.close()
    trace.records = stream.records
    trace.kinds = dict(kinds)
    trace.formats = formats
    return trace, result


#: an Event's kind (a NamedTuple field: itemgetter is the fast way in C)
_KIND = itemgetter(8)


def _format_of(path) -> str:
    import os

    from rpctrace.sources import sniff

    try:
        return sniff(os.fspath(path))
    except Exception:
        return "unknown"


def _captures(paths) -> list:
    """The network captures (pcap, pcapng) among ``paths``."""
    import os

    from rpctrace.sources import sniff

    return [p for p in paths if sniff(os.fspath(p)) == "pcap"]


def _with_captures(paths, captures, keep_going: bool, operations: str):
    """Traces correlated as usual, then each capture's remote calls joined with them
    (:func:`rpctrace.correlate.remote.correlate_remote`).  Damage in a capture is handled as in
    a trace: what was read before it is kept and the error is in ``trace.error``.  Each
    capture's reading summary and the join's report are in ``trace.sources``."""
    import os

    from rpctrace.correlate import Correlation
    from rpctrace.correlate.remote import correlate_remote
    from rpctrace.errors import InputError
    from rpctrace.sources.net import NetReader
    from rpctrace.trace.model import Trace

    traces = [p for p in paths if p not in captures]
    if traces:
        trace, corr = correlate_files(traces, keep_going=keep_going, operations=operations)
    else:
        trace, corr = Trace([]), Correlation([], {}, {}, {})
        trace.records = 0
    streams = []
    for path in captures:
        events = []
        with NetReader(path, keep_going=keep_going) as reader:
            try:
                for ev in reader.events():
                    events.append(ev)
            except InputError as exc:
                if trace.error is None:
                    trace.error = exc
            trace.sources.append({"path": os.fspath(path), "format": "pcap", "frames": reader.stats.frames,
                                  "summary": reader.stats.summary(os.fspath(path))})
        trace.records = (trace.records or 0) + len(events)
        trace.kinds = dict(Counter(trace.kinds) + Counter(map(_KIND, events)))
        if "pcap" not in trace.formats:
            trace.formats = list(trace.formats) + ["pcap"]
        streams.append(events)
    result, report, counts = correlate_remote(corr, *streams)
    trace.sources.append({"join": report, "wire": counts})
    return trace, result


# ------------------------------------------------------------------ symbols

def symbolizer(symbols: str | None = None, image_path: Sequence[str] = (), timeout: float = 20.0):
    """The run's :class:`~rpctrace.symbols.Symbolizer` from a symbol path (debugger syntax; None:
    ``_NT_SYMBOL_PATH``) and directories of binaries copied from the traced machine."""
    from rpctrace.symbols import Symbolizer, symbol_path_from
    from rpctrace.symbols.download import Downloader

    return Symbolizer(symbol_path_from(symbols), list(image_path), downloader=Downloader(timeout=timeout))


def has_symbol_source(symbols: str | None, image_path: Sequence[str]) -> bool:
    """Whether a symbol path (given or from the environment) or image directories were given."""
    from rpctrace.symbols import symbol_path_from

    return symbol_path_from(symbols) is not None or bool(image_path)


def resolve_offsets(offsets: Sequence[str], pdb: str | None = None, image: str | None = None,
                    symbols: str | None = None, image_path: Sequence[str] = (), timeout: float = 20.0):
    """``(result, problems)``: module offsets resolved in a PDB, or through an image's debug
    directory (``rpctrace symbols resolve``)."""
    from rpctrace.symbols.lookup import parse_offset, resolve_in_image, resolve_in_pdb

    parsed = [parse_offset(o) for o in offsets]
    sym = symbolizer(symbols, image_path, timeout)
    result = resolve_in_pdb(pdb, parsed, sym) if pdb else resolve_in_image(image, parsed, sym)
    return result, list(sym.problems)


def fetch_symbols(files: Sequence[str], symbols: str | None, image_path: Sequence[str], timeout: float = 20.0,
                  include_all: bool = False, keep_going: bool = False):
    """``(trace, report, problems)``: the PDBs a trace's stacks need, fetched into the cache."""
    from rpctrace.symbols.lookup import fetch_for_trace

    sym = symbolizer(symbols, image_path, timeout)
    trace = load(files, keep_going=keep_going)
    report = fetch_for_trace(trace, sym, include_all=include_all)
    return trace, report, list(sym.problems)


# ---------------------------------------------------------------- tables for many traces


def index(inputs: Sequence[str], out: str, jobs: int = 0, cluster: str | None = None, keep_going: bool = False,
          force: bool = False, max_unpacked: str = "32G", on_progress: OnProgress | None = None) -> dict:
    """``rpctrace index``: every trace of ``inputs`` into the Parquet tables under ``out``
    (:mod:`rpctrace.tables`); the summary, with the bad inputs and their errors."""
    from rpctrace.tables.run import index as run_index, parse_size

    return run_index(inputs, out, jobs=jobs, cluster=cluster, keep_going=keep_going, force=force,
                     max_unpacked=parse_size(max_unpacked), on_progress=on_progress)


def named_queries():
    """The built-in questions of ``rpctrace query`` (:data:`rpctrace.tables.query.NAMED`)."""
    from rpctrace.tables.query import NAMED

    return NAMED


def query(on: str, sql: str | None = None, named: str | None = None, value: str | None = None
          ) -> tuple[list[str], list[tuple]]:
    """Column names and rows of ``sql``, or of the named query whose option is ``named`` (its
    parameter ``value``), over the index ``on``."""
    from rpctrace.tables.query import NAMED, connect, run

    con = connect(on)
    if sql is not None:
        return run(con, sql)
    q = next(q for q in NAMED if q.option == named)
    params = [] if q.metavar is None else [q.param(value) if q.param else value]
    return run(con, q.sql, params)


def indexed_trace(on: str, spec: str):
    """A context manager giving ``(plain trace file, call id)`` for ``--on DIR --call TRACE:ID``
    (:func:`rpctrace.tables.query.indexed_trace`)."""
    from rpctrace.tables.query import indexed_trace as resolve

    return resolve(on, spec)
