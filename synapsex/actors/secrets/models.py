"""Tables owned by secrets-service: ``secrets`` (one row per name) and ``secret_versions``
(one row per version: its wrapped data key and its encrypted value, never the value itself)."""

from tortoise import fields
from tortoise.models import Model


class Secret(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    name = fields.CharField(max_length=128)
    #: the latest version description
    description = fields.CharField(max_length=500, null=True)
    #: the highest version, raised by one by each put in the transaction of its insert
    latest_version = fields.IntField()
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    created_by = fields.CharField(max_length=40, null=True)

    class Meta:
        app = "secrets"
        table = "secrets"
        unique_together = (("tenant_id", "name"),)


class SecretVersion(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    secret_id = fields.CharField(max_length=40)
    tenant_id = fields.CharField(max_length=40)
    name = fields.CharField(max_length=128)
    version = fields.IntField()
    description = fields.CharField(max_length=500, null=True)
    #: the data key sealed under the master key, a token naming the master key id
    data_key_sealed = fields.TextField()
    #: base64url of nonce, ciphertext and tag under the data key
    ciphertext = fields.TextField()
    created_at = fields.DatetimeField()
    created_by = fields.CharField(max_length=40, null=True)

    class Meta:
        app = "secrets"
        table = "secret_versions"
        unique_together = (("secret_id", "version"),)
