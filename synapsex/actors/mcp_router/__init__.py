"""mcp-router-service: the registry of MCP servers, tool discovery, and explainable plans."""
