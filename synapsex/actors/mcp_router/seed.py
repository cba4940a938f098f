"""The router's settings and the platform's MCP servers, both read from the environment.

* ``SYNAPSEX_MCP_TIMEOUT`` (default ``15s``, at most 120 s): the bound of one MCP operation
  (connect, initialise and every page of ``tools/list``, or one call).
* ``SYNAPSEX_MCP_ALLOW_PRIVATE_NETWORKS`` (default ``false``): ``true`` lets tenants' servers be
  on loopback and private addresses (development and tests).
* ``SYNAPSEX_OPS_MCP_URL`` (default ``http://127.0.0.1:8090/mcp``): the platform server
  ``synapsex-ops-mcp``.
* ``QCOS_MCP_URL`` (unset): the platform server ``qcos-mcp``; unset, it is disabled.
* ``SYNAPSEX_MCP_AUTH_<NAME>`` (unset): the ``Authorization`` header of platform server
  ``<NAME>`` (upper-cased, ``-`` as ``_``), e.g. ``SYNAPSEX_MCP_AUTH_QCOS_MCP``.

Platform servers follow the environment: they are inserted at the first start (``INSERT …
ON CONFLICT DO NOTHING``, safe when processes start together) and their URL, description and
enabled state are brought in line with it at every start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from synapsex.config import ConfigError
from synapsex.config.settings import parse_duration, parse_flag
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.mcp import OPS_MCP_SERVER, QCOS_MCP_SERVER, check_server_url
from synapsex.runtime import new_id

from .models import PLATFORM_SCOPE, McpServer

log = structlog.get_logger("synapsex.mcp_router")

TIMEOUT_ENV = "SYNAPSEX_MCP_TIMEOUT"
ALLOW_PRIVATE_ENV = "SYNAPSEX_MCP_ALLOW_PRIVATE_NETWORKS"
OPS_MCP_URL_ENV = "SYNAPSEX_OPS_MCP_URL"
QCOS_MCP_URL_ENV = "QCOS_MCP_URL"
AUTH_ENV_PREFIX = "SYNAPSEX_MCP_AUTH_"
DEFAULT_OPS_MCP_URL = "http://127.0.0.1:8090/mcp"
DEFAULT_TIMEOUT_SECONDS = 15.0
MAX_TIMEOUT_SECONDS = 120.0


def auth_env_name(server_name: str) -> str:
    """``SYNAPSEX_MCP_AUTH_QCOS_MCP`` for ``qcos-mcp``."""
    return AUTH_ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", server_name.upper())


@dataclass(frozen=True, slots=True)
class PlatformServer:
    name: str
    description: str
    url: str | None
    enabled: bool


@dataclass(frozen=True, slots=True)
class McpSettings:
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    allow_private_networks: bool = False
    platform_servers: tuple[PlatformServer, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> McpSettings:
        """Raises :class:`ConfigError` naming the variable at fault."""
        text = environ.get(TIMEOUT_ENV, "").strip()
        timeout = parse_duration(text, TIMEOUT_ENV) if text else DEFAULT_TIMEOUT_SECONDS
        if timeout > MAX_TIMEOUT_SECONDS:
            raise ConfigError(TIMEOUT_ENV, f"must be at most {MAX_TIMEOUT_SECONDS:g} seconds")
        ops_url = _url(environ, OPS_MCP_URL_ENV) or DEFAULT_OPS_MCP_URL
        qcos_url = _url(environ, QCOS_MCP_URL_ENV)
        return cls(
            timeout_seconds=timeout,
            allow_private_networks=parse_flag(environ, ALLOW_PRIVATE_ENV),
            platform_servers=(
                PlatformServer(
                    name=OPS_MCP_SERVER,
                    description="Operate SynapseX itself: VMs, rollouts, events and workspace "
                    "artifacts, through the gateway as the caller.",
                    url=ops_url,
                    enabled=True,
                ),
                PlatformServer(
                    name=QCOS_MCP_SERVER,
                    description="The QCOS MCP server (disabled until an operator sets "
                    f"{QCOS_MCP_URL_ENV}).",
                    url=qcos_url,
                    enabled=qcos_url is not None,
                ),
            ),
        )


def _url(environ: Mapping[str, str], variable: str) -> str | None:
    value = environ.get(variable, "").strip()
    if not value:
        return None
    try:
        check_server_url(value)
    except InvalidInput as exc:
        raise ConfigError(variable, exc.problem) from None
    return value


async def seed_platform_servers(servers: tuple[PlatformServer, ...]) -> None:
    """Insert the platform servers that are missing and align the others with ``servers``."""
    now = datetime.now(UTC)
    await McpServer.bulk_create(
        [
            McpServer(
                id=new_id("mcs"),
                scope_key=PLATFORM_SCOPE,
                tenant_id=None,
                name=server.name,
                url=server.url,
                description=server.description,
                enabled=server.enabled,
                created_at=now,
                updated_at=now,
            )
            for server in servers
        ],
        ignore_conflicts=True,
    )
    for server in servers:
        row = await McpServer.filter(scope_key=PLATFORM_SCOPE, name=server.name).first()
        if row is None:
            continue
        wanted = {"url": server.url, "description": server.description, "enabled": server.enabled}
        if any(getattr(row, key) != value for key, value in wanted.items()):
            await McpServer.filter(id=row.id).update(**wanted, updated_at=now)
            log.info(
                "platform MCP server follows the environment",
                server=server.name,
                enabled=server.enabled,
            )
