"""The audit trail: who did what, when, and was it successful; and its chain's integrity."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.types import Info

from synapsex.contracts import audit as contract
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.relay import Connection, tenant_connection
from synapsex.graphql.tenants import First

Ctx = Info[GatewayContext, None]


@strawberry.enum
class AuditOutcome(Enum):
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    DENIED = "DENIED"


@strawberry.type
class AuditActor:
    member_id: strawberry.ID | None
    key_id: strawberry.ID | None


@strawberry.type
class AuditRecord:
    id: strawberry.ID
    at: datetime
    actor: AuditActor
    action: str
    resource_type: str
    resource_id: str | None
    outcome: AuditOutcome
    error_code: str | None
    request_id: str | None

    @classmethod
    def of(cls, view: contract.AuditRecordView) -> AuditRecord:
        return cls(
            id=strawberry.ID(view.id),
            at=view.at,
            actor=AuditActor(
                member_id=strawberry.ID(view.actor_member_id) if view.actor_member_id else None,
                key_id=strawberry.ID(view.actor_key_id) if view.actor_key_id else None,
            ),
            action=view.action,
            resource_type=view.resource_type,
            resource_id=view.resource_id,
            outcome=AuditOutcome(view.outcome),
            error_code=view.error_code,
            request_id=view.request_id,
        )


@strawberry.type
class AuditChainVerification:
    ok: bool
    checked: int
    first_broken_id: strawberry.ID | None


@strawberry.type
class AuditQuery:
    @strawberry.field(description="The tenant's audit records, newest first.")
    async def audit_records(
        self,
        info: Ctx,
        first: First = 50,
        after: str | None = None,
        action: str | None = None,
        outcome: AuditOutcome | None = None,
    ) -> Connection[AuditRecord]:
        return await tenant_connection(
            info,
            contract.ListAuditRecords,
            AuditRecord.of,
            first=first,
            after=after,
            action=action,
            outcome=outcome.value if outcome else None,
        )

    @strawberry.field(description="Recompute the tenant's hash chain and report the first break.")
    async def verify_audit_chain(self, info: Ctx) -> AuditChainVerification:
        p = await info.context.principal()
        result = await info.context.ask(contract.VerifyAuditChain(tenant_id=p.tenant_id))
        return AuditChainVerification(
            ok=result.ok,
            checked=result.checked,
            first_broken_id=strawberry.ID(result.first_broken_id)
            if result.first_broken_id
            else None,
        )
