"""Authentication adapters: they turn request credentials into a domain Principal."""
