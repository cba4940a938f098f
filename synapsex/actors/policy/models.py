"""Tables owned by policy-service: ``policies`` (one rule per tenant and action)."""

from tortoise import fields
from tortoise.models import Model


class Policy(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40, db_index=True)
    # an action such as "agent.create" or a pattern such as "agent.*" or "agent.#"
    action = fields.CharField(max_length=100)
    effect = fields.CharField(max_length=20)
    # the roles the rule applies to, e.g. ["admin", "member"]
    roles = fields.JSONField(default=list)
    reason = fields.CharField(max_length=500)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        app = "policy"
        table = "policies"
        unique_together = (("tenant_id", "action"),)
