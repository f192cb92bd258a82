"""Pure party rules of the registry: no I/O, no frameworks."""
