"""billing-service: usage records, costs and plan limits."""
