"""Use cases of the registry: command handlers, publishing and reactions."""
