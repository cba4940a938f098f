from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('subscription_id', fields.CharField(max_length=40)),
                ('event_id', fields.CharField(max_length=40)),
                ('dedupe_key', fields.CharField(null=True, max_length=40)),
                ('topic', fields.CharField(max_length=200)),
                ('key', fields.CharField(null=True, max_length=200)),
                ('body', fields.TextField(description='the exact JSON body POSTed on every attempt (what the signature covers)', unique=False)),
                ('status', fields.CharField(max_length=10)),
                ('attempts', fields.TextField(default='[]', description='JSON list of attempts: at, statusCode, durationMs, error, responseBodyExcerpt', unique=False)),
                ('attempt_count', fields.IntField(default=0)),
                ('next_attempt_at_ms', fields.BigIntField(null=True)),
                ('lease_until_ms', fields.BigIntField(null=True)),
                ('lease_token', fields.CharField(null=True, description='who holds the ``sending`` lease (one claim batch of one process)', max_length=40)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'webhook_deliveries', 'app': 'webhook', 'unique_together': (('subscription_id', 'dedupe_key'),), 'indexes': [Index(fields=['status', 'next_attempt_at_ms']), Index(fields=['subscription_id', 'key', 'created_at'])], 'pk_attr': 'id', 'table_description': 'One event to one subscription: ``pending`` → ``sending`` → ``succeeded`` or, after the'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookOutbox',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('topic', fields.CharField(max_length=200)),
                ('payload', fields.TextField(description='JSON text', unique=False)),
                ('key', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'webhook_outbox', 'app': 'webhook', 'pk_attr': 'id', 'table_description': 'Domain events (``webhook.subscription.disabled``) staged with their change.'},
            bases=['OutboxEvent'],
        ),
        ops.CreateModel(
            name='WebhookSubscription',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('tenant_id', fields.CharField(max_length=40)),
                ('url', fields.CharField(max_length=2048)),
                ('event_types', fields.TextField(description='JSON list of topic patterns', unique=False)),
                ('description', fields.CharField(null=True, max_length=500)),
                ('enabled', fields.BooleanField(default=True)),
                ('disabled_reason', fields.CharField(null=True, max_length=200)),
                ('secret_sealed', fields.TextField(description='the signing secret, sealed under the master key (never stored in plaintext)', unique=False)),
                ('previous_secret_sealed', fields.TextField(null=True, description='the secret before the last rotation, still signing until previous_secret_until', unique=False)),
                ('previous_secret_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('secret_rotated_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('failing_since', fields.DatetimeField(null=True, description='since when its deliveries have failed with no success (cleared by a success)', auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'webhook_subscriptions', 'app': 'webhook', 'indexes': [Index(fields=['tenant_id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
