"""mcp-router-service: the registry of MCP servers (:mod:`.registry`) and the plans made over
their tools (:mod:`.plans`), one actor composed of both parts' handlers.

Before the first message, ``on_start`` gives both parts what they share: ``self.mcp_settings``
(:class:`~.seed.McpSettings`, from the environment) and ``self.outbox`` (the service's
transactional outbox, ``mcp_router_outbox``); it seeds the platform servers, then runs the
plans part's ``plans_start()``.
"""

from __future__ import annotations

from synapsex.actors.domain_events import Outbox
from synapsex.contracts.mcp import SERVICE
from synapsex.runtime import Actor

from .models import McpRouterOutbox
from .plans import PlanHandlers
from .registry import RegistryHandlers
from .seed import McpSettings, seed_platform_servers


class McpRouterActor(
    RegistryHandlers,
    PlanHandlers,
    Actor,
    service=SERVICE,
    models="synapsex.actors.mcp_router.models",
    concurrency=8,
):
    """Owns ``mcp_servers`` and ``mcp_plans``; publishes ``mcp.server.*`` and ``mcp.plan.*``
    through its outbox."""

    async def on_start(self) -> None:
        self.mcp_settings = McpSettings.from_environ(self.actor_runtime.settings.environ)
        self.outbox = Outbox(self, McpRouterOutbox)
        self.outbox.start()
        await seed_platform_servers(self.mcp_settings.platform_servers)
        await self.plans_start()
