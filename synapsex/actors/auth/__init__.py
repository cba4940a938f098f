"""auth-service: hashed API keys bound to a tenant, a member and a role."""
