from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Secret',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('name', fields.CharField(max_length=128)),
                ('description', fields.CharField(null=True, description='the latest version description', max_length=500)),
                ('latest_version', fields.IntField(description='the highest version, raised by one by each put in the transaction of its insert')),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_by', fields.CharField(null=True, max_length=40)),
            ],
            options={'table': 'secrets', 'app': 'secrets', 'unique_together': (('tenant_id', 'name'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SecretVersion',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('secret_id', fields.CharField(max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('name', fields.CharField(max_length=128)),
                ('version', fields.IntField()),
                ('description', fields.CharField(null=True, max_length=500)),
                ('data_key_sealed', fields.TextField(description='the data key sealed under the master key, a token naming the master key id', unique=False)),
                ('ciphertext', fields.TextField(description='base64url of nonce, ciphertext and tag under the data key', unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_by', fields.CharField(null=True, max_length=40)),
            ],
            options={'table': 'secret_versions', 'app': 'secrets', 'unique_together': (('secret_id', 'version'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
