"""The one place that runs rpctrace's stages: sources -> trace -> correlate -> explain.

Modules: :mod:`.read` (inputs, whole or streamed; coverage), :mod:`.select` (filters, trees,
records), :mod:`.explain` (findings, the ACL check), :mod:`.report` (the HTML report's model),
:mod:`.tools` (names, the demo, symbols), :mod:`.tables` (``index`` and ``query`` over many traces).
Everything is re-exported here.

Commands parse their arguments, call one function here and hand the result to a renderer;
renderers never compute.  Two ways through the stages:

* **streamed** (:func:`calls`): one file is read as a stream and calls are rebuilt as events pass,
  so memory follows the calls, not the events (``rpctrace calls`` on ten million events);
* **whole** (:func:`load`): every event is kept, for what needs the whole trace (``events``,
  ``explain``'s stacks and identities, the report's timeline).

``on_progress(done, total)`` is a plain callable (see :mod:`rpctrace.progress`): the stages
report how far reading is, the command decides whether a bar is shown.
"""

from rpctrace.correlate.select import CallFilter
from rpctrace.pipeline.explain import Explanation, acl_check, acl_sources, explain, findings
from rpctrace.pipeline.read import (
    OnProgress,
    calls,
    correlate_files,
    correlate_stream,
    coverage,
    debuggable,
    gc_paused,
    limits,
    load,
    source_warnings,
)
from rpctrace.pipeline.report import REPORT_DETAILED_CALLS, ReportModel, report
from rpctrace.pipeline.select import call_records, call_with_stacks, record_maker, select, tree_roots
from rpctrace.pipeline.symbols import attach_symbols, has_symbol_source, symbolizer
from rpctrace.pipeline.tables import index, indexed_trace, named_queries, query
from rpctrace.pipeline.tools import DemoModel, demo, fetch_symbols, interface_names, resolve_offsets, search_names

__all__ = [
    "REPORT_DETAILED_CALLS", "CallFilter", "attach_symbols", "DemoModel", "Explanation", "OnProgress", "ReportModel", "acl_check",
    "acl_sources", "call_records", "call_with_stacks", "calls", "correlate_files", "correlate_stream", "coverage", "debuggable", "demo", "explain",
    "fetch_symbols", "findings", "gc_paused", "has_symbol_source", "index", "indexed_trace", "interface_names",
    "limits", "load", "named_queries", "query", "record_maker", "report", "resolve_offsets", "search_names", "select",
    "source_warnings", "symbolizer", "tree_roots",
]
