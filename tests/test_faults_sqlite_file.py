"""The SQLite file removed or replaced while trialwatch runs. SQLite would go on writing into the
removed file's open inode (gone at the last close) and a new connection would create an empty
database in its place, every job then failing on a missing table. Now: a clear one-line error
each cycle (no new empty file, no traceback), the web app answering 503, and once the file is
back (a backup copied in), the same process carries on with it."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.harness import write_config
from tests.web_support import close_site, make_site
from watcher.cli.shared import make_service
from watcher.config import load_config
from watcher.daemon.health import Metrics, Monitor
from watcher.daemon.jobs import poll_job
from watcher.daemon.scheduler import Runtime
from watcher.store import db, repo
from watcher.store.backup import backup_sqlite

START = datetime(2026, 11, 21, 10, tzinfo=UTC)


def remove_database(path: Path) -> None:
    for part in path.parent.glob(f"{path.name}*"):  # the file, its -wal and -shm
        part.unlink()


def test_the_daemon_says_the_file_is_gone_each_cycle_and_carries_on_once_it_is_back(
    tmp_path: Path, registry: Any, own_study: Any, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tw.db"
    registry.put(own_study("study_NCT09000001_v1"))
    config = load_config(write_config(tmp_path, registry, database_url=f"sqlite:///{path}"))
    clock = [START]
    monitor = Monitor(metrics=Metrics(), poll_interval=timedelta(hours=6), started_at=START)
    runtime = Runtime(service=make_service(config), clock=lambda: clock[0], monitor=monitor)
    poll_job(runtime)
    backup = tmp_path / "backup.db"
    backup_sqlite(path, backup)
    remove_database(path)

    for _cycle in range(2):  # each cycle: one line, the daemon goes on, no empty database made
        clock[0] += timedelta(hours=6)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            poll_job(runtime)
        errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
        assert len(errors) == 1 and "the database file is gone" in errors[0], caplog.text
        assert "Traceback" not in caplog.text and not path.exists()
        status = monitor.status(now=clock[0]).as_json()
        assert status["status"] == "degraded" and "the database file is gone" in status["storage"]["database"]

    shutil.copyfile(backup, path)  # restored: the next cycle uses it
    clock[0] += timedelta(hours=6)
    poll_job(runtime)
    assert monitor.status(now=clock[0]).as_json()["status"] == "ok"
    with db.transaction(runtime.service.engine) as session:
        assert repo.count_studies(session=session, watch="RCC bispecifics") == 1


def test_the_web_answers_503_while_the_file_is_gone_and_200_once_it_is_back(tmp_path: Path, registry: Any) -> None:
    path = tmp_path / "web.db"
    site = make_site(f"sqlite:///{path}", registry.base_url)
    try:
        client = site.signed_in("reader@example.org")
        assert client.get("/changes").status_code == 200
        backup = tmp_path / "backup.db"
        backup_sqlite(path, backup)
        remove_database(path)
        gone = client.get("/changes")
        assert gone.status_code == 503 and gone.headers.get("Retry-After") == "30"
        assert client.get("/api/v1/changes").status_code in (401, 503)
        assert not path.exists(), "no empty database created in its place"
        shutil.copyfile(backup, path)
        assert client.get("/changes").status_code == 200
    finally:
        close_site(site)
