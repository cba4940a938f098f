"""agent-registry-service: which agent version runs on which VM, and its state."""
