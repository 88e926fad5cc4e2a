"""Entrypoints: the HTTP app, the CLI, configuration and the composition root that wires them."""
