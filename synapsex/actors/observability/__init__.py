"""observability-service: telemetry events and trace spans."""
