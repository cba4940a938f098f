from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='DailyCounter',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('metric', fields.CharField(max_length=40)),
                ('day', fields.CharField(description='the UTC date as YYYY-MM-DD', max_length=10)),
                ('used', fields.BigIntField(default=0)),
            ],
            options={'table': 'billing_daily_counters', 'app': 'billing', 'unique_together': (('tenant_id', 'metric', 'day'),), 'pk_attr': 'id', 'table_description': 'One tenant, one metered limit, one UTC day: how much of the limit is taken.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='IntakeState',
            fields=[
                ('tenant_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('backfilled', fields.BooleanField(default=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'billing_intake', 'app': 'billing', 'pk_attr': 'tenant_id', 'table_description': 'A tenant whose usage events billing reads, and whether its backfill is done.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='UsageRecord',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('kind', fields.CharField(max_length=30)),
                ('quantity', fields.BigIntField()),
                ('model', fields.CharField(null=True, description='the model id for token kinds, else null', max_length=200)),
                ('at_us', fields.BigIntField(description='when the usage happened, epoch microseconds UTC')),
                ('day', fields.CharField(description='the UTC date of at as YYYY-MM-DD', max_length=10)),
                ('source', fields.CharField(description='a service name, or apikey and the key id through the gateway', max_length=100)),
                ('idempotency_key', fields.CharField(max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'usage_records', 'app': 'billing', 'unique_together': (('tenant_id', 'idempotency_key'),), 'indexes': [Index(fields=['tenant_id', 'at_us']), Index(fields=['tenant_id', 'kind'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
