"""Correlation: ALPC message pairing -> RPC calls -> server-side attribution -> call tree.

``correlate(trace)`` is the library API; ``call_record`` gives the JSON shape the CLI prints.
"""

from __future__ import annotations

from rpctrace.correlate.alpc import AlpcMessage, AlpcPairing, pair_messages
from rpctrace.correlate.calls import Call, Correlation, Correlator, correlate_events
from rpctrace.correlate.records import call_record, failure_record

__all__ = ["AlpcMessage", "AlpcPairing", "Call", "Correlation", "Correlator", "correlate", "correlate_events", "correlate_files", "pair_messages",
           "call_record", "failure_record"]


def correlate(trace) -> Correlation:
    return correlate_events(trace.events)


def correlate_files(paths, keep_going: bool = False, operations: str = "all", on_progress=None,
                    keep_all_for: int = 0):
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
    from rpctrace.trace import load
    from rpctrace.trace.gcpause import gc_paused
    from rpctrace.trace.stream import open_stream

    if operations not in ("all", "failed", "report"):
        raise ValueError(f"operations must be 'all', 'failed' or 'report', not {operations!r}")
    paths = list(paths)
    captures = _captures(paths)
    if captures:
        return _with_captures(paths, captures, keep_going, operations)
    if len(paths) != 1:
        trace = load(paths, keep_going=keep_going, on_progress=on_progress)
        trace.records = len(trace.events)
        with gc_paused():
            correlator = Correlator(operations, keep_all_for)
            correlator.feed(trace.events)
            return trace, correlator.finish()
    # a listing of calls (operations="failed") shows no stacks: they need not be kept
    stream = open_stream(paths[0], keep_going=keep_going, stacks=operations != "failed")
    try:
        with gc_paused():
            correlator = Correlator(operations, keep_all_for)
            reader = stream.reader
            for batch in stream.batches():
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
    return trace, result


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
        streams.append(events)
    result, report, counts = correlate_remote(corr, *streams)
    trace.sources.append({"join": report, "wire": counts})
    return trace, result
