"""The web app (ASGI): pages, the JSON API beside them, templates/ and static/.

May import: daemon, service and everything below. Never cli.
"""
