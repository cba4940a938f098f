from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Entry',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('text', fields.CharField(max_length=100)),
            ],
            options={'table': 'ledger_entries', 'app': 'ledger', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
