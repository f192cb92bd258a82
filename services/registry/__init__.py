"""Registry: the single writer of organization units and member records."""
