from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='AgentDeployment',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('agent_id', fields.CharField(max_length=60)),
                ('vm_id', fields.CharField(max_length=60)),
                ('version', fields.CharField(max_length=100)),
                ('state', fields.CharField(description='PENDING or RUNNING or FAILED or UNDEPLOYED', max_length=12)),
                ('error', fields.TextField(null=True, description='what the VM said went wrong (FAILED)', unique=False)),
                ('slot', fields.CharField(null=True, unique=True, description='agent id and VM id while current, NULL once UNDEPLOYED (one current per agent and VM)', max_length=130)),
                ('replaces_id', fields.CharField(null=True, description='the deployment this one replaced on the same VM', max_length=40)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('reported_at', fields.DatetimeField(null=True, description='when a report of the VM last changed the state', auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'agent_deployments', 'app': 'agent_registry', 'indexes': [Index(fields=['tenant_id', 'agent_id']), Index(fields=['tenant_id', 'vm_id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AgentRegistryOutbox',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('topic', fields.CharField(max_length=200)),
                ('payload', fields.TextField(description='JSON text', unique=False)),
                ('key', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'agent_registry_outbox', 'app': 'agent_registry', 'pk_attr': 'id', 'table_description': 'Domain events staged with the change that caused them (see ``domain_events``).'},
            bases=['OutboxEvent'],
        ),
    ]
