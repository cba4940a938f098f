"""tenant-service: tenants (organizations, plans, limits) and their members."""
