"""api-gateway: the tenant's agent records and the MCP tool catalog."""
