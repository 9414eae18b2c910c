"""Readers during a sync: 50 concurrent readers on /changes, a study page and /api/v1/changes
while a first sync writes the same SQLite file (WAL, a busy timeout, short write transactions):
no "database is locked", no 5xx. Their latencies are `make bench`'s (tests/benchmarks/readers.py),
never asserted here."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.benchmarks.bench import studies, write_state
from tests.benchmarks.readers import read_while
from tests.benchmarks.registry_server import Registry, handler
from tests.harness import write_config
from tests.web_support import close_site, make_site
from watcher.cli.shared import make_service
from watcher.config import load_config

STUDIES = 300


def test_fifty_readers_during_a_first_sync_see_no_locked_database_and_no_5xx(tmp_path: Path) -> None:
    write_state(tmp_path, "base", studies(STUDIES))
    registry = Registry(tmp_path)
    registry.switch("base")
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(registry))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}/api/v2"
    database = f"sqlite:///{tmp_path}/tw.db"
    site = make_site(database, base_url)
    try:
        cookies = dict(site.signed_in("reader@example.org").session.cookies)
        token = site.token("api@example.org")
        config = load_config(write_config(tmp_path, SimpleNamespace(base_url=base_url), database_url=database))
        service = make_service(config, watches="provisioned")
        report: dict[str, Any] = {}
        sync = threading.Thread(target=lambda: report.update(poll=service.poll(datetime.now(UTC))))
        sync.start()
        reads = read_while(
            site.url, ["/changes", "/studies/NCT08000000", "/api/v1/changes"], sync.is_alive,
            cookies=cookies, token=token,
        )  # fmt: skip
        sync.join()
    finally:
        close_site(site)
        server.shutdown()
        server.server_close()
    assert reads.errors == [], reads.errors[:5]
    assert set(reads.statuses) <= {200, 404}, reads.statuses  # 404: the study before the sync reached it
    assert all(poll.ok and poll.studies == STUDIES for poll in report["poll"].polls), report["poll"].lines()
