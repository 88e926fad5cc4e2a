"""The PostgreSQL adapter: SQLAlchemy Core's statements run on psycopg's own async pool."""
