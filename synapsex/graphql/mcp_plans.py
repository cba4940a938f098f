"""MCP plans: a tool chosen for an intent, explained, approved by a person, then run exactly as
approved (see ``docs/mcp.md``, "Plans").

Permissions (default policy; tenants change them with ``setPolicy``): every role reads plans;
``mcp_plan.create`` (planMcp) is for members and up; ``mcp_plan.update``, ``.reject`` and
``.execute`` for members on the plans they made and for admins and owners on any;
``mcp_plan.approve`` for admins and owners only. Calling a tool is a separate action
(``mcp_tool.<exposed name>.call``) the router checks for each candidate."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.types import Info

from synapsex.contracts import mcp as contract
from synapsex.contracts.auth import Principal
from synapsex.contracts.errors import InvalidInput, NotFound
from synapsex.contracts.workspaces import GetArtifact
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.events import tenant_events
from synapsex.graphql.guard import guarded, made_by_caller
from synapsex.graphql.policies import Effect
from synapsex.graphql.relay import Connection, tenant_connection
from synapsex.graphql.scalars import JSON
from synapsex.graphql.tenants import First
from synapsex.graphql.workspaces import Artifact

Ctx = Info[GatewayContext, None]


# ---------------------------------------------------------------------------- types


@strawberry.enum(description="Where a plan is in its life.")
class McpPlanStatus(Enum):
    PROPOSED = strawberry.enum_value("PROPOSED", description="Made; waits for approval or a run.")
    APPROVED = strawberry.enum_value("APPROVED", description="A person approved it as it is.")
    REJECTED = strawberry.enum_value("REJECTED", description="A person turned it down.")
    EXECUTING = strawberry.enum_value("EXECUTING", description="The tool is being called.")
    SUCCEEDED = strawberry.enum_value("SUCCEEDED", description="The tool ran and answered.")
    FAILED = strawberry.enum_value(
        "FAILED", description="The tool reported an error, or its server could not be used."
    )
    STALE = strawberry.enum_value(
        "STALE",
        description="The tool's definition changed after the plan was made; nothing ran.",
    )


@strawberry.type(description="One matched term of the intent in one field of a tool.")
class McpPlanReason:
    term: str = strawberry.field(
        description="The intent's word; word→synonym when the synonym table added it."
    )
    weight: float = strawberry.field(
        description="What it added to the score (a candidate's reasons add up to its score)."
    )
    field: str = strawberry.field(description="name, title, description, parameters or server.")

    @classmethod
    def of(cls, view: contract.PlanReason) -> McpPlanReason:
        return cls(term=view.term, weight=view.weight, field=view.field)


@strawberry.type(description="What the policy says about calling a tool (or about the plan).")
class McpPlanPolicy:
    effect: Effect
    reason: str
    policy_id: strawberry.ID | None = strawberry.field(
        description="The tenant rule that decided; null: the default policy."
    )

    @classmethod
    def of(cls, view: contract.PlanPolicy) -> McpPlanPolicy:
        return cls(
            effect=Effect(view.effect),
            reason=view.reason,
            policy_id=None if view.policy_id is None else strawberry.ID(view.policy_id),
        )


@strawberry.type(description="A tool the plan considered.")
class McpPlanCandidate:
    tool: str = strawberry.field(description="The exposed name <server>__<tool>.")
    server: str = strawberry.field(description="The server's name.")
    server_id: strawberry.ID
    score: float = strawberry.field(description="BM25 relevance, summed over weighted fields.")
    reasons: list[McpPlanReason]
    policy: McpPlanPolicy
    read_only: bool = strawberry.field(description="The tool's readOnlyHint annotation.")

    @classmethod
    def of(cls, view: contract.PlanCandidate) -> McpPlanCandidate:
        return cls(
            tool=view.tool,
            server=view.server,
            server_id=strawberry.ID(view.server_id),
            score=view.score,
            reasons=[McpPlanReason.of(r) for r in view.reasons],
            policy=McpPlanPolicy.of(view.policy),
            read_only=view.read_only,
        )


@strawberry.type(description="The tool the plan runs, and exactly what it runs with.")
class McpPlanChoice:
    tool: str = strawberry.field(description="The exposed name <server>__<tool>.")
    server: str
    server_id: strawberry.ID
    original_name: str = strawberry.field(description="The tool's name on its server.")
    arguments: JSON = strawberry.field(description="The JSON object the tool is called with.")
    missing_arguments: list[str] = strawberry.field(
        description="Required parameters without a value: the plan cannot be approved (or run) "
        "until updateMcpPlanArguments supplies them."
    )
    tool_definition_sha256: str = strawberry.field(
        description="The definition the plan is bound to; a run refuses a changed tool (STALE)."
    )
    arguments_sha256: str = strawberry.field(
        description="SHA-256 of the canonical JSON of arguments (sorted keys, no white space)."
    )
    read_only: bool

    @classmethod
    def of(cls, view: contract.PlanChoice) -> McpPlanChoice:
        return cls(
            tool=view.tool,
            server=view.server,
            server_id=strawberry.ID(view.server_id),
            original_name=view.original_name,
            arguments=JSON(view.arguments),
            missing_arguments=list(view.missing_arguments),
            tool_definition_sha256=view.tool_definition_sha256,
            arguments_sha256=view.arguments_sha256,
            read_only=view.read_only,
        )


@strawberry.type(
    description="A stored, explainable plan: the candidate tools with their scores, reasons "
    "and policy verdicts, the chosen tool bound by hash to its definition and arguments, and "
    "what happened when it ran."
)
class McpPlan:
    id: strawberry.ID
    status: McpPlanStatus
    intent: str
    arguments: JSON = strawberry.field(
        description="The arguments the caller gave (chosen.arguments also holds what the "
        "intent gave)."
    )
    workspace_id: strawberry.ID | None = strawberry.field(
        description="Where the result is stored as an OUTPUT artifact."
    )
    server_ids: list[strawberry.ID] = strawberry.field(
        description="The servers asked for; empty: every enabled server the tenant sees."
    )
    requires_approval: bool = strawberry.field(
        description="False only for a read-only tool the policy allows."
    )
    explanation: str
    candidates: list[McpPlanCandidate]
    chosen: McpPlanChoice | None
    policy: McpPlanPolicy | None = strawberry.field(description="The chosen tool's verdict.")
    created_by: str | None = strawberry.field(description="The member who made the plan.")
    approved_by: str | None
    approved_role: str | None = strawberry.field(
        description="The approver's role: what a call on synapsex-ops-mcp runs with."
    )
    approved_at: datetime | None
    rejected_reason: str | None
    executed_at: datetime | None
    duration_ms: float | None = strawberry.field(
        description="The execution, from re-reading the definition to the tool's answer."
    )
    error: str | None = strawberry.field(
        description="Why the run failed, or why the plan is STALE."
    )
    result_artifact_id: strawberry.ID | None
    result_excerpt: str | None = strawberry.field(
        description='The start (16 KiB) of the result document, JSON: {"content": [...], '
        '"structuredContent": ..., "isError": ...}.'
    )
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="The result document as an artifact of the plan's workspace.")
    async def result_artifact(self, info: Ctx) -> Artifact | None:
        if self.result_artifact_id is None:
            return None
        p = await info.context.principal()
        try:
            view = await info.context.ask(
                GetArtifact(tenant_id=p.tenant_id, id=str(self.result_artifact_id))
            )
        except NotFound:  # deleted since
            return None
        return Artifact.of(view)

    @classmethod
    def of(cls, view: contract.McpPlanView) -> McpPlan:
        return cls(
            id=strawberry.ID(view.id),
            status=McpPlanStatus(view.status),
            intent=view.intent,
            arguments=JSON(view.arguments),
            workspace_id=None if view.workspace_id is None else strawberry.ID(view.workspace_id),
            server_ids=[strawberry.ID(i) for i in view.server_ids],
            requires_approval=view.requires_approval,
            explanation=view.explanation,
            candidates=[McpPlanCandidate.of(c) for c in view.candidates],
            chosen=None if view.chosen is None else McpPlanChoice.of(view.chosen),
            policy=None if view.policy is None else McpPlanPolicy.of(view.policy),
            created_by=view.created_by,
            approved_by=view.approved_by,
            approved_role=view.approved_role,
            approved_at=view.approved_at,
            rejected_reason=view.rejected_reason,
            executed_at=view.executed_at,
            duration_ms=view.duration_ms,
            error=view.error,
            result_artifact_id=(
                None if view.result_artifact_id is None else strawberry.ID(view.result_artifact_id)
            ),
            result_excerpt=view.result_excerpt,
            created_at=view.created_at,
            updated_at=view.updated_at,
        )


@strawberry.type(description="A change of a plan, as mcpPlanUpdates streams it.")
class McpPlanUpdate:
    topic: str | None = strawberry.field(
        description="The event (mcp.plan.approved, ...); null for the state when subscribing."
    )
    status: McpPlanStatus = strawberry.field(description="The state the change led to.")
    previous_status: McpPlanStatus | None
    event_id: strawberry.ID | None
    occurred_at: datetime | None
    plan: McpPlan = strawberry.field(description="The plan as read right after the change.")


# ---------------------------------------------------------------------------- inputs


@strawberry.input
class PlanMcpInput:
    intent: str = strawberry.field(
        description="What should be done, in words; ids, numbers and quoted strings in it may "
        "become arguments."
    )
    arguments: JSON | None = strawberry.field(
        default=None, description="A JSON object of arguments by parameter name."
    )
    server_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Only these servers (default: every enabled server)."
    )
    workspace_id: strawberry.ID | None = strawberry.field(
        default=None, description="Store the result there as an OUTPUT artifact."
    )


@strawberry.input
class UpdateMcpPlanArgumentsInput:
    id: strawberry.ID
    arguments: JSON = strawberry.field(
        description="The arguments you give (the intent still fills what they leave empty); "
        "an APPROVED plan whose arguments change goes back to PROPOSED."
    )


@strawberry.input
class ApproveMcpPlanInput:
    id: strawberry.ID
    arguments_sha256: str | None = strawberry.field(
        default=None,
        description="The chosen.argumentsSha256 you reviewed: refused (CONFLICT) if the "
        "arguments changed since.",
    )


@strawberry.input
class RejectMcpPlanInput:
    id: strawberry.ID
    reason: str


@strawberry.input
class ExecuteMcpPlanInput:
    id: strawberry.ID


def _arguments(value: Any, field: str = "arguments") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(field, "must be a JSON object")
    return value


# ---------------------------------------------------------------------------- resolvers


@strawberry.type
class McpPlanQuery:
    @strawberry.field(description="The tenant's plans, oldest first, narrowed by status.")
    async def mcp_plans(
        self,
        info: Ctx,
        status: McpPlanStatus | None = None,
        first: First = 50,
        after: str | None = None,
    ) -> Connection[McpPlan]:
        return await tenant_connection(
            info,
            contract.ListMcpPlans,
            McpPlan.of,
            status=None if status is None else status.value,
            first=first,
            after=after,
        )

    @strawberry.field(description="One plan of the tenant.")
    async def mcp_plan(self, info: Ctx, id: strawberry.ID) -> McpPlan:
        p = await info.context.principal()
        view = await info.context.ask(contract.GetMcpPlan(tenant_id=p.tenant_id, id=str(id)))
        return McpPlan.of(view)


async def _own_plan(info: Ctx, plan_id: str) -> bool:
    """Whether the caller made the plan; an unknown plan is not theirs (the action then fails
    as NOT_FOUND, audited)."""
    return await made_by_caller(info, lambda t: contract.GetMcpPlan(tenant_id=t, id=plan_id))


@strawberry.type
class McpPlanMutation:
    @strawberry.mutation(
        description="Rank the tools of the enabled MCP servers for an intent and store the "
        "best one, explained, as a PROPOSED plan. It needs approval unless the tool is "
        "read-only and the policy allows it."
    )
    async def plan_mcp(self, info: Ctx, input: PlanMcpInput) -> McpPlan:
        arguments = _arguments(input.arguments)

        async def run(p: Principal) -> contract.McpPlanView:
            return await info.context.ask(
                contract.PlanMcp(
                    tenant_id=p.tenant_id,
                    member_id=p.member_id,
                    role=p.role,
                    intent=input.intent,
                    arguments=arguments,
                    server_ids=tuple(str(i) for i in input.server_ids or ()),
                    workspace_id=None if input.workspace_id is None else str(input.workspace_id),
                )
            )

        view = await guarded(info, action="mcp_plan.create", resource_type="mcp_plan", run=run)
        return McpPlan.of(view)

    @strawberry.mutation(
        description="Give a PROPOSED or APPROVED plan new arguments (missing arguments and "
        "argumentsSha256 are computed again); an APPROVED plan goes back to PROPOSED."
    )
    async def update_mcp_plan_arguments(
        self, info: Ctx, input: UpdateMcpPlanArgumentsInput
    ) -> McpPlan:
        plan_id = str(input.id)
        arguments = _arguments(input.arguments)

        async def run(p: Principal) -> contract.McpPlanView:
            return await info.context.ask(
                contract.UpdateMcpPlanArguments(
                    tenant_id=p.tenant_id, id=plan_id, member_id=p.member_id, arguments=arguments
                )
            )

        view = await guarded(
            info,
            action="mcp_plan.update",
            resource_type="mcp_plan",
            resource_id=plan_id,
            is_own_resource=await _own_plan(info, plan_id),
            run=run,
        )
        return McpPlan.of(view)

    @strawberry.mutation(
        description="Approve a PROPOSED plan as it is (refused while arguments are missing). "
        "A call on synapsex-ops-mcp then runs with your role."
    )
    async def approve_mcp_plan(self, info: Ctx, input: ApproveMcpPlanInput) -> McpPlan:
        plan_id = str(input.id)

        async def run(p: Principal) -> contract.McpPlanView:
            return await info.context.ask(
                contract.ApproveMcpPlan(
                    tenant_id=p.tenant_id,
                    id=plan_id,
                    member_id=p.member_id,
                    role=p.role,
                    arguments_sha256=input.arguments_sha256,
                )
            )

        view = await guarded(
            info, action="mcp_plan.approve", resource_type="mcp_plan", resource_id=plan_id, run=run
        )
        return McpPlan.of(view)

    @strawberry.mutation(description="Reject a PROPOSED or APPROVED plan, saying why.")
    async def reject_mcp_plan(self, info: Ctx, input: RejectMcpPlanInput) -> McpPlan:
        plan_id = str(input.id)

        async def run(p: Principal) -> contract.McpPlanView:
            return await info.context.ask(
                contract.RejectMcpPlan(
                    tenant_id=p.tenant_id, id=plan_id, member_id=p.member_id, reason=input.reason
                )
            )

        view = await guarded(
            info,
            action="mcp_plan.reject",
            resource_type="mcp_plan",
            resource_id=plan_id,
            is_own_resource=await _own_plan(info, plan_id),
            run=run,
        )
        return McpPlan.of(view)

    @strawberry.mutation(
        description="Run an APPROVED plan (or a PROPOSED one that needs no approval) with "
        "exactly its arguments. The tool's definition is read again first: if it changed, the "
        "plan becomes STALE and nothing runs. Returns the plan as it ended (SUCCEEDED, FAILED "
        "or STALE)."
    )
    async def execute_mcp_plan(self, info: Ctx, input: ExecuteMcpPlanInput) -> McpPlan:
        plan_id = str(input.id)
        ctx = info.context

        async def run(p: Principal) -> contract.McpPlanView:
            return await ctx.runtime.ask(
                contract.ExecuteMcpPlan(
                    tenant_id=p.tenant_id, id=plan_id, member_id=p.member_id, role=p.role
                ),
                timeout=contract.EXECUTE_ASK_TIMEOUT_SECONDS,
                trace_id=ctx.trace_id,
            )

        view = await guarded(
            info,
            action="mcp_plan.execute",
            resource_type="mcp_plan",
            resource_id=plan_id,
            is_own_resource=await _own_plan(info, plan_id),
            run=run,
        )
        return McpPlan.of(view)


@strawberry.type
class McpPlanSubscription:
    @strawberry.subscription(
        description="A plan's changes: its state now, then one update per transition, in "
        "order; ends once the plan is REJECTED, SUCCEEDED, FAILED or STALE."
    )
    async def mcp_plan_updates(
        self, info: Ctx, id: strawberry.ID
    ) -> AsyncGenerator[McpPlanUpdate, None]:
        ctx = info.context
        principal = await ctx.principal()
        wanted = str(id)
        get = contract.GetMcpPlan(tenant_id=principal.tenant_id, id=wanted)
        async with tenant_events(ctx, principal.tenant_id, ("mcp.plan.*",)) as stream:
            # listening already: a change committed after this snapshot is streamed
            view = await ctx.ask(get)
            yield McpPlanUpdate(
                topic=None,
                status=McpPlanStatus(view.status),
                previous_status=None,
                event_id=None,
                occurred_at=None,
                plan=McpPlan.of(view),
            )
            if view.status in contract.PLAN_FINAL_STATUSES:
                return
            seen = view.updated_at
            async for event in stream:
                payload = event.payload
                if not isinstance(payload, dict) or payload.get("planId") != wanted:
                    continue
                at = payload.get("updatedAt")
                if isinstance(at, str) and datetime.fromisoformat(at) <= seen:
                    continue  # committed before the snapshot, already in it
                previous = payload.get("previousStatus")
                yield McpPlanUpdate(
                    topic=event.topic,
                    status=McpPlanStatus(payload["status"]),
                    previous_status=None if previous is None else McpPlanStatus(previous),
                    event_id=strawberry.ID(event.id),
                    occurred_at=event.occurred_at,
                    plan=McpPlan.of(await ctx.ask(get)),
                )
                if payload["status"] in contract.PLAN_FINAL_STATUSES:
                    return
