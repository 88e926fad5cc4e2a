"""Authentication adapters: they turn request credentials into a domain Principal."""


class CredentialsRejected(Exception):
    """A credential was refused; the message says why in words safe to show its sender."""
