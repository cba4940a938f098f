"""Tables owned by auth-service: ``api_keys`` and its ``auth_outbox``. Only a SHA-256 hash of
each key is stored."""

from tortoise import fields
from tortoise.models import Model

from synapsex.actors.domain_events import OutboxEvent


class ApiKey(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40, db_index=True)
    member_id = fields.CharField(max_length=40)
    name = fields.CharField(max_length=100)
    role = fields.CharField(max_length=20)
    # the first characters of the key, shown to users to tell keys apart; indexed for lookup
    prefix = fields.CharField(max_length=16, db_index=True)
    # hex SHA-256 of the whole key
    key_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    # when the key stops authenticating (short-lived keys); null: never
    expires_at = fields.DatetimeField(null=True)

    class Meta:
        app = "auth"
        table = "api_keys"


class AuthOutbox(OutboxEvent):
    """Domain events staged with the change that caused them (see ``domain_events``)."""

    class Meta:
        app = "auth"
        table = "auth_outbox"
