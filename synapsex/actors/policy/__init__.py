"""policy-service: a default role matrix plus per-tenant rules; decides whether a role may act."""
