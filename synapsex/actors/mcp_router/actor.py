"""mcp-router-service: the registry of MCP servers (:mod:`.registry`) and the plans made over
their tools (:mod:`.plans`), one actor composed of both parts' handlers.

Before the first message, ``on_start`` gives both parts what they share: ``self.mcp_settings``
(:class:`~.seed.McpSettings`, from the environment) and ``self.outbox`` (the service's
transactional outbox, ``mcp_router_outbox``); it seeds the platform servers, then runs the
plans part's ``plans_start()`` when it has one.
"""

from __future__ import annotations

from synapsex.actors.domain_events import Outbox
from synapsex.contracts.mcp import SERVICE
from synapsex.runtime import Actor

from .models import McpRouterOutbox
from .registry import RegistryHandlers
from .seed import McpSettings, seed_platform_servers

try:
    from .plans import PlanHandlers
except ModuleNotFoundError as exc:  # pragma: no cover - only while the plans part is written
    if exc.name != f"{__package__}.plans":
        raise

    class PlanHandlers:  # type: ignore[no-redef]
        """Stands in for the plans part until ``plans.py`` exists."""


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
        plans_start = getattr(self, "plans_start", None)
        if plans_start is not None:
            await plans_start()
