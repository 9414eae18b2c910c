"""The literature: journal feeds (fetch with conditional GET, items and their identity, one poll
of one feed) and, beside them, PubMed; preview of what a watch's words catch there.

May import: the shared core and store. Never registry (what both sources share, such as the
matcher and NCT-id extraction, lives in watcher.matching), mail, service, daemon, web or cli.
"""
