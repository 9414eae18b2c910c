"""The long-running process: APScheduler wiring, the leader lock (SQLite file lock, PostgreSQL
advisory lock), the /healthz and /metrics server, and early signal handling.

May import: service and everything below it. Never cli or web.
"""
