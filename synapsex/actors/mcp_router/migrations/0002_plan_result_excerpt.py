from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('mcp_router', '0001_initial')]

    initial = False

    operations = [
        ops.AddField(
            model_name='McpPlan',
            name='result_excerpt',
            field=fields.TextField(null=True, description='the start of the result document (JSON), also for plans without a workspace', unique=False),
        ),
    ]
