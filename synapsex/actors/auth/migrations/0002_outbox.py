from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('auth', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AuthOutbox',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('topic', fields.CharField(max_length=200)),
                ('payload', fields.TextField(description='JSON text', unique=False)),
                ('key', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'auth_outbox', 'app': 'auth', 'pk_attr': 'id', 'table_description': 'Domain events staged with the change that caused them (see ``domain_events``).'},
            bases=['OutboxEvent'],
        ),
    ]
