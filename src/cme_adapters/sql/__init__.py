"""One SQL adapter on SQLAlchemy Core for PostgreSQL (psycopg 3) and embedded SQLite alike."""
