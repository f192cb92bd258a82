"""Adapters of the registry: HTTP routers and the read views used for validation."""
