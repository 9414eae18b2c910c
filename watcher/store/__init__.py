"""Storage: tables (models), engine and migrations (db), queries (repo)."""
