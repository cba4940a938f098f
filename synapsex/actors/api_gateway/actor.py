"""api-gateway handlers: the tenant's agent records.

What must hold across processes lives in the database, never in this actor's memory:

* one ACTIVE agent per tenant and name: a unique constraint on ``(tenant_id, name_key)``
  (``name_key`` is NULL once archived);
* the plan's ``agents`` limit: registering claims a slot with one conditional update of the
  tenant's ``api_gateway_agent_counts`` row (``active = active + 1 WHERE active < limit``) in
  the insert's transaction; archiving gives it back in the archive's transaction. The update
  takes the row's write lock, so registrations at the limit in two processes cannot both pass.

So every handler may run side by side (``concurrent=True``): none reads and then writes this
actor's memory, and none waits for another service that might be waiting for it (archiving
*tells* agent-registry to undeploy, it never asks).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import structlog
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from synapsex.actors.domain_events import Outbox
from synapsex.contracts.agents import (
    AGENT_ARCHIVED,
    AGENT_REGISTERED,
    AGENT_UPDATED,
    SERVICE,
    AgentView,
    ArchiveAgent,
    GetAgent,
    ListAgents,
    RegisterAgent,
    UpdateAgent,
    agent_event,
    agent_name_key,
)
from synapsex.contracts.common import Page, as_utc
from synapsex.contracts.deployments import SERVICE as AGENT_REGISTRY
from synapsex.contracts.deployments import UndeployAll
from synapsex.contracts.errors import Conflict, ContractError, LimitExceeded, NotFound
from synapsex.contracts.tenant import GetTenant
from synapsex.runtime import Actor, handler, new_id
from synapsex.runtime.orm import paginate

from .catalog import CatalogHandlers
from .models import Agent, AgentCount, ApiGatewayOutbox

log = structlog.get_logger("synapsex.api_gateway")

ACTIVE = "ACTIVE"
ARCHIVED = "ARCHIVED"


def capability_keys(capabilities: tuple[str, ...]) -> str:
    """``" web_search code:python "``: what the capability filter matches ``" <tag> "`` in."""
    return f" {' '.join(c.lower() for c in capabilities)} "


def agent_view(row: Agent) -> AgentView:
    return AgentView(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        description=row.description,
        capabilities=tuple(json.loads(row.capabilities)),
        version=row.version,
        status=row.status,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        archived_at=None if row.archived_at is None else as_utc(row.archived_at),
        created_by=row.created_by,
    )


def _name_taken(name: str) -> Conflict:
    return Conflict(f"the tenant already has an agent named {name!r}", field="name")


class ApiGatewayActor(
    CatalogHandlers,
    Actor,
    service=SERVICE,
    models="synapsex.actors.api_gateway.models",
    concurrency=8,
):
    """Owns ``agents`` and ``mcp_tools``; publishes ``agent.registered``, ``agent.updated`` and
    ``agent.archived`` through its outbox."""

    async def on_start(self) -> None:
        self._outbox = Outbox(self, ApiGatewayOutbox)
        self._outbox.start()
        #: tenants whose count row is known to exist (it is never deleted)
        self._counted: set[str] = set()

    async def _agent(self, tenant_id: str, agent_id: str) -> Agent:
        row = await Agent.filter(id=agent_id, tenant_id=tenant_id).first()
        if row is None:
            raise NotFound("agent not found", field="id", id=agent_id)
        return row

    # ------------------------------------------------------------------ reads

    @handler(read_only=True)
    async def get_agent(self, msg: GetAgent) -> AgentView:
        return agent_view(await self._agent(msg.tenant_id, msg.id))

    @handler(read_only=True)
    async def list_agents(self, msg: ListAgents) -> Page[AgentView]:
        query = Agent.filter(tenant_id=msg.tenant_id)
        if msg.status is not None:
            query = query.filter(status=msg.status)
        if msg.capability is not None:
            query = query.filter(capability_keys__contains=f" {msg.capability.lower()} ")
        return await paginate(query, first=msg.first, after=msg.after, view=agent_view)

    # ------------------------------------------------------------------ writes

    async def _ensure_count_row(self, tenant_id: str) -> None:
        """The tenant's count row, created race-free (a second creator's insert is ignored)."""
        if tenant_id in self._counted:
            return
        await AgentCount.bulk_create(
            [AgentCount(tenant_id=tenant_id, active=0)], ignore_conflicts=True
        )
        self._counted.add(tenant_id)

    @handler(concurrent=True)  # the unique constraint and one conditional update decide
    async def register_agent(self, msg: RegisterAgent) -> AgentView:
        key = agent_name_key(msg.name)
        if await Agent.filter(tenant_id=msg.tenant_id, name_key=key).exists():
            raise _name_taken(msg.name)
        tenant = await self.actor_runtime.ask(GetTenant(id=msg.tenant_id))
        limit = tenant.limits.agents
        await self._ensure_count_row(msg.tenant_id)
        now = datetime.now(UTC)
        try:
            async with in_transaction() as conn:
                claimed = (
                    await AgentCount.filter(tenant_id=msg.tenant_id, active__lt=limit)
                    .using_db(conn)
                    .update(active=F("active") + 1)
                )
                if not claimed:
                    raise LimitExceeded(
                        f"the {tenant.plan} plan allows {limit} active agents; archive one or "
                        "upgrade the plan",
                        limit="agents",
                        allowed=limit,
                    )
                row = await Agent.create(
                    id=new_id("agt"),
                    tenant_id=msg.tenant_id,
                    name=msg.name,
                    name_key=key,
                    description=msg.description,
                    capabilities=json.dumps(list(msg.capabilities)),
                    capability_keys=capability_keys(msg.capabilities),
                    version=msg.version,
                    status=ACTIVE,
                    created_by=msg.created_by,
                    created_at=now,
                    updated_at=now,
                    using_db=conn,
                )
                view = agent_view(row)
                await self._outbox.stage(
                    conn, msg.tenant_id, AGENT_REGISTERED, agent_event(view), key=row.id
                )
        except IntegrityError:  # the name was taken meanwhile (another process)
            raise _name_taken(msg.name) from None
        await self._outbox.flush()
        return view

    @handler(concurrent=True)  # a conditional update on the ACTIVE row decides
    async def update_agent(self, msg: UpdateAgent) -> AgentView:
        row = await self._agent(msg.tenant_id, msg.id)
        if row.status != ACTIVE:
            raise Conflict("an archived agent cannot be changed", field="id", id=row.id)
        changes: dict[str, Any] = {}
        if msg.name is not None and msg.name != row.name:
            changes["name"] = msg.name
            changes["name_key"] = agent_name_key(msg.name)
        if msg.description is not None and msg.description != row.description:
            changes["description"] = msg.description
        if msg.capabilities is not None and msg.capabilities != tuple(json.loads(row.capabilities)):
            changes["capabilities"] = json.dumps(list(msg.capabilities))
            changes["capability_keys"] = capability_keys(msg.capabilities)
        if msg.version is not None and msg.version != row.version:
            changes["version"] = msg.version
        if not changes:
            return agent_view(row)
        changed = sorted(k for k in changes if k not in ("name_key", "capability_keys"))
        changes["updated_at"] = datetime.now(UTC)
        try:
            async with in_transaction() as conn:
                updated = (
                    await Agent.filter(id=row.id, tenant_id=msg.tenant_id, status=ACTIVE)
                    .using_db(conn)
                    .update(**changes)
                )
                if not updated:
                    raise Conflict("an archived agent cannot be changed", field="id", id=row.id)
                row = await Agent.filter(id=row.id).using_db(conn).get()
                view = agent_view(row)
                await self._outbox.stage(
                    conn,
                    msg.tenant_id,
                    AGENT_UPDATED,
                    {**agent_event(view), "changed": changed},
                    key=row.id,
                )
        except IntegrityError:
            raise _name_taken(msg.name or "") from None
        await self._outbox.flush()
        return view

    @handler(concurrent=True)  # a conditional update on the ACTIVE row decides
    async def archive_agent(self, msg: ArchiveAgent) -> AgentView:
        row = await self._agent(msg.tenant_id, msg.id)
        if row.status == ARCHIVED:
            return agent_view(row)
        now = datetime.now(UTC)
        async with in_transaction() as conn:
            archived = (
                await Agent.filter(id=row.id, tenant_id=msg.tenant_id, status=ACTIVE)
                .using_db(conn)
                .update(status=ARCHIVED, name_key=None, archived_at=now, updated_at=now)
            )
            if archived:
                # the slot goes back with the archive (never below zero)
                await (
                    AgentCount.filter(tenant_id=msg.tenant_id, active__gt=0)
                    .using_db(conn)
                    .update(active=F("active") - 1)
                )
            row = await Agent.filter(id=row.id).using_db(conn).get()
            view = agent_view(row)
            if archived:
                await self._outbox.stage(
                    conn, msg.tenant_id, AGENT_ARCHIVED, agent_event(view), key=row.id
                )
        if archived:
            await self._outbox.flush()
            await self._undeploy(msg.tenant_id, row.id)
        return view

    async def _undeploy(self, tenant_id: str, agent_id: str) -> None:
        """Tell agent-registry to undeploy the archived agent (told, never asked: it asks this
        service about agents, and waiting on each other would deadlock both)."""
        runtime = self.actor_runtime
        if AGENT_REGISTRY not in runtime.services:
            return
        try:
            await runtime.tell(
                UndeployAll(tenant_id=tenant_id, agent_id=agent_id, reason="AGENT_ARCHIVED")
            )
        except ContractError as exc:
            log.warning(
                "the archived agent's deployments were not undeployed",
                agent_id=agent_id,
                error=f"{exc.code}: {exc.message}",
            )
