"""Reading inputs: whole (every event kept) or streamed (calls rebuilt as events pass), with the
inputs' coverage and losses."""

from __future__ import annotations

import os
from collections import Counter
from contextlib import AbstractContextManager
from operator import itemgetter
from typing import TYPE_CHECKING, Callable, Sequence

from rpctrace.correlate.calls import Correlation, Correlator
from rpctrace.trace.coverage import Coverage
from rpctrace.trace.model import Trace

if TYPE_CHECKING:
    from rpctrace.sources.net.etw import PacketTap
    from rpctrace.trace.stream import TraceStream

OnProgress = Callable[[float, float], None]


def source_warnings(trace: Trace) -> list[str]:
    """One line per loss or damage the readers counted (commands print them on stderr, so that
    stdout stays machine-readable)."""
    from rpctrace.sources import losses

    lines = []
    for info in trace.sources:
        if "path" not in info:
            continue  # a capture's join report, not a source
        events, buffers = losses(info)
        if events or buffers or info.get("buffers_flagged_lost"):
            lines.append(f"{info['path']}: the logger lost {events} events and {buffers} buffers")
        damage = info.get("damage") or []
        if damage:
            lines.append(f"{info['path']}: skipped {len(damage)} damaged region(s); first: {damage[0]}")
        if info.get("summary"):  # a capture's, or a trace's packets' (what was stepped over)
            lines.append(info["summary"])
    return lines


def load(files: Sequence[str], keep_going: bool = False, on_progress: OnProgress | None = None,
         symbols: str | None = None, image_path: Sequence[str] = ()) -> Trace:
    """Every event of ``files``, assembled.  Damage that ended reading is in ``trace.error`` (the
    caller reports it after using what was read); it is raised only when nothing was read."""
    from rpctrace.trace import load as load_trace

    trace = load_trace(files, keep_going=keep_going, on_progress=on_progress)
    if trace.error is not None and not trace.events:
        raise trace.error
    _symbols(trace, symbols, image_path)
    return trace


def _symbols(trace: Trace, symbols: str | None, image_path: Sequence[str]) -> None:
    from rpctrace.pipeline.symbols import attach_symbols

    attach_symbols(trace, symbols, image_path)


def calls(files: Sequence[str], keep_going: bool = False, operations: str = "all",
          on_progress: OnProgress | None = None, keep_all_for: int = 0,
          stacks: bool | None = None, symbols: str | None = None,
          image_path: Sequence[str] = ()) -> tuple[Trace, Correlation]:
    """``(trace, correlation)``, streamed when there is one file (see the module docstring).

    ``operations="failed"`` keeps only the servers' failed operations (a listing shows no
    others); ``"all"`` keeps every operation and the stacks of failed ones (the tree).
    ``stacks`` reads stack walks (default: unless ``operations="failed"``)."""
    trace, result = correlate_files(files, keep_going=keep_going, operations=operations, on_progress=on_progress,
                                    keep_all_for=keep_all_for, stacks=stacks)
    if trace.error is not None and not trace.records:
        raise trace.error
    _symbols(trace, symbols, image_path)
    return trace, result


def coverage(trace: Trace) -> Coverage:
    """What the inputs hold and lack (:mod:`rpctrace.trace.coverage`)."""
    from rpctrace.trace.coverage import coverage as measure

    return measure(Counter(trace.kinds), [s for s in trace.sources if "path" in s], trace.error, trace.formats)


def limits(trace: Trace, losses: bool = True) -> list[str]:
    """The lines that say how the inputs limit an answer (printed by every answering command;
    ``losses=False``: without the loss line, which :func:`source_warnings` words per file)."""
    from rpctrace.trace.coverage import limits as lines

    return lines(coverage(trace), losses=losses)


def gc_paused() -> AbstractContextManager[None]:
    """A context in which the cyclic garbage collector does not run (building many small objects
    that live on, it would only rescan them; see :mod:`rpctrace.trace.gcpause`)."""
    from rpctrace.trace.gcpause import gc_paused as paused

    return paused()


def correlate_files(paths: Sequence[str | os.PathLike[str]], keep_going: bool = False, operations: str = "all",
                    on_progress: OnProgress | None = None, keep_all_for: int = 0,
                    stacks: bool | None = None) -> tuple[Trace, Correlation]:
    """``(trace, correlation)`` for the files of one incident.

    Packets in an ETL trace (netsh trace, pktmon: :mod:`rpctrace.sources.net.etw`) are taken
    from the events as they pass; when there are any, their remote calls are joined with the
    trace's RPC events (:func:`_join_packets`: one file has one clock, so with one file the
    clock offset is 0, not estimated).

    One file is read as a stream (:class:`rpctrace.trace.stream.TraceStream`): calls are
    reconstructed as the events pass and only the calls and their servers' operations are kept,
    so memory follows the number of calls, not of events.  Several files are merged first
    (clock alignment needs them whole), then correlated.  The returned trace has the process
    and image tables and ``error`` (damage that ended reading); with one file its ``events``
    list is empty and ``records`` says how many events were read.  ``operations="failed"``
    keeps only the servers' failed operations (see :class:`Correlator`).  ``on_progress(done,
    total)`` is called as reading advances, when the reader can tell how far it is.
    """
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
            result = correlator.finish()
        if "etl" in formats:
            from rpctrace.sources.net.etw import packet_events

            etls = ", ".join(os.fspath(p) for p, f in zip(paths, formats) if f == "etl")
            _wire, found = packet_events(trace.events, etls)
            if found.found:
                result = _join_packets(trace, result, found, offset=None)
        return trace, result
    from rpctrace.correlate import fast

    # the optional C engine: the same result, faster (None: the Python stream below does it)
    tap = _packet_tap(paths[0]) if formats[0] == "etl" else None
    got = fast.correlate_file(paths[0], keep_going=keep_going, operations=operations, on_progress=on_progress,
                              keep_all_for=keep_all_for, stacks=stacks, tap=tap)
    if got is not None:
        trace, result = got
        trace.formats = formats
        if tap is not None and tap.found:
            result = _join_packets(trace, result, tap, offset=0)
        return trace, result
    # a listing of calls (operations="failed") shows no stacks: they need not be kept
    stream = open_stream(paths[0], keep_going=keep_going, stacks=operations != "failed" if stacks is None else stacks)
    tap = _packet_tap(paths[0]) if formats[0] == "etl" else None
    try:
        with gc_paused():
            trace, result = correlate_stream(stream, Correlator(operations, keep_all_for), tap, on_progress)
    finally:
        stream.close()
    trace.formats = formats
    if tap is not None and tap.found:
        result = _join_packets(trace, result, tap, offset=0)
    return trace, result


def correlate_stream(stream: TraceStream, correlator: Correlator, tap: PacketTap | None = None,
                     on_progress: OnProgress | None = None) -> tuple[Trace, Correlation]:
    """The Python path of one streamed file: every list of assembled events goes to the
    correlator (and to the packet ``tap``), then what only the end of the stream tells (process
    ids learnt late, registry paths, stacks) completes the operations the calls kept.  The C
    engine (``correlate.fast``) is tested equal to this."""
    kinds: Counter[str] = Counter()
    for batch in stream.batches():
        kinds.update(map(_KIND, batch))
        correlator.feed(batch)
        if tap is not None:
            tap.feed(batch)
        if on_progress is not None:
            pos = stream.reader.progress()
            if pos is not None:
                on_progress(*pos)
    trace = stream.finish()
    result = correlator.finish(pid_of=stream.pid_of)
    for call in result.calls:
        if call.operations:
            stream.complete(call.operations)
    if result.outside:
        stream.complete(result.outside)
    trace.records = stream.records
    trace.kinds = dict(kinds)
    return trace, result


def _packet_tap(path: str | os.PathLike[str]) -> PacketTap:
    from rpctrace.sources.net.etw import PacketTap

    return PacketTap(os.fspath(path))


def _join_packets(trace: Trace, corr: Correlation, tap: PacketTap, offset: int | None) -> Correlation:
    """The remote calls of a trace's own packets (``tap``: a finished or fed
    :class:`~rpctrace.sources.net.etw.PacketTap`) joined with its calls, as a capture's are
    (:func:`rpctrace.correlate.remote.correlate_remote`); the packets' reading summary and the
    join's report go into ``trace.sources``, their ``net.*`` kinds into ``trace.kinds``."""
    from rpctrace.correlate.remote import correlate_remote

    events = tap.finish()
    trace.sources.append(tap.source_info())
    trace.kinds = dict(Counter(trace.kinds) + Counter(map(_KIND, events)))
    if "etl packets" not in trace.formats:
        trace.formats = list(trace.formats) + ["etl packets"]
    result, report, counts = correlate_remote(corr, events, offset=offset)
    trace.sources.append({"join": report, "wire": counts})
    return result


#: an Event's kind (a NamedTuple field: itemgetter is the fast way in C)
_KIND = itemgetter(8)


def _format_of(path: str | os.PathLike[str]) -> str:
    import os

    from rpctrace.sources import sniff

    try:
        return sniff(os.fspath(path))
    except Exception:
        return "unknown"


def debuggable(paths: Sequence[str]) -> list[str]:
    """The inputs that show processes and threads to debug (every one but the network captures:
    ``rpctrace windbg``).  Calls keep their numbers: the traces' calls are numbered before a
    capture's calls are joined to them (:func:`_with_captures`).  :class:`RpctraceError` when
    there is none."""
    from rpctrace.errors import RpctraceError

    captures = _captures(paths)
    traces = [p for p in paths if p not in captures]
    if not traces:
        raise RpctraceError("a network capture shows no process or thread to break on: give the server's "
                            "ETW trace (a WinDbg script debugs a process on one machine)")
    return traces


def _captures(paths: Sequence[str | os.PathLike[str]]) -> list[str | os.PathLike[str]]:
    """The network captures (pcap, pcapng) among ``paths``."""
    import os

    from rpctrace.sources import sniff

    return [p for p in paths if sniff(os.fspath(p)) == "pcap"]


def _with_captures(paths: Sequence[str | os.PathLike[str]], captures: list[str | os.PathLike[str]], keep_going: bool,
                   operations: str) -> tuple[Trace, Correlation]:
    """Traces correlated as usual, then each capture's remote calls joined with them
    (:func:`rpctrace.correlate.remote.correlate_remote`).  Damage in a capture is handled as in
    a trace: what was read before it is kept and the error is in ``trace.error``.  Each
    capture's reading summary and the join's report are in ``trace.sources``."""

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
            trace.sources.append(reader.source_info())
        trace.records = (trace.records or 0) + len(events)
        trace.kinds = dict(Counter(trace.kinds) + Counter(map(_KIND, events)))
        if "pcap" not in trace.formats:
            trace.formats = list(trace.formats) + ["pcap"]
        streams.append(events)
    result, report, counts = correlate_remote(corr, *streams)
    trace.sources.append({"join": report, "wire": counts})
    return trace, result
