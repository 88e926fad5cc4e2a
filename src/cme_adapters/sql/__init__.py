"""What both SQL databases share: Core tables, statements built once, the outbox, migrations."""
