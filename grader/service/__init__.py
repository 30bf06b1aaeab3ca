"""Use cases: what the CLI and the notebook helper call (the only layer touching db and backends)."""
