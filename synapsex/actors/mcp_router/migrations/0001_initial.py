from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='McpPlan',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('status', fields.CharField(description='PROPOSED APPROVED REJECTED EXECUTING SUCCEEDED FAILED STALE', max_length=12)),
                ('intent', fields.TextField(unique=False)),
                ('arguments', fields.TextField(default='{}', description='the arguments the caller gave, JSON text', unique=False)),
                ('workspace_id', fields.CharField(null=True, max_length=40)),
                ('server_ids', fields.TextField(default='[]', description='JSON list of the server ids the plan considered', unique=False)),
                ('candidates', fields.TextField(default='[]', description='JSON list of the ranked candidates with their reasons and policy verdicts', unique=False)),
                ('chosen_server_id', fields.CharField(null=True, max_length=40)),
                ('chosen_tool', fields.CharField(null=True, description='the exposed tool name', max_length=310)),
                ('chosen_original_name', fields.CharField(null=True, max_length=200)),
                ('chosen_arguments', fields.TextField(default='{}', description='JSON object of the arguments the tool would be called with', unique=False)),
                ('missing_arguments', fields.TextField(default='[]', description='JSON list of required arguments not supplied', unique=False)),
                ('tool_definition_sha256', fields.CharField(null=True, max_length=64)),
                ('arguments_sha256', fields.CharField(null=True, max_length=64)),
                ('requires_approval', fields.BooleanField(default=True)),
                ('explanation', fields.TextField(default='', unique=False)),
                ('policy_effect', fields.CharField(null=True, max_length=20)),
                ('policy_reason', fields.TextField(null=True, unique=False)),
                ('created_by_member_id', fields.CharField(null=True, max_length=40)),
                ('approved_by_member_id', fields.CharField(null=True, max_length=40)),
                ('approved_role', fields.CharField(null=True, max_length=20)),
                ('approved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('rejected_reason', fields.TextField(null=True, unique=False)),
                ('executed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('duration_ms', fields.FloatField(null=True)),
                ('outcome_error', fields.TextField(null=True, unique=False)),
                ('result_artifact_id', fields.CharField(null=True, max_length=40)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'mcp_plans', 'app': 'mcp_router', 'indexes': [Index(fields=['tenant_id', 'status'])], 'pk_attr': 'id', 'table_description': 'A plan shown to a person before a tool runs (owned by the plans part of the service).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='McpRouterOutbox',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('topic', fields.CharField(max_length=200)),
                ('payload', fields.TextField(description='JSON text', unique=False)),
                ('key', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'mcp_router_outbox', 'app': 'mcp_router', 'pk_attr': 'id', 'table_description': 'Domain events staged with the change that caused them (see ``domain_events``).'},
            bases=['OutboxEvent'],
        ),
        ops.CreateModel(
            name='McpServer',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('scope_key', fields.CharField(description='the platform marker or the owning tenant id', max_length=40)),
                ('tenant_id', fields.CharField(null=True, max_length=40)),
                ('name', fields.CharField(max_length=63)),
                ('url', fields.CharField(null=True, description='NULL for a platform server the operator has not configured', max_length=2048)),
                ('description', fields.TextField(default='', unique=False)),
                ('enabled', fields.BooleanField(default=True)),
                ('auth_secret_name', fields.CharField(null=True, description='the tenant secret holding the Authorization header value', max_length=128)),
                ('last_synced_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_sync_error', fields.TextField(null=True, unique=False)),
                ('last_sync', fields.TextField(null=True, description='JSON counts of the last successful sync (added, changed, removed, unchanged, skipped, pages)', unique=False)),
                ('tool_count', fields.IntField(default=0, description='catalog tools of the server that are not REMOVED, as of the last successful sync')),
                ('created_by', fields.CharField(null=True, max_length=40)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'mcp_servers', 'app': 'mcp_router', 'unique_together': (('scope_key', 'name'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
