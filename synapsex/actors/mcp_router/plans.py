"""mcp-router-service's plans: rank, explain, approve, execute (the ``PlanHandlers`` mixin).

**Planning** (:class:`PlanMcp`) ranks the tools of the tenant's enabled servers for the intent
(:mod:`.ranking`), asks the policy-service about the best :data:`MAX_PLAN_CANDIDATES` for the
caller's role (action :func:`tool_policy_action`, ``mcp_tool.<exposed name>.call``, as the
caller's own request: members are allowed by default, viewers are not), and chooses the best
one not denied. Its arguments are what the caller gave plus what the intent gives safely
(:mod:`.arguments`); missing required ones are listed. The plan needs approval unless the tool
is read-only (``readOnlyHint``) and the policy said ``ALLOW``.

The catalog index is cached per tenant and set of servers, keyed by each server's id, name,
``last_synced_at`` and ``updated_at``: a sync or a rename changes the key, so the next plan
builds a new index (in any process: the key comes from the database); nothing else expires.

**States**, every change one conditional ``UPDATE … WHERE status = <expected>`` (two
processes never both approve or both execute a plan) with its ``mcp.plan.*`` event staged in
the same transaction::

    PROPOSED ──approve──► APPROVED ──execute──► EXECUTING ──► SUCCEEDED | FAILED
       │  ▲                  │
       │  └─arguments change─┘          (a plan needing no approval executes from PROPOSED)
       └──reject──► REJECTED ◄──reject── APPROVED
    PROPOSED | APPROVED ──execute, definition changed──► STALE

**Execution** re-reads the tool's definition from its server; a different hash (or a tool no
longer listed) makes the plan ``STALE`` and nothing runs. A server that cannot be used or
read makes it ``FAILED``. Otherwise one tool call of the day is reserved (billing's
:class:`ReserveToolCalls`; ``LIMIT_EXCEEDED`` leaves the plan as it was), the plan becomes
``EXECUTING`` and the tool is called with exactly the plan's arguments. On synapsex-ops-mcp
the call carries a short-lived API key of the approver (member and role at approval; the
executor's for a plan without approval), revoked right after. The result document is stored
as an ``OUTPUT`` artifact (``application/json``) of the plan's workspace when it has one, and
its first :data:`RESULT_EXCERPT_CHARS` characters on the plan in any case. A call that was
made is reported as usage (``usage.recorded``, ``TOOL_CALL``, keyed by the plan id).

**Audit**: the transitions a person asks for through the gateway (plan, approve, reject,
update, execute) are audited there by ``guarded``; the outcomes decided here (executed,
failed, stale) are recorded by this service (``mcp_plan.executed`` / ``.failed`` /
``.stale``), so nothing is recorded twice.

A process that stops during a call leaves its plan ``EXECUTING``: whether the tool ran is not
known, so it is never retried by itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from tortoise.transactions import in_transaction

from synapsex.actors.domain_events import Outbox
from synapsex.contracts.audit import RecordAudit
from synapsex.contracts.auth import CreateApiKey, RevokeApiKey
from synapsex.contracts.billing import USAGE_TOPIC, ReleaseToolCalls, ReserveToolCalls
from synapsex.contracts.common import Page, as_utc
from synapsex.contracts.errors import (
    Conflict,
    ContractError,
    Forbidden,
    InvalidInput,
    NotFound,
)
from synapsex.contracts.mcp import (
    MAX_PLAN_CANDIDATES,
    MCP_PLAN_APPROVED,
    MCP_PLAN_EXECUTED,
    MCP_PLAN_EXECUTING,
    MCP_PLAN_FAILED,
    MCP_PLAN_PROPOSED,
    MCP_PLAN_REJECTED,
    MCP_PLAN_STALE,
    MCP_PLAN_UPDATED,
    OPS_MCP_SERVER,
    PLAN_APPROVED,
    PLAN_EXECUTING,
    PLAN_FAILED,
    PLAN_PROPOSED,
    PLAN_REJECTED,
    PLAN_STALE,
    PLAN_SUCCEEDED,
    RESULT_EXCERPT_CHARS,
    ApproveMcpPlan,
    ExecuteMcpPlan,
    GetMcpPlan,
    ListMcpPlans,
    ListVisibleMcpServers,
    McpPlanView,
    McpServerView,
    PlanCandidate,
    PlanChoice,
    PlanMcp,
    PlanPolicy,
    PlanReason,
    RejectMcpPlan,
    ResolveMcpServer,
    UpdateMcpPlanArguments,
    plan_event,
    tool_policy_action,
)
from synapsex.contracts.mcp_tools import CatalogTools, GetMcpTool, McpToolView
from synapsex.contracts.policy import ALLOW, DENY, CheckPolicy
from synapsex.contracts.workspaces import GetWorkspace, UploadArtifact
from synapsex.runtime import handler, new_id
from synapsex.runtime.orm import paginate

from . import client
from .arguments import arguments_sha256, parse_intent, plan_arguments
from .models import McpPlan
from .ranking import CatalogIndex, Ranked, split_words, tool_doc

log = structlog.get_logger("synapsex.mcp_router")

#: catalog indexes kept (one per tenant and set of servers, least recently used dropped);
#: 0 turns the cache off (every plan reads and indexes the catalog: the bench's baseline)
CATALOG_CACHE_SIZE = 64
#: a short-lived key lives this much longer than the call's timeout
KEY_GRACE = timedelta(seconds=60)
MAX_ERROR_LENGTH = 1000
#: the candidates the explanation names besides the chosen one
ALSO_CONSIDERED = 2


# ---------------------------------------------------------------------------- views


def _json(text: str | None, default: Any) -> Any:
    return default if not text else json.loads(text)


def plan_view(row: McpPlan) -> McpPlanView:
    candidates = tuple(_candidate(c) for c in _json(row.candidates, []))
    chosen = None
    if row.chosen_tool is not None:
        read_only = next((c.read_only for c in candidates if c.tool == row.chosen_tool), False)
        server = next((c.server for c in candidates if c.tool == row.chosen_tool), "")
        chosen = PlanChoice(
            tool=row.chosen_tool,
            server=server,
            server_id=row.chosen_server_id or "",
            original_name=row.chosen_original_name or "",
            arguments=_json(row.chosen_arguments, {}),
            missing_arguments=tuple(_json(row.missing_arguments, [])),
            tool_definition_sha256=row.tool_definition_sha256 or "",
            arguments_sha256=row.arguments_sha256 or "",
            read_only=read_only,
        )
    policy = None
    if row.policy_effect is not None:
        policy_id = next(
            (c.policy.policy_id for c in candidates if c.tool == row.chosen_tool), None
        )
        policy = PlanPolicy(
            effect=row.policy_effect, reason=row.policy_reason or "", policy_id=policy_id
        )
    return McpPlanView(
        id=row.id,
        tenant_id=row.tenant_id,
        status=row.status,
        intent=row.intent,
        arguments=_json(row.arguments, {}),
        workspace_id=row.workspace_id,
        server_ids=tuple(_json(row.server_ids, [])),
        requires_approval=row.requires_approval,
        explanation=row.explanation,
        candidates=candidates,
        chosen=chosen,
        policy=policy,
        created_by=row.created_by_member_id,
        approved_by=row.approved_by_member_id,
        approved_role=row.approved_role,
        approved_at=None if row.approved_at is None else as_utc(row.approved_at),
        rejected_reason=row.rejected_reason,
        executed_at=None if row.executed_at is None else as_utc(row.executed_at),
        duration_ms=row.duration_ms,
        error=row.outcome_error,
        result_artifact_id=row.result_artifact_id,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        result_excerpt=row.result_excerpt,
    )


def _candidate(data: dict[str, Any]) -> PlanCandidate:
    return PlanCandidate(
        tool=data["tool"],
        server=data["server"],
        server_id=data["serverId"],
        score=data["score"],
        reasons=tuple(PlanReason(**r) for r in data["reasons"]),
        policy=PlanPolicy(
            effect=data["policy"]["effect"],
            reason=data["policy"]["reason"],
            policy_id=data["policy"].get("policyId"),
        ),
        read_only=data["readOnly"],
    )


def _candidate_json(ranked: Ranked, tool: McpToolView, decision: Any) -> dict[str, Any]:
    return {
        "tool": tool.name,
        "server": tool.server_name,
        "serverId": tool.server_id,
        "score": round(ranked.score, 4),
        "reasons": [
            {"term": r.term, "weight": round(r.weight, 4), "field": r.field} for r in ranked.reasons
        ],
        "policy": {
            "effect": decision.effect,
            "reason": decision.reason,
            "policyId": decision.policy_id,
        },
        "readOnly": is_read_only(tool),
    }


def is_read_only(tool: McpToolView) -> bool:
    return tool.annotations.get("readOnlyHint") is True


# ---------------------------------------------------------------------------- explanation


def explain(
    chosen: dict[str, Any],
    candidates: list[dict[str, Any]],
    missing: tuple[str, ...],
    sources: dict[str, str],
    requires_approval: bool,
) -> str:
    """One paragraph a person reads: why this tool, what else was considered, what policy
    said, whether approval is needed and what is missing."""
    terms: dict[str, list[str]] = {}
    for reason in chosen["reasons"]:
        terms.setdefault(reason["term"], []).append(reason["field"])
    matched = ", ".join(
        f'"{term}" ({", ".join(fields)})' for term, fields in list(terms.items())[:4]
    )
    parts = [
        f"Chose {chosen['tool']} (score {chosen['score']:.2f}) because the intent matches "
        f"{matched}."
    ]
    others = [c for c in candidates if c is not chosen]
    considered = [c for c in others if c["policy"]["effect"] != DENY][:ALSO_CONSIDERED]
    if considered:
        listed = " and ".join(f"{c['tool']} (score {c['score']:.2f})" for c in considered)
        parts.append(f"Also considered {listed}.")
    for denied in [c for c in candidates if c["policy"]["effect"] == DENY][:ALSO_CONSIDERED]:
        parts.append(
            f"Left out {denied['tool']}: the policy denies it ({denied['policy']['reason']})."
        )
    effect = chosen["policy"]["effect"]
    parts.append(f"Policy: {effect} ({chosen['policy']['reason']}).")
    if not requires_approval:
        parts.append("No approval needed: the tool is read-only and the policy allows it.")
    elif effect != ALLOW:
        parts.append("Needs approval: the policy requires it.")
    else:
        parts.append("Needs approval: the tool is not read-only.")
    from_intent = [name for name, source in sources.items() if source.startswith("the intent")]
    if from_intent:
        parts.append(
            "Taken from the intent: "
            + ", ".join(f"{name} ({sources[name][len('the intent: ') :]})" for name in from_intent)
            + "."
        )
    if missing:
        parts.append(f"Missing arguments: {', '.join(missing)}.")
    return " ".join(parts)


# ---------------------------------------------------------------------------- the catalog cache


@dataclass(frozen=True, slots=True)
class _Catalog:
    index: CatalogIndex
    tools: dict[str, McpToolView]


def _catalog_key(tenant_id: str, servers: tuple[McpServerView, ...]) -> tuple[Any, ...]:
    return (
        tenant_id,
        tuple(
            (s.id, s.name, s.last_synced_at, s.updated_at)
            for s in sorted(servers, key=lambda s: s.id)
        ),
    )


# ---------------------------------------------------------------------------- handlers


class _Changed(Exception):
    """A conditional update found the plan in another state."""


class PlanHandlers:
    """The plans' handlers, mixed into :class:`~.actor.McpRouterActor` (which provides
    ``outbox`` and ``mcp_settings`` and calls :meth:`plans_start`)."""

    actor_runtime: Any
    outbox: Outbox
    mcp_settings: Any
    # the registry's handlers, called in process (asking this very service would be a cycle)
    list_visible_mcp_servers: Any
    resolve_mcp_server: Any

    async def plans_start(self) -> None:
        self._catalogs: OrderedDict[tuple[Any, ...], _Catalog] = OrderedDict()
        self._building: dict[tuple[Any, ...], asyncio.Future[_Catalog]] = {}

    # ------------------------------------------------------------------ lookups

    async def _plan(self, tenant_id: str, plan_id: str) -> McpPlan:
        row = await McpPlan.filter(id=plan_id, tenant_id=tenant_id).first()
        if row is None:
            raise NotFound("MCP plan not found", field="id", id=plan_id)
        return row

    async def _servers(
        self, tenant_id: str, server_ids: tuple[str, ...]
    ) -> tuple[McpServerView, ...]:
        if server_ids:
            seen = await self.list_visible_mcp_servers(
                ListVisibleMcpServers(
                    tenant_id=tenant_id, server_ids=server_ids, enabled_only=False
                )
            )
            known = {s.id: s for s in seen.servers}
            for server_id in server_ids:
                server = known.get(server_id)
                if server is None:
                    raise NotFound("MCP server not found", field="serverIds", id=server_id)
                if not server.enabled or server.url is None:
                    raise InvalidInput("serverIds", f"the MCP server {server.name} is disabled")
            return tuple(known[i] for i in dict.fromkeys(server_ids))
        enabled = await self.list_visible_mcp_servers(ListVisibleMcpServers(tenant_id=tenant_id))
        if not enabled.servers:
            raise InvalidInput("serverIds", "the tenant has no enabled MCP server")
        return enabled.servers

    async def _catalog(self, tenant_id: str, servers: tuple[McpServerView, ...]) -> _Catalog:
        """The cached index of these servers' tools for the tenant, built once per key even
        when plans arrive together (the first builds, the others wait for it)."""
        key = _catalog_key(tenant_id, servers)
        cached = self._catalogs.get(key) if CATALOG_CACHE_SIZE else None
        if cached is not None:
            self._catalogs.move_to_end(key)
            return cached
        if not CATALOG_CACHE_SIZE:
            return await self._build_catalog(tenant_id, servers)
        building = self._building.get(key)
        if building is not None:
            return await asyncio.shield(building)
        future: asyncio.Future[_Catalog] = asyncio.get_running_loop().create_future()
        self._building[key] = future
        try:
            catalog = await self._build_catalog(tenant_id, servers)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else needs to
            raise
        finally:
            self._building.pop(key, None)
        future.set_result(catalog)
        self._catalogs[key] = catalog
        while len(self._catalogs) > CATALOG_CACHE_SIZE:
            self._catalogs.popitem(last=False)
        return catalog

    async def _build_catalog(self, tenant_id: str, servers: tuple[McpServerView, ...]) -> _Catalog:
        listed = await self.actor_runtime.ask(
            CatalogTools(tenant_id=tenant_id, server_ids=tuple(s.id for s in servers))
        )
        docs = [
            tool_doc(t.name, t.original_name, t.title, t.description, t.input_schema, t.server_name)
            for t in listed.tools
        ]
        # tokenising 1,000 tools is tens of milliseconds of CPU: in a thread, so the event
        # loop (every other actor, the gateway) keeps turning meanwhile
        index = await asyncio.to_thread(CatalogIndex, docs)
        return _Catalog(index=index, tools={t.name: t for t in listed.tools})

    async def _check_workspace(self, tenant_id: str, workspace_id: str) -> None:
        try:
            workspace = await self.actor_runtime.ask(
                GetWorkspace(tenant_id=tenant_id, id=workspace_id)
            )
        except NotFound:
            raise NotFound("workspace not found", field="workspaceId", id=workspace_id) from None
        if workspace.status != "ACTIVE":
            raise InvalidInput("workspaceId", f"the workspace is {workspace.status.lower()}")

    async def _policy(self, tenant_id: str, role: str, tool: McpToolView) -> Any:
        return await self.actor_runtime.ask(
            CheckPolicy(
                tenant_id=tenant_id,
                role=role,
                action=tool_policy_action(tool.name),
                resource_id=tool.id,
                is_own_resource=True,
            )
        )

    # ------------------------------------------------------------------ reads

    @handler(read_only=True)
    async def get_mcp_plan(self, msg: GetMcpPlan) -> McpPlanView:
        return plan_view(await self._plan(msg.tenant_id, msg.id))

    @handler(read_only=True)
    async def list_mcp_plans(self, msg: ListMcpPlans) -> Page[McpPlanView]:
        query = McpPlan.filter(tenant_id=msg.tenant_id)
        if msg.status is not None:
            query = query.filter(status=msg.status)
        return await paginate(query, first=msg.first, after=msg.after, view=plan_view)

    # ------------------------------------------------------------------ planning

    @handler(concurrent=True)  # one INSERT; the catalog cache is filled idempotently
    async def plan_mcp(self, msg: PlanMcp) -> McpPlanView:
        if msg.workspace_id is not None:
            await self._check_workspace(msg.tenant_id, msg.workspace_id)
        servers = await self._servers(msg.tenant_id, msg.server_ids)
        catalog = await self._catalog(msg.tenant_id, servers)
        parsed = parse_intent(msg.intent)
        words = parsed.query_words + [w for name in msg.arguments for w in split_words(name)]
        ranked = catalog.index.search(words, limit=MAX_PLAN_CANDIDATES)
        if not ranked:
            raise InvalidInput(
                "intent",
                f"no tool matches this intent ({catalog.index.size} tools of "
                f"{len(servers)} enabled MCP servers searched; sync a server to see its tools)",
            )
        decisions = await asyncio.gather(
            *(self._policy(msg.tenant_id, msg.role, catalog.tools[r.key]) for r in ranked)
        )
        candidates = [
            _candidate_json(r, catalog.tools[r.key], decision)
            for r, decision in zip(ranked, decisions, strict=True)
        ]
        chosen = next((c for c in candidates if c["policy"]["effect"] != DENY), None)
        if chosen is None:
            top = candidates[0]
            raise Forbidden(
                f"the policy denies every matching tool; best match {top['tool']}: "
                f"{top['policy']['reason']}",
                field="intent",
            )
        tool = catalog.tools[chosen["tool"]]
        args = plan_arguments(parsed, msg.arguments, tool.input_schema, tool.name)
        requires_approval = not (chosen["readOnly"] and chosen["policy"]["effect"] == ALLOW)
        now = datetime.now(UTC)
        async with in_transaction() as conn:
            row = await McpPlan.create(
                id=new_id("mpl"),
                tenant_id=msg.tenant_id,
                status=PLAN_PROPOSED,
                intent=msg.intent,
                arguments=json.dumps(msg.arguments),
                workspace_id=msg.workspace_id,
                server_ids=json.dumps(list(msg.server_ids)),
                candidates=json.dumps(candidates),
                chosen_server_id=tool.server_id,
                chosen_tool=tool.name,
                chosen_original_name=tool.original_name,
                chosen_arguments=json.dumps(args.arguments),
                missing_arguments=json.dumps(list(args.missing)),
                tool_definition_sha256=tool.definition_sha256,
                arguments_sha256=arguments_sha256(args.arguments),
                requires_approval=requires_approval,
                explanation=explain(
                    chosen, candidates, args.missing, args.sources, requires_approval
                ),
                policy_effect=chosen["policy"]["effect"],
                policy_reason=chosen["policy"]["reason"],
                created_by_member_id=msg.member_id,
                created_at=now,
                updated_at=now,
                using_db=conn,
            )
            view = plan_view(row)
            await self.outbox.stage(
                conn, msg.tenant_id, MCP_PLAN_PROPOSED, plan_event(view), key=row.id
            )
        await self.outbox.flush()
        return view

    # ------------------------------------------------------------------ transitions

    async def _move(
        self,
        row: McpPlan,
        expected: str,
        changes: dict[str, Any],
        topic: str,
        *,
        detail: dict[str, Any] | None = None,
        extra_events: tuple[tuple[str, dict[str, Any], str], ...] = (),
        **guards: Any,
    ) -> McpPlanView:
        """One conditional update of the plan from ``expected`` (and ``guards``), its event
        (with ``detail``) and ``extra_events`` staged in the same transaction; ``CONFLICT``
        naming the current state when the plan moved meanwhile."""
        changes = {**changes, "updated_at": datetime.now(UTC)}
        try:
            async with in_transaction() as conn:
                done = (
                    await McpPlan.filter(
                        id=row.id, tenant_id=row.tenant_id, status=expected, **guards
                    )
                    .using_db(conn)
                    .update(**changes)
                )
                if not done:
                    raise _Changed
                row = await McpPlan.filter(id=row.id).using_db(conn).get()
                view = plan_view(row)
                payload = plan_event(view, previousStatus=expected, **(detail or {}))
                await self.outbox.stage(conn, row.tenant_id, topic, payload, key=row.id)
                for extra_topic, extra_payload, key in extra_events:
                    await self.outbox.stage(
                        conn, row.tenant_id, extra_topic, extra_payload, key=key
                    )
        except _Changed:
            current = await McpPlan.filter(id=row.id).first()
            status = current.status if current is not None else "gone"
            raise Conflict(
                f"the plan changed meanwhile (it is {status} now); read it again",
                field="id",
                status=status,
            ) from None
        await self.outbox.flush()
        return view

    @handler(concurrent=True)  # a conditional update
    async def update_mcp_plan_arguments(self, msg: UpdateMcpPlanArguments) -> McpPlanView:
        row = await self._plan(msg.tenant_id, msg.id)
        if row.status not in (PLAN_PROPOSED, PLAN_APPROVED):
            raise Conflict(
                f"the plan is {row.status}; only a PROPOSED or APPROVED plan takes new arguments",
                field="id",
                status=row.status,
            )
        tool = await self._plan_tool(row)
        if tool.definition_sha256 != row.tool_definition_sha256:
            raise Conflict(
                f"the tool {tool.name} changed since the plan was made (its next execution "
                "would be STALE); make a new plan",
                field="id",
            )
        args = plan_arguments(parse_intent(row.intent), msg.arguments, tool.input_schema, tool.name)
        digest = arguments_sha256(args.arguments)
        if digest == row.arguments_sha256 and json.loads(row.arguments) == msg.arguments:
            return plan_view(row)
        candidates = json.loads(row.candidates)
        chosen = next(c for c in candidates if c["tool"] == row.chosen_tool)
        changes: dict[str, Any] = {
            "arguments": json.dumps(msg.arguments),
            "chosen_arguments": json.dumps(args.arguments),
            "missing_arguments": json.dumps(list(args.missing)),
            "arguments_sha256": digest,
            "explanation": explain(
                chosen, candidates, args.missing, args.sources, row.requires_approval
            ),
        }
        if row.status == PLAN_APPROVED and digest != row.arguments_sha256:
            # the approval was for the old arguments
            changes.update(
                status=PLAN_PROPOSED,
                approved_by_member_id=None,
                approved_role=None,
                approved_at=None,
            )
        return await self._move(
            row,
            row.status,
            changes,
            MCP_PLAN_UPDATED,
            detail={"updatedBy": msg.member_id},
            arguments_sha256=row.arguments_sha256,
        )

    async def _plan_tool(self, row: McpPlan) -> McpToolView:
        """The plan's tool as the catalog has it (its input schema, for new arguments)."""
        try:
            return await self.actor_runtime.ask(
                GetMcpTool(
                    tenant_id=row.tenant_id,
                    server_id=row.chosen_server_id or "",
                    name=row.chosen_tool or "",
                )
            )
        except NotFound:
            raise Conflict(
                f"the tool {row.chosen_tool} is no longer in the catalog; make a new plan",
                field="id",
            ) from None

    @handler(concurrent=True)  # a conditional update
    async def approve_mcp_plan(self, msg: ApproveMcpPlan) -> McpPlanView:
        row = await self._plan(msg.tenant_id, msg.id)
        if row.status != PLAN_PROPOSED:
            raise Conflict(
                f"the plan is {row.status}; only a PROPOSED plan can be approved",
                field="id",
                status=row.status,
            )
        if msg.arguments_sha256 is not None and msg.arguments_sha256 != row.arguments_sha256:
            raise Conflict(
                "the plan's arguments changed since you read them; read it again",
                field="argumentsSha256",
            )
        missing = json.loads(row.missing_arguments)
        if missing:
            raise Conflict(
                f"the plan misses required arguments ({', '.join(missing)}); "
                "supply them with updateMcpPlanArguments first",
                field="arguments",
                missing=missing,
            )
        decision = await self._tool_policy(row, msg.role)
        if decision.effect == DENY:
            raise Forbidden(decision.reason, effect=decision.effect, policy_id=decision.policy_id)
        return await self._move(
            row,
            PLAN_PROPOSED,
            {
                "status": PLAN_APPROVED,
                "approved_by_member_id": msg.member_id,
                "approved_role": msg.role,
                "approved_at": datetime.now(UTC),
            },
            MCP_PLAN_APPROVED,
            detail={"approvedBy": msg.member_id, "approvedRole": msg.role},
            arguments_sha256=row.arguments_sha256,
        )

    async def _tool_policy(self, row: McpPlan, role: str) -> Any:
        return await self.actor_runtime.ask(
            CheckPolicy(
                tenant_id=row.tenant_id,
                role=role,
                action=tool_policy_action(row.chosen_tool or ""),
                resource_id=row.id,
                is_own_resource=True,
            )
        )

    @handler(concurrent=True)  # a conditional update
    async def reject_mcp_plan(self, msg: RejectMcpPlan) -> McpPlanView:
        row = await self._plan(msg.tenant_id, msg.id)
        if row.status not in (PLAN_PROPOSED, PLAN_APPROVED):
            raise Conflict(
                f"the plan is {row.status}; only a PROPOSED or APPROVED plan can be rejected",
                field="id",
                status=row.status,
            )
        return await self._move(
            row,
            row.status,
            {"status": PLAN_REJECTED, "rejected_reason": msg.reason},
            MCP_PLAN_REJECTED,
            detail={"rejectedBy": msg.member_id},
        )

    # ------------------------------------------------------------------ execution

    @handler(concurrent=True)  # waits on the MCP server; every write is a conditional update
    async def execute_mcp_plan(self, msg: ExecuteMcpPlan) -> McpPlanView:
        row = await self._plan(msg.tenant_id, msg.id)
        runner = await self._runner(row, msg)
        started = time.perf_counter()
        expected = row.status
        timeout = self.mcp_settings.timeout_seconds

        def elapsed_ms() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        # 1. the tool's definition as its server lists it now
        try:
            connection = await self.resolve_mcp_server(
                ResolveMcpServer(tenant_id=row.tenant_id, id=row.chosen_server_id or "")
            )
            listed = await client.list_tools(
                connection.url, connection.headers, timeout, allow_private=connection.allow_private
            )
        except ContractError as exc:
            return await self._finish_unrun(
                row,
                expected,
                PLAN_FAILED,
                f"the tool's server could not be read: {exc.message}",
                exc.code,
                elapsed_ms(),
                runner[0],
            )
        current = next((t for t in listed if t.name == row.chosen_original_name), None)
        if current is None:
            return await self._finish_unrun(
                row,
                expected,
                PLAN_STALE,
                f"the server no longer lists the tool {row.chosen_original_name}; nothing ran",
                "STALE",
                elapsed_ms(),
                runner[0],
            )
        digest = client.definition_sha256(current)
        if digest != row.tool_definition_sha256:
            return await self._finish_unrun(
                row,
                expected,
                PLAN_STALE,
                "the tool's definition changed since the plan was made "
                f"(sha256 {(row.tool_definition_sha256 or '')[:12]}… is now {digest[:12]}…); "
                "nothing ran: make a new plan",
                "STALE",
                elapsed_ms(),
                runner[0],
            )
        # 2. a tool call of today's allowance (LIMIT_EXCEEDED leaves the plan as it was)
        allowance = await self.actor_runtime.ask(ReserveToolCalls(tenant_id=row.tenant_id))
        try:
            await self._move(
                row,
                expected,
                {"status": PLAN_EXECUTING},
                MCP_PLAN_EXECUTING,
                detail={"executedBy": msg.member_id},
                arguments_sha256=row.arguments_sha256,
            )
        except Conflict:
            await self._release(row.tenant_id, allowance.day)
            raise
        # 3. the call, with exactly the plan's arguments
        arguments = json.loads(row.chosen_arguments)
        called = False
        error: str | None = None
        result: client.ToolCallResult | None = None
        key_id: str | None = None
        try:
            headers = dict(connection.headers)
            if connection.server.name == OPS_MCP_SERVER and connection.server.scope == "platform":
                key_id, headers["Authorization"] = await self._short_lived_key(row, runner, timeout)
            called = True
            result = await client.call_tool(
                connection.url,
                headers,
                row.chosen_original_name or "",
                arguments,
                timeout,
                allow_private=connection.allow_private,
            )
        except ContractError as exc:
            error = (
                f"the tool call failed: {exc.message}"
                if called
                else f"the call could not be prepared: {exc.message}"
            )
        finally:
            if key_id is not None:
                await self._revoke(row.tenant_id, key_id)
        if not called:
            await self._release(row.tenant_id, allowance.day)
        # 4. the result, the outcome
        changes: dict[str, Any] = {"executed_at": datetime.now(UTC)}
        if result is not None:
            document = json.dumps(
                {
                    "content": json.loads(result.content_json),
                    "structuredContent": result.structured,
                    "isError": result.is_error,
                },
                ensure_ascii=False,
            )
            changes["result_excerpt"] = document[:RESULT_EXCERPT_CHARS]
            if result.is_error:
                error = f"the tool reported an error: {result.text[:500] or '(no text)'}"
            if row.workspace_id is not None:
                stored = await self._store_result(row, document, runner[0])
                if isinstance(stored, str):
                    changes["result_artifact_id"] = stored
                elif error is None:
                    error = f"the tool ran, but its result could not be stored: {stored.message}"
        status = (
            PLAN_FAILED
            if error is not None and (result is None or result.is_error)
            else PLAN_SUCCEEDED
        )
        changes.update(
            status=status,
            duration_ms=elapsed_ms(),
            outcome_error=None if error is None else error[:MAX_ERROR_LENGTH],
        )
        usage = ()
        if called:
            usage = (
                (
                    USAGE_TOPIC,
                    {
                        "kind": "TOOL_CALL",
                        "quantity": 1,
                        "at": datetime.now(UTC).isoformat(),
                        "idempotencyKey": f"mcp-plan:{row.id}",
                    },
                    row.id,
                ),
            )
        view = await self._move(
            row,
            PLAN_EXECUTING,
            changes,
            MCP_PLAN_EXECUTED if status == PLAN_SUCCEEDED else MCP_PLAN_FAILED,
            detail={"error": changes["outcome_error"], "durationMs": changes["duration_ms"]},
            extra_events=usage,
        )
        await self._audit(
            view,
            "mcp_plan.executed" if status == PLAN_SUCCEEDED else "mcp_plan.failed",
            runner[0],
            None
            if status == PLAN_SUCCEEDED
            else ("TOOL_ERROR" if result is not None else "UNAVAILABLE"),
        )
        return view

    async def _runner(self, row: McpPlan, msg: ExecuteMcpPlan) -> tuple[str, str]:
        """Who the call runs as: the approver, or for a plan that needs no approval the
        executor (after checking it may run it without one)."""
        if row.status == PLAN_APPROVED:
            return row.approved_by_member_id or msg.member_id, row.approved_role or msg.role
        if row.status != PLAN_PROPOSED:
            raise Conflict(
                f"the plan is {row.status}; only an APPROVED plan (or a PROPOSED one that "
                "needs no approval) can be executed",
                field="id",
                status=row.status,
            )
        if row.requires_approval:
            raise Conflict(
                "the plan needs approval first (approveMcpPlan)", field="id", status=row.status
            )
        missing = json.loads(row.missing_arguments)
        if missing:
            raise Conflict(
                f"the plan misses required arguments ({', '.join(missing)}); "
                "supply them with updateMcpPlanArguments first",
                field="arguments",
                missing=missing,
            )
        decision = await self._tool_policy(row, msg.role)
        if decision.effect != ALLOW:
            raise Forbidden(
                f"{decision.reason} (running this tool without approval needs ALLOW)",
                effect=decision.effect,
                policy_id=decision.policy_id,
            )
        return msg.member_id, msg.role

    async def _finish_unrun(
        self,
        row: McpPlan,
        expected: str,
        status: str,
        error: str,
        code: str,
        duration_ms: float,
        member_id: str,
    ) -> McpPlanView:
        """FAILED or STALE before anything ran."""
        view = await self._move(
            row,
            expected,
            {
                "status": status,
                "executed_at": datetime.now(UTC),
                "duration_ms": duration_ms,
                "outcome_error": error[:MAX_ERROR_LENGTH],
            },
            MCP_PLAN_STALE if status == PLAN_STALE else MCP_PLAN_FAILED,
            detail={"error": error[:MAX_ERROR_LENGTH]},
            arguments_sha256=row.arguments_sha256,
        )
        action = "mcp_plan.stale" if status == PLAN_STALE else "mcp_plan.failed"
        await self._audit(view, action, member_id, code)
        return view

    async def _short_lived_key(
        self, row: McpPlan, runner: tuple[str, str], timeout: float
    ) -> tuple[str, str]:
        """A key of the runner (member and role) for one call on synapsex-ops-mcp."""
        created = await self.actor_runtime.ask(
            CreateApiKey(
                tenant_id=row.tenant_id,
                member_id=runner[0],
                role=runner[1],
                name=f"mcp plan {row.id}",
                expires_at=datetime.now(UTC) + timedelta(seconds=timeout) + KEY_GRACE,
            )
        )
        return created.api_key.id, f"Bearer {created.key}"

    async def _revoke(self, tenant_id: str, key_id: str) -> None:
        try:
            await self.actor_runtime.ask(RevokeApiKey(tenant_id=tenant_id, key_id=key_id))
        except ContractError as exc:  # it expires by itself shortly
            log.warning(
                "short-lived key not revoked; it expires by itself",
                key_id=key_id,
                error_code=exc.code,
            )

    async def _release(self, tenant_id: str, day: Any) -> None:
        try:
            await self.actor_runtime.ask(ReleaseToolCalls(tenant_id=tenant_id, day=day))
        except ContractError as exc:
            log.warning("reserved tool call not released", error_code=exc.code)

    async def _store_result(
        self, row: McpPlan, document: str, member_id: str
    ) -> str | ContractError:
        """The result as an OUTPUT artifact of the plan's workspace: its id, or the error."""
        try:
            artifact = await self.actor_runtime.ask(
                UploadArtifact(
                    tenant_id=row.tenant_id,
                    workspace_id=row.workspace_id or "",
                    name=f"mcp-plan-{row.id}.json",
                    kind="OUTPUT",
                    media_type="application/json",
                    content=document.encode("utf-8"),
                    created_by=member_id,
                )
            )
        except ContractError as exc:
            return exc
        return artifact.id

    async def _audit(
        self, view: McpPlanView, action: str, member_id: str, error_code: str | None
    ) -> None:
        try:
            await self.actor_runtime.ask(
                RecordAudit(
                    tenant_id=view.tenant_id,
                    actor_member_id=member_id,
                    action=action,
                    resource_type="mcp_plan",
                    resource_id=view.id,
                    outcome="SUCCESS" if error_code is None else "FAILURE",
                    error_code=error_code,
                )
            )
        except ContractError as exc:  # the outcome stands; the missing record is an alarm
            log.error(
                "audit record not written", action=action, plan_id=view.id, error_code=exc.code
            )
