from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='TelemetryEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('tenant_id', fields.CharField(null=True, max_length=40)),
                ('kind', fields.CharField(max_length=8)),
                ('trace_id', fields.CharField(null=True, max_length=32)),
                ('span_id', fields.CharField(null=True, max_length=16)),
                ('parent_span_id', fields.CharField(null=True, max_length=16)),
                ('service', fields.CharField(max_length=100)),
                ('name', fields.CharField(max_length=200)),
                ('started_at_us', fields.BigIntField()),
                ('duration_us', fields.BigIntField(null=True, description='empty for events')),
                ('status', fields.CharField(max_length=8)),
                ('error_code', fields.CharField(null=True, max_length=64)),
                ('attributes', fields.TextField(default='{}', description='JSON object of safe metadata', unique=False)),
            ],
            options={'table': 'telemetry_events', 'app': 'observability', 'indexes': [Index(fields=['trace_id']), Index(fields=['tenant_id', 'started_at_us']), Index(fields=['started_at_us'])], 'pk_attr': 'id', 'table_description': 'A span (timed work in a trace) or an event (a point in time), of a tenant or the platform.'},
            bases=['Model'],
        ),
    ]
