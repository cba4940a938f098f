"""secrets-service: tenant secrets under envelope encryption."""
