"""workspace-service: workspaces and their artifacts, content stored once per tenant per SHA-256."""
