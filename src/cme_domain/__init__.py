"""The product catalogue's domain: entities, invariants, use cases and the ports they need."""
