"""event-bus-service: the durable event log, consumer groups and live streams."""
