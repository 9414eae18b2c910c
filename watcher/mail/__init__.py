"""Mail: building a digest (pure, templates/ with autoescaped HTML), the outbox and delivery
exactly once per recipient, and the transports (SMTP, .eml files).

May import: the shared core and store. Never registry, literature, service, daemon, web or cli.
"""
