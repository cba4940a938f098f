"""Policies: the tenant's rules, setting them, and asking what a rule decides."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.types import Info

from synapsex.contracts import policy as contract
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.enums import Role
from synapsex.graphql.guard import guarded
from synapsex.graphql.relay import Connection, tenant_connection
from synapsex.graphql.tenants import First

Ctx = Info[GatewayContext, None]


@strawberry.enum(description="What a rule decides.")
class Effect(Enum):
    ALLOW = "ALLOW"
    DENY = "DENY"
    REQUIRE_APPROVAL = "REQUIRE_APPROVAL"


@strawberry.type
class Policy:
    id: strawberry.ID
    action: str = strawberry.field(
        description="An action such as tenant.member.add; `*` matches one segment, `#` the rest."
    )
    effect: Effect
    roles: list[Role]
    reason: str = strawberry.field(description="Shown to users the rule refuses.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: contract.PolicyView) -> Policy:
        return cls(
            id=strawberry.ID(view.id),
            action=view.action,
            effect=Effect(view.effect),
            roles=[Role(r) for r in view.roles],
            reason=view.reason,
            created_at=view.created_at,
            updated_at=view.updated_at,
        )


@strawberry.type
class PolicyDecision:
    effect: Effect
    reason: str
    policy_id: strawberry.ID | None = strawberry.field(
        description="The tenant rule that decided; null when the default role matrix did."
    )


@strawberry.input
class SetPolicyInput:
    action: str
    effect: Effect
    roles: list[Role]
    reason: str


@strawberry.input
class DeletePolicyInput:
    id: strawberry.ID


@strawberry.type
class PolicyQuery:
    @strawberry.field(
        description="The tenant's own rules (the default role matrix applies otherwise)."
    )
    async def policies(
        self, info: Ctx, first: First = 50, after: str | None = None
    ) -> Connection[Policy]:
        return await tenant_connection(
            info, contract.ListPolicies, Policy.of, first=first, after=after
        )

    @strawberry.field(description="What the policies decide for the caller doing `action`.")
    async def check_policy(
        self, info: Ctx, action: str, resource_id: strawberry.ID | None = None
    ) -> PolicyDecision:
        p = await info.context.principal()
        decision = await info.context.ask(
            contract.CheckPolicy(
                tenant_id=p.tenant_id,
                role=p.role,
                action=action,
                resource_id=str(resource_id) if resource_id else None,
            )
        )
        return PolicyDecision(
            effect=Effect(decision.effect),
            reason=decision.reason,
            policy_id=strawberry.ID(decision.policy_id) if decision.policy_id else None,
        )


@strawberry.type
class PolicyMutation:
    @strawberry.mutation(description="Create or replace the tenant's rule for an action (owners).")
    async def set_policy(self, info: Ctx, input: SetPolicyInput) -> Policy:
        async def run(p):
            return await info.context.ask(
                contract.SetPolicy(
                    tenant_id=p.tenant_id,
                    action=input.action,
                    effect=input.effect.value,
                    roles=tuple(r.value for r in input.roles),
                    reason=input.reason,
                )
            )

        return Policy.of(await guarded(info, action="policy.set", resource_type="policy", run=run))

    @strawberry.mutation(description="Delete one of the tenant's rules (owners).")
    async def delete_policy(self, info: Ctx, input: DeletePolicyInput) -> Policy:
        async def run(p):
            return await info.context.ask(
                contract.DeletePolicy(tenant_id=p.tenant_id, id=str(input.id))
            )

        view = await guarded(
            info, action="policy.delete", resource_type="policy", resource_id=str(input.id), run=run
        )
        return Policy.of(view)
