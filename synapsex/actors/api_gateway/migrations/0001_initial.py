from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Agent',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('name', fields.CharField(max_length=100)),
                ('name_key', fields.CharField(null=True, description='the name as compared (NFKC, case-folded), NULL once archived (which frees the name)', max_length=400)),
                ('description', fields.TextField(unique=False)),
                ('capabilities', fields.TextField(description='JSON list of capability tags as registered', unique=False)),
                ('capability_keys', fields.TextField(description='the same tags lower-cased and space-separated with a leading and a trailing space', unique=False)),
                ('version', fields.CharField(max_length=100)),
                ('status', fields.CharField(description='ACTIVE or ARCHIVED', max_length=10)),
                ('created_by', fields.CharField(null=True, description='the member who registered it', max_length=40)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('archived_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'agents', 'app': 'api_gateway', 'unique_together': (('tenant_id', 'name_key'),), 'indexes': [Index(fields=['tenant_id', 'status'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AgentCount',
            fields=[
                ('tenant_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('active', fields.IntField(default=0)),
            ],
            options={'table': 'api_gateway_agent_counts', 'app': 'api_gateway', 'pk_attr': 'tenant_id', 'table_description': 'How many ACTIVE agents a tenant has (the plan limit is a conditional update of it).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ApiGatewayOutbox',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('topic', fields.CharField(max_length=200)),
                ('payload', fields.TextField(description='JSON text', unique=False)),
                ('key', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'api_gateway_outbox', 'app': 'api_gateway', 'pk_attr': 'id', 'table_description': 'Domain events staged with the change that caused them (see ``domain_events``).'},
            bases=['OutboxEvent'],
        ),
        ops.CreateModel(
            name='McpTool',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('scope_key', fields.CharField(description='the platform marker or the tenant id', max_length=40)),
                ('server_id', fields.CharField(max_length=40)),
                ('server_name', fields.CharField(max_length=100)),
                ('original_name', fields.CharField(description='the tool name as the server lists it', max_length=200)),
                ('exposed_name', fields.CharField(description='server name and tool name joined by two underscores, unique per scope', max_length=310)),
                ('title', fields.CharField(null=True, max_length=300)),
                ('description', fields.TextField(default='', unique=False)),
                ('input_schema', fields.TextField(description='JSON Schema of the arguments as JSON text', unique=False)),
                ('annotations', fields.TextField(default='{}', description='the tool annotations as JSON text', unique=False)),
                ('definition_sha256', fields.CharField(description='SHA-256 hex of the canonical tool definition', max_length=64)),
                ('previous_sha256', fields.CharField(null=True, description='the definition hash before the last change, if it changed', max_length=64)),
                ('status', fields.CharField(description='ACTIVE or CHANGED or REMOVED', max_length=10)),
                ('synced_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'mcp_tools', 'app': 'api_gateway', 'unique_together': (('scope_key', 'exposed_name'),), 'indexes': [Index(fields=['scope_key', 'server_id'])], 'pk_attr': 'id', 'table_description': 'One tool of one MCP server as the router exposes it.'},
            bases=['Model'],
        ),
    ]
