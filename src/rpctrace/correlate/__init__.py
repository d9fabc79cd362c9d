"""Correlation: ALPC message pairing -> RPC calls -> server-side attribution -> call tree.

``correlate(trace)`` is the library API; ``call_record`` gives the JSON shape the CLI prints.
"""

from __future__ import annotations

from rpctrace.correlate.alpc import AlpcMessage, AlpcPairing, pair_messages
from rpctrace.correlate.calls import Call, Correlation, Correlator, correlate_events
from rpctrace.correlate.records import call_record, failure_record

__all__ = ["AlpcMessage", "AlpcPairing", "Call", "Correlation", "Correlator", "correlate", "correlate_events", "pair_messages",
           "call_record", "failure_record"]


def correlate(trace) -> Correlation:
    return correlate_events(trace.events)
