from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='ConsumerGroup',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('name', fields.CharField(max_length=100)),
                ('topics', fields.TextField(description='JSON list of topic patterns', unique=False)),
                ('max_attempts', fields.IntField()),
                ('visibility_timeout_ms', fields.BigIntField()),
                ('retry_backoff_ms', fields.BigIntField()),
                ('max_retry_backoff_ms', fields.BigIntField()),
                ('created_at_ms', fields.BigIntField()),
            ],
            options={'table': 'event_consumer_groups', 'app': 'event_bus', 'unique_together': (('tenant_id', 'name'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Delivery',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('group_id', fields.CharField(max_length=40)),
                ('event_id', fields.CharField(max_length=40)),
                ('seq', fields.BigIntField()),
                ('key', fields.CharField(null=True, max_length=200)),
                ('state', fields.CharField(max_length=12)),
                ('attempt', fields.IntField()),
                ('available_at_ms', fields.BigIntField()),
                ('lease_id', fields.CharField(null=True, max_length=40)),
                ('lease_expires_at_ms', fields.BigIntField(null=True)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('occurred_at_ms', fields.BigIntField()),
                ('updated_at_ms', fields.BigIntField()),
            ],
            options={'table': 'event_deliveries', 'app': 'event_bus', 'unique_together': (('group_id', 'event_id'),), 'indexes': [Index(fields=['group_id', 'state', 'seq']), Index(fields=['group_id', 'key', 'seq']), Index(fields=['event_id'])], 'pk_attr': 'id', 'table_description': "One event's state in one group: ``pending``, ``leased``, ``acked`` or ``dead_letter``."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Event',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('seq', fields.BigIntField(description="the position in the tenant's stream: consecutive, in commit order")),
                ('topic', fields.CharField(max_length=200)),
                ('key', fields.CharField(null=True, max_length=200)),
                ('payload', fields.TextField(description='compact JSON text, kept exactly as published', unique=False)),
                ('occurred_at_ms', fields.BigIntField()),
                ('trace_id', fields.CharField(null=True, max_length=64)),
                ('source', fields.CharField(max_length=100)),
                ('idempotency_key', fields.CharField(null=True, description='set while the key may still deduplicate (cleared when reused after the window)', max_length=200)),
            ],
            options={'table': 'events', 'app': 'event_bus', 'unique_together': (('tenant_id', 'seq'), ('tenant_id', 'idempotency_key')), 'indexes': [Index(fields=['occurred_at_ms'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='EventStream',
            fields=[
                ('tenant_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('last_seq', fields.BigIntField()),
            ],
            options={'table': 'event_streams', 'app': 'event_bus', 'pk_attr': 'tenant_id', 'table_description': 'Bookkeeping: the last ``seq`` handed out per tenant.'},
            bases=['Model'],
        ),
    ]
