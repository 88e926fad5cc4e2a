"""The embedded default: SQLite on SQLAlchemy's engine (database, unit of work, repositories)."""
