"""Adapters: the concrete implementations of the domain's ports."""
