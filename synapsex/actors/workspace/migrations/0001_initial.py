from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Artifact',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('workspace_id', fields.CharField(max_length=40)),
                ('name', fields.CharField(max_length=255)),
                ('kind', fields.CharField(description='OUTPUT, FILE or REPORT', max_length=10)),
                ('media_type', fields.CharField(max_length=255)),
                ('size', fields.BigIntField()),
                ('sha256', fields.CharField(max_length=64)),
                ('blob_id', fields.CharField(max_length=40)),
                ('created_by', fields.CharField(null=True, max_length=60)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'artifacts', 'app': 'workspace', 'indexes': [Index(fields=['workspace_id', 'kind']), Index(fields=['blob_id'])], 'pk_attr': 'id', 'table_description': 'One upload: immutable metadata of content kept in a blob.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ArtifactBlob',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('sha256', fields.CharField(max_length=64)),
                ('size', fields.BigIntField()),
                ('ref_count', fields.IntField(description='artifacts whose content this is')),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'artifact_blobs', 'app': 'workspace', 'unique_together': (('tenant_id', 'sha256'),), 'pk_attr': 'id', 'table_description': 'Content of one tenant, stored once: the file is named by the hash and this row id.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Workspace',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('name', fields.CharField(max_length=100)),
                ('name_key', fields.CharField(description='the name NFKC-normalised and case-folded: unique in the tenant', max_length=100)),
                ('agent_id', fields.CharField(null=True, max_length=60)),
                ('status', fields.CharField(description='ACTIVE or ARCHIVED', max_length=10)),
                ('artifact_count', fields.IntField(default=0)),
                ('created_by', fields.CharField(null=True, max_length=60)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('archived_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'workspaces', 'app': 'workspace', 'unique_together': (('tenant_id', 'name_key'),), 'indexes': [Index(fields=['tenant_id', 'status'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WorkspaceOutbox',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('topic', fields.CharField(max_length=200)),
                ('payload', fields.TextField(description='JSON text', unique=False)),
                ('key', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'workspace_outbox', 'app': 'workspace', 'pk_attr': 'id', 'table_description': 'Domain events staged with the change that caused them (see ``domain_events``).'},
            bases=['OutboxEvent'],
        ),
        ops.CreateModel(
            name='WorkspaceQuota',
            fields=[
                ('tenant_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('workspaces', fields.IntField(default=0)),
                ('storage_bytes', fields.BigIntField(default=0, description='the sum of the sizes of the blobs of the tenant (each distinct content once)')),
            ],
            options={'table': 'workspace_quotas', 'app': 'workspace', 'pk_attr': 'tenant_id', 'table_description': 'The counters of a tenant, checked against its plan with conditional updates.'},
            bases=['Model'],
        ),
    ]
