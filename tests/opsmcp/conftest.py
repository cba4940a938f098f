"""synapsex-ops-mcp on a real port, and the official ``mcp`` client talking to it as a user's
MCP client would (streamable HTTP, a bearer key per HTTP client)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, InitializeResult, TextContent

from synapsex.opsmcp import OpsMcpConfig, OpsMcpServer

#: a gateway URL nothing listens on (port 9 is "discard"; connections are refused)
NOWHERE = "http://127.0.0.1:9/graphql"


@asynccontextmanager
async def ops_mcp(gateway_url: str, api_key: str | None = None) -> AsyncIterator[OpsMcpServer]:
    """synapsex-ops-mcp on 127.0.0.1 (any port) in front of ``gateway_url``."""
    config = OpsMcpConfig(gateway_url=gateway_url, port=0, api_key=api_key, timeout=10.0)
    async with OpsMcpServer(config) as server:
        yield server


class Mcp:
    """One initialised MCP session; ``call`` returns a tool's structured result and
    ``error`` the text of a tool error."""

    def __init__(self, session: ClientSession, initialized: InitializeResult) -> None:
        self.session = session
        self.initialized = initialized

    async def result(self, tool: str, **arguments: Any) -> CallToolResult:
        return await self.session.call_tool(tool, arguments)

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = await self.result(tool, **arguments)
        assert not result.isError, text_of(result)
        assert result.structuredContent is not None
        # the text content is the same JSON, for clients without structured content
        assert json.loads(text_of(result)) == result.structuredContent
        return result.structuredContent

    async def error(self, tool: str, **arguments: Any) -> str:
        result = await self.result(tool, **arguments)
        assert result.isError, result
        return text_of(result)


def text_of(result: CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


@asynccontextmanager
async def mcp_client(url: str, key: str | None = None, **headers: str) -> AsyncIterator[Mcp]:
    """An MCP session on ``url`` whose every HTTP request carries ``Bearer key`` (if any)."""
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with (
        httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30.0)) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        yield Mcp(session, await session.initialize())
