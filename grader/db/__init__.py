"""Storage: SQLAlchemy 2.0 tables, engine setup (SQLite WAL), migrations and indexed queries."""
