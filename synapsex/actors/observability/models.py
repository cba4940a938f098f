"""The table owned by observability-service: ``telemetry_events`` (spans and events).

Times are epoch microseconds (spans are timed to the microsecond, and integer columns keep the
percentile queries and the retention's single DELETE simple on both engines)."""

from tortoise import fields
from tortoise.models import Model


class TelemetryEvent(Model):
    """A span (timed work in a trace) or an event (a point in time), of a tenant or the platform."""

    # an integer key assigned by the database: half the cost of a text one per span (SQLite)
    id = fields.BigIntField(primary_key=True)
    tenant_id = fields.CharField(max_length=40, null=True)
    kind = fields.CharField(max_length=8)
    trace_id = fields.CharField(max_length=32, null=True)
    span_id = fields.CharField(max_length=16, null=True)
    parent_span_id = fields.CharField(max_length=16, null=True)
    service = fields.CharField(max_length=100)
    name = fields.CharField(max_length=200)
    started_at_us = fields.BigIntField()
    #: empty for events
    duration_us = fields.BigIntField(null=True)
    status = fields.CharField(max_length=8)
    error_code = fields.CharField(max_length=64, null=True)
    #: JSON object of safe metadata
    attributes = fields.TextField(default="{}")

    class Meta:
        app = "observability"
        table = "telemetry_events"
        # a trace id names one trace, and the ones SynapseX makes start with the time
        # (runtime.spans.new_trace_id): new entries land at the end of this index, which is
        # much cheaper to insert into than random places of it or one led by the tenant
        indexes = (("trace_id",), ("tenant_id", "started_at_us"), ("started_at_us",))
