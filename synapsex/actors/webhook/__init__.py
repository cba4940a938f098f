"""webhook-service: signed deliveries of a tenant's events to its HTTP endpoints."""
