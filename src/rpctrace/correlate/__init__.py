"""Correlation: ALPC message pairing -> RPC calls -> server-side attribution -> call tree.

``correlate(trace)`` correlates an assembled trace, :class:`Correlator` events fed as they come
(the pipeline streams a file through it, :func:`rpctrace.pipeline.correlate_files`);
``call_record`` gives the JSON shape the CLI prints.  Nothing here opens a file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rpctrace.correlate.alpc import AlpcMessage, AlpcPairing, pair_messages
from rpctrace.correlate.calls import Call, Correlation, Correlator, correlate_events
from rpctrace.correlate.records import call_record, failure_record

if TYPE_CHECKING:
    from rpctrace.trace.model import Trace

__all__ = ["AlpcMessage", "AlpcPairing", "Call", "Correlation", "Correlator", "correlate", "correlate_events", "pair_messages",
           "call_record", "failure_record"]


def correlate(trace: Trace) -> Correlation:
    return correlate_events(trace.events)
