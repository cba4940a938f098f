from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Vm',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('name', fields.CharField(max_length=63)),
                ('name_key', fields.CharField(description='the name lower-cased: unique per tenant', max_length=63)),
                ('labels', fields.TextField(description='JSON object of the labels (keys sorted)', unique=False)),
                ('runtime_version', fields.CharField(max_length=100)),
                ('agent_version', fields.CharField(max_length=100)),
                ('status', fields.CharField(description='the status the VM last reported', max_length=20)),
                ('token_hash', fields.CharField(unique=True, description='hex SHA-256 of the current VM token', max_length=64)),
                ('created_at_ms', fields.BigIntField()),
                ('last_heartbeat_ms', fields.BigIntField(null=True)),
                ('created_by', fields.CharField(null=True, description='the member who registered it', max_length=40)),
            ],
            options={'table': 'vms', 'app': 'vm_registry', 'unique_together': (('tenant_id', 'name_key'),), 'indexes': [Index(fields=['tenant_id', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='VmLabel',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('vm_id', fields.CharField(max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('key', fields.CharField(max_length=317)),
                ('value', fields.CharField(max_length=63)),
            ],
            options={'table': 'vm_labels', 'app': 'vm_registry', 'unique_together': (('vm_id', 'key'),), 'indexes': [Index(fields=['tenant_id', 'key', 'value'])], 'pk_attr': 'id', 'table_description': 'One label of a VM (a copy of ``vms.labels`` the filter can use an index on).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='VmRegistryOutbox',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('topic', fields.CharField(max_length=200)),
                ('payload', fields.TextField(description='JSON text', unique=False)),
                ('key', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'vm_registry_outbox', 'app': 'vm_registry', 'pk_attr': 'id', 'table_description': 'Domain events staged with the change that caused them (see ``domain_events``).'},
            bases=['OutboxEvent'],
        ),
        ops.CreateModel(
            name='VmTenantCounter',
            fields=[
                ('tenant_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('vms', fields.IntField()),
            ],
            options={'table': 'vm_tenant_counters', 'app': 'vm_registry', 'pk_attr': 'tenant_id', 'table_description': 'How many VMs a tenant has registered: the plan limit is one conditional update here.'},
            bases=['Model'],
        ),
    ]
