"""vm-registry-service: the tenant's VMs, their labels, heartbeats, health and VM tokens."""
