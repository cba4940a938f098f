from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Release',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('component', fields.CharField(max_length=10)),
                ('version', fields.CharField(description='as given (build metadata included)', max_length=100)),
                ('version_key', fields.CharField(description='the version without build metadata: what makes two releases the same', max_length=100)),
                ('notes', fields.TextField(unique=False)),
                ('url', fields.CharField(max_length=2000)),
                ('sha256', fields.CharField(max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'releases', 'app': 'update', 'unique_together': (('tenant_id', 'component', 'version_key'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Rollout',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('component', fields.CharField(max_length=10)),
                ('release_id', fields.CharField(max_length=40)),
                ('version', fields.CharField(max_length=100)),
                ('previous_release_id', fields.CharField(null=True, max_length=40)),
                ('previous_version', fields.CharField(null=True, max_length=100)),
                ('status', fields.CharField(max_length=12)),
                ('percentage', fields.IntField()),
                ('labels', fields.TextField(description='JSON object: the label selector narrowing the target', unique=False)),
                ('rings', fields.TextField(description='JSON list of rings, each name and labels', unique=False)),
                ('current_ring', fields.IntField(default=0, description='index of the last ring reached')),
                ('active_key', fields.CharField(null=True, unique=True, description='tenant and component while active, else NULL (unique: one active rollout each)', max_length=60)),
                ('targeted', fields.IntField(default=0)),
                ('updated', fields.IntField(default=0)),
                ('failed', fields.IntField(default=0)),
                ('halted_reason', fields.CharField(null=True, max_length=500)),
                ('revision', fields.IntField(default=0, description='incremented by every change (writes are conditional on it)')),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'rollouts', 'app': 'update', 'indexes': [Index(fields=['tenant_id', 'component']), Index(fields=['status'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RolloutAssignment',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('rollout_id', fields.CharField(max_length=40)),
                ('vm_id', fields.CharField(max_length=60)),
                ('component', fields.CharField(max_length=10)),
                ('bucket', fields.IntField()),
                ('ring', fields.IntField(description='index of the ring the VM was in')),
                ('from_version', fields.CharField(null=True, description='the version the VM reported when it was given the release', max_length=100)),
                ('assigned_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'rollout_assignments', 'app': 'update', 'unique_together': (('rollout_id', 'vm_id'),), 'indexes': [Index(fields=['tenant_id', 'vm_id', 'component'])], 'pk_attr': 'id', 'table_description': 'A VM given the release of a rollout (once per rollout and VM).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='UpdateOutbox',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('topic', fields.CharField(max_length=200)),
                ('payload', fields.TextField(description='JSON text', unique=False)),
                ('key', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'update_outbox', 'app': 'update', 'pk_attr': 'id'},
            bases=['OutboxEvent'],
        ),
    ]
