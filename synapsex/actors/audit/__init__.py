"""audit-service: append-only compliance records, hash-chained per tenant with SHA-256."""
