"""The GraphQL API: one module per type family, composed in schema.py."""
