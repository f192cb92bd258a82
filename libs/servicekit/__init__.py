"""The event-sourcing kit every service reuses: store, commands, outbox relay, consumer, HTTP, telemetry."""
