"""Gateway: read projections of every topic, served over GraphQL."""
