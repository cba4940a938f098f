from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='CatalogModel',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('scope_key', fields.CharField(description='the platform marker or the owning tenant id', max_length=40)),
                ('tenant_id', fields.CharField(null=True, max_length=40)),
                ('provider', fields.CharField(max_length=50)),
                ('name', fields.CharField(max_length=200)),
                ('display_name', fields.CharField(max_length=200)),
                ('modality', fields.CharField(max_length=20)),
                ('capabilities', fields.TextField(description='JSON list of capability names in the contract order', unique=False)),
                ('context_window', fields.IntField()),
                ('max_output_tokens', fields.IntField(null=True)),
                ('deprecation_date', fields.DateField(null=True)),
                ('successor_id', fields.CharField(null=True, max_length=40)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'models', 'app': 'model_registry', 'unique_together': (('scope_key', 'provider', 'name'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ModelPrice',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('model_id', fields.CharField(max_length=40)),
                ('scope_key', fields.CharField(description='the platform marker or the tenant whose own price (override) this is', max_length=40)),
                ('tenant_id', fields.CharField(null=True, max_length=40)),
                ('input_per_mtok', fields.DecimalField(max_digits=19, decimal_places=9)),
                ('output_per_mtok', fields.DecimalField(max_digits=19, decimal_places=9)),
                ('cached_input_per_mtok', fields.DecimalField(null=True, max_digits=19, decimal_places=9)),
                ('effective_from', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('source', fields.CharField(max_length=2000)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'model_prices', 'app': 'model_registry', 'unique_together': (('model_id', 'scope_key', 'effective_from'),), 'pk_attr': 'id', 'table_description': 'One effective-dated price (rows are only ever added).'},
            bases=['Model'],
        ),
    ]
