"""Tables owned by model-registry-service: ``models`` and ``model_prices``.

Rows of the platform have ``tenant_id`` NULL. Uniqueness cannot rest on a nullable column (both
engines treat NULLs as distinct), so each row also has ``scope_key``: ``*`` for the platform,
else the tenant id; the unique constraints use it. That is what keeps seeding idempotent when
several processes start together on one database.
"""

import json

from tortoise import fields
from tortoise.models import Model

from synapsex.contracts.models import CAPABILITIES

#: ``scope_key`` of the platform's rows
PLATFORM_SCOPE = "*"


def capabilities_json(capabilities: tuple[str, ...]) -> str:
    """Capabilities as ``models.capabilities`` stores them: a JSON list in the contract order
    (a capability filter matches its quoted name in that text)."""
    return json.dumps([c for c in CAPABILITIES if c in capabilities])


class CatalogModel(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    #: the platform marker or the owning tenant id
    scope_key = fields.CharField(max_length=40)
    tenant_id = fields.CharField(max_length=40, null=True)
    provider = fields.CharField(max_length=50)
    name = fields.CharField(max_length=200)
    display_name = fields.CharField(max_length=200)
    modality = fields.CharField(max_length=20)
    #: JSON list of capability names in the contract order
    capabilities = fields.TextField()
    context_window = fields.IntField()
    max_output_tokens = fields.IntField(null=True)
    deprecation_date = fields.DateField(null=True)
    successor_id = fields.CharField(max_length=40, null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        app = "model_registry"
        table = "models"
        unique_together = (("scope_key", "provider", "name"),)


class ModelPrice(Model):
    """One effective-dated price (rows are only ever added)."""

    id = fields.CharField(primary_key=True, max_length=40)
    model_id = fields.CharField(max_length=40)
    #: the platform marker or the tenant whose own price (override) this is
    scope_key = fields.CharField(max_length=40)
    tenant_id = fields.CharField(max_length=40, null=True)
    input_per_mtok = fields.DecimalField(max_digits=19, decimal_places=9)
    output_per_mtok = fields.DecimalField(max_digits=19, decimal_places=9)
    cached_input_per_mtok = fields.DecimalField(max_digits=19, decimal_places=9, null=True)
    effective_from = fields.DatetimeField()
    source = fields.CharField(max_length=2000)
    created_at = fields.DatetimeField()

    class Meta:
        app = "model_registry"
        table = "model_prices"
        unique_together = (("model_id", "scope_key", "effective_from"),)
