"""Storage: tables (models), engine, transactions and migrations (db), queries (repo: small
keyword-only functions that take the session).

May import: the shared core only (config, model, errors). Never a source, mail, service, daemon,
web or cli.
"""
