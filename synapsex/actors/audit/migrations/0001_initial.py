from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='AuditChainHead',
            fields=[
                ('tenant_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('seq', fields.BigIntField()),
                ('hash', fields.CharField(max_length=64)),
            ],
            options={'table': 'audit_chain_heads', 'app': 'audit', 'pk_attr': 'tenant_id', 'table_description': "Bookkeeping: the latest seq and hash of each tenant's chain."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AuditRecord',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('seq', fields.BigIntField()),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('actor_member_id', fields.CharField(null=True, max_length=40)),
                ('actor_key_id', fields.CharField(null=True, max_length=40)),
                ('action', fields.CharField(max_length=100)),
                ('resource_type', fields.CharField(max_length=100)),
                ('resource_id', fields.CharField(null=True, max_length=255)),
                ('outcome', fields.CharField(max_length=10)),
                ('error_code', fields.CharField(null=True, max_length=100)),
                ('request_id', fields.CharField(null=True, max_length=100)),
                ('prev_hash', fields.CharField(max_length=64)),
                ('hash', fields.CharField(max_length=64)),
            ],
            options={'table': 'audit_records', 'app': 'audit', 'unique_together': (('tenant_id', 'seq'),), 'indexes': [Index(fields=['tenant_id', 'action'])], 'pk_attr': 'id', 'table_description': "An append-only audit record, hash-chained to the tenant's previous one."},
            bases=['Model'],
        ),
    ]
