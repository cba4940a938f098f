"""Every mutation goes through :func:`guarded`: authenticate, ask the policy-service, run,
and write an audit record of the outcome (successful, failed or denied)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from strawberry.types import Info

from synapsex.contracts import Message
from synapsex.contracts.audit import RecordAudit
from synapsex.contracts.auth import Principal
from synapsex.contracts.errors import ContractError, Forbidden, InvalidInput, NotFound
from synapsex.contracts.policy import CheckPolicy
from synapsex.contracts.tenant import ROLE_RANK
from synapsex.graphql.context import GatewayContext

log = structlog.get_logger("synapsex.gateway")
R = TypeVar("R")


def check_role_ceiling(principal: Principal, role: str, what: str) -> None:
    """Nobody grants, or acts on, a role above their own: :class:`Forbidden` otherwise."""
    if ROLE_RANK[role] > ROLE_RANK[principal.role]:
        raise Forbidden(
            f"you cannot {what} with a higher role ({role}) than your own ({principal.role})",
            field="role",
        )


async def made_by_caller(
    info: Info[GatewayContext, Any],
    lookup: Callable[[str], Message],
    *,
    unknown: bool = False,
) -> bool:
    """Whether the caller made the object that ``lookup(tenant_id)`` asks for (its view's
    ``created_by`` is the caller's member id): the ``is_own_resource`` of :func:`guarded`, since
    the default policy lets members change what they made.

    An object that is not found, or an id the service refuses as malformed, gives ``unknown``:
    ``False`` (the default) leaves the decision to the policy for others' objects; ``True``
    lets the mutation run and answer (and audit) ``NOT_FOUND`` or ``INVALID_INPUT`` itself."""
    p = await info.context.principal()
    try:
        view = await info.context.ask(lookup(p.tenant_id))
    except (NotFound, InvalidInput):
        return unknown
    return view.created_by == p.member_id


async def guarded(
    info: Info[GatewayContext, Any],
    *,
    action: str,
    resource_type: str,
    run: Callable[[Principal], Awaitable[R]],
    resource_id: str | None = None,
    resource_id_of: Callable[[R], str | None] = lambda result: getattr(result, "id", None),
    is_own_resource: bool = False,
) -> R:
    """Run one mutation for the caller. ``run`` gets the principal; what it raises (or the
    policy's refusal, ``FORBIDDEN`` with its reason) is audited, then re-raised. A
    ``Forbidden`` from ``run`` itself (a role ceiling) is audited as ``DENIED`` too."""
    ctx = info.context
    principal = await ctx.principal()
    decision = await ctx.ask(
        CheckPolicy(
            tenant_id=principal.tenant_id,
            role=principal.role,
            action=action,
            resource_id=resource_id,
            is_own_resource=is_own_resource,
        )
    )
    audit = _Audit(ctx, principal, action, resource_type, resource_id)
    if decision.effect != "ALLOW":
        await audit.write("DENIED", "FORBIDDEN")
        raise Forbidden(decision.reason, effect=decision.effect, policy_id=decision.policy_id)
    try:
        result = await run(principal)
    except Forbidden:
        await audit.write("DENIED", "FORBIDDEN")
        raise
    except ContractError as exc:
        await audit.write("FAILURE", exc.code)
        raise
    except Exception:
        await audit.write("FAILURE", "INTERNAL")
        raise
    await audit.write("SUCCESS", None, resource_id_of(result))
    return result


class _Audit:
    def __init__(
        self,
        ctx: GatewayContext,
        principal: Principal,
        action: str,
        resource_type: str,
        resource_id: str | None,
    ) -> None:
        self.ctx = ctx
        self.principal = principal
        self.action = action
        self.resource_type = resource_type
        self.resource_id = resource_id

    async def write(self, outcome: str, error_code: str | None, resource_id: str | None = None):
        record = RecordAudit(
            tenant_id=self.principal.tenant_id,
            actor_member_id=self.principal.member_id,
            actor_key_id=self.principal.key_id,
            action=self.action,
            resource_type=self.resource_type,
            resource_id=self.resource_id or resource_id,
            outcome=outcome,
            error_code=error_code,
            request_id=self.ctx.request_id,
        )
        try:
            await self.ctx.ask(record)
        except ContractError as exc:
            # The mutation's own outcome stands; the missing record is an operator's alarm.
            log.error(
                "audit record not written",
                action=self.action,
                outcome=outcome,
                request_id=self.ctx.request_id,
                error_code=exc.code,
            )
