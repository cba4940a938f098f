"""synapsex-ops-mcp: an MCP server (official ``mcp`` SDK, streamable HTTP) whose tools operate
SynapseX through the gateway's GraphQL API as the caller. See docs/mcp.md."""

from synapsex.opsmcp.gateway_client import GatewayClient, GatewayError
from synapsex.opsmcp.runner import DEFAULT_HOST, DEFAULT_PORT, OpsMcpConfig, OpsMcpServer
from synapsex.opsmcp.server import MCP_PATH, SERVER_NAME, build_server

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "MCP_PATH",
    "SERVER_NAME",
    "GatewayClient",
    "GatewayError",
    "OpsMcpConfig",
    "OpsMcpServer",
    "build_server",
]
