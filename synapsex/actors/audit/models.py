"""Tables owned by audit-service: ``audit_records`` and its bookkeeping ``audit_chain_heads``."""

from tortoise import fields
from tortoise.models import Model


class AuditRecord(Model):
    """An append-only audit record, hash-chained to the tenant's previous one."""

    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    seq = fields.BigIntField()
    # set by the service (not auto_now_add) so the hashed value is the stored one
    at = fields.DatetimeField()
    actor_member_id = fields.CharField(max_length=40, null=True)
    actor_key_id = fields.CharField(max_length=40, null=True)
    action = fields.CharField(max_length=100)
    resource_type = fields.CharField(max_length=100)
    resource_id = fields.CharField(max_length=255, null=True)
    outcome = fields.CharField(max_length=10)
    error_code = fields.CharField(max_length=100, null=True)
    request_id = fields.CharField(max_length=100, null=True)
    prev_hash = fields.CharField(max_length=64)
    hash = fields.CharField(max_length=64)

    class Meta:
        app = "audit"
        table = "audit_records"
        # one record per position: the last guard against a forked chain
        unique_together = (("tenant_id", "seq"),)
        indexes = (("tenant_id", "action"),)


class AuditChainHead(Model):
    """Bookkeeping: the latest seq and hash of each tenant's chain.

    Written in the same transaction as the record. Appenders lock this row (``SELECT … FOR
    UPDATE`` on PostgreSQL), so concurrent writers queue instead of forking the chain.
    """

    tenant_id = fields.CharField(primary_key=True, max_length=40)
    seq = fields.BigIntField()
    hash = fields.CharField(max_length=64)

    class Meta:
        app = "audit"
        table = "audit_chain_heads"
