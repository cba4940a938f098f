"""The actor runtime: actors with bounded mailboxes, supervision, routing, dead letters.

The public names are listed in ``__all__``; everything else is internal and may change.
"""

from synapsex.runtime.actor import Actor, ActorSpec, handler
from synapsex.runtime.broadcast import Broadcast, Listener
from synapsex.runtime.cell import ActorState
from synapsex.runtime.clock import Clock, SystemClock
from synapsex.runtime.deadletters import DeadLetter
from synapsex.runtime.envelope import Envelope, current_envelope
from synapsex.runtime.errors import AskCycle, UnknownService
from synapsex.runtime.ids import new_id
from synapsex.runtime.lane import Lane
from synapsex.runtime.metrics import ActorStatistics, render_prometheus
from synapsex.runtime.persistence import ServiceDatabase
from synapsex.runtime.registry import load_service, load_services, service_names
from synapsex.runtime.spans import (
    SpanBuffer,
    SpanRecord,
    SpanStatistics,
    TraceScope,
    current_scope,
    new_span_id,
    new_trace_id,
)
from synapsex.runtime.supervisor import Backoff, SupervisorPolicy
from synapsex.runtime.system import PendingMigrations, Runtime, RuntimeState

__all__ = [
    "Actor",
    "ActorSpec",
    "ActorState",
    "ActorStatistics",
    "AskCycle",
    "Backoff",
    "Broadcast",
    "Clock",
    "DeadLetter",
    "Envelope",
    "Lane",
    "Listener",
    "PendingMigrations",
    "Runtime",
    "RuntimeState",
    "ServiceDatabase",
    "SpanBuffer",
    "SpanRecord",
    "SpanStatistics",
    "SupervisorPolicy",
    "SystemClock",
    "TraceScope",
    "UnknownService",
    "current_envelope",
    "current_scope",
    "handler",
    "load_service",
    "load_services",
    "new_id",
    "new_span_id",
    "new_trace_id",
    "render_prometheus",
    "service_names",
]
