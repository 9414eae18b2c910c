"""A full disk: the SQLite file cannot grow (SQLITE_FULL, reproduced with PRAGMA max_page_count on
every connection), PostgreSQL answers disk_full, the outbox folder cannot be written. The poll or
the digest run that hits it fails with one line, stores nothing half-way, loses or marks delivered
no change; /healthz says degraded; the daemon's next cycle, once there is room, catches up."""

from __future__ import annotations

import logging
import os
import resource
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlmodel import select

from tests.harness import write_config
from watcher.cli.shared import make_service
from watcher.config import load_config
from watcher.daemon.health import Metrics, Monitor
from watcher.daemon.jobs import digest_job, poll_job
from watcher.daemon.scheduler import Runtime
from watcher.store import db, outbox
from watcher.store.models import Delivery

START = datetime(2026, 11, 21, 10, tzinfo=UTC)
NEXT_MORNING = datetime(2026, 11, 22, 8, tzinfo=UTC)  # past the daily digest's 07:00
DAILY = """
[[watch]]
name = "RCC"
conditions = ["renal cell carcinoma"]
terms = ["bispecific", "CAR-T"]
recipients = ["onc@example.org"]
digest = "daily"
"""


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class PageCap:
    """While `on`, every new connection to the SQLite file may not grow it (max_page_count)."""

    def __init__(self, engine: Any) -> None:
        self.on, self.engine = False, engine
        event.listen(engine, "connect", self._cap)

    def _cap(self, connection: Any, _record: Any) -> None:
        if self.on:
            pages = connection.execute("PRAGMA page_count").fetchone()[0]
            connection.execute(f"PRAGMA max_page_count = {pages}")

    def set(self, on: bool) -> None:
        self.on = on
        self.engine.dispose()  # the pooled connections go: the next ones are (un)capped


def daemon_for(tmp_path: Path, registry: Any, database_url: str) -> tuple[Runtime, Clock]:
    config = load_config(write_config(tmp_path, registry, database_url=database_url, watches=DAILY))
    clock = Clock()
    monitor = Monitor(metrics=Metrics(), poll_interval=timedelta(hours=6), started_at=START)
    return Runtime(service=make_service(config), clock=clock, monitor=monitor), clock


def row_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}


def mailed_studies(outbox: Path) -> list[str]:
    """The NCT ids named in the subjects of the messages in the outbox, one entry per message and study."""
    found = []
    for path in sorted(outbox.glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=email_policy.default)
        body = "".join(part.get_content() for part in message.walk() if part.get_content_type() == "text/plain")
        found += [nct for nct in ("NCT09000001", "NCT09000002") if f"{nct} · " in body]
    return found


def health(runtime: Runtime, clock: Clock) -> dict[str, Any]:
    assert runtime.monitor is not None
    return runtime.monitor.status(now=clock.now).as_json()


def test_a_full_sqlite_file_fails_the_poll_and_the_digest_whole_and_the_next_cycle_recovers(
    tmp_path: Path, registry: Any, own_study: Any, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "full.db"
    registry.put(own_study("study_NCT09000001_v1"))
    runtime, clock = daemon_for(tmp_path, registry, f"sqlite:///{path}")
    cap = PageCap(runtime.service.engine)
    outbox = tmp_path / "var" / "outbox"
    poll_job(runtime)  # the baseline
    registry.put(own_study("study_NCT09000001_v2"))

    runtime.service.engine.dispose()
    with sqlite3.connect(path) as connection:  # no free pages left by migrations that rebuilt tables
        connection.execute("VACUUM")
    cap.set(True)
    before = row_counts(path)
    clock.now += timedelta(hours=6)
    with caplog.at_level(logging.ERROR):
        poll_job(runtime)
    assert row_counts(path) == before, "nothing of the failed poll is stored"
    lines = [r.getMessage() for r in caplog.records if "database full: " in r.getMessage()]
    assert lines and all("\n" not in line for line in lines), caplog.text
    assert "Traceback" not in caplog.text
    status = health(runtime, clock)
    assert status["status"] == "degraded" and status["storage"]["database"].startswith("database full: ")

    cap.set(False)  # room again: the next cycle stores what the failed one could not
    clock.now += timedelta(hours=6)
    poll_job(runtime)
    assert health(runtime, clock)["status"] == "ok"
    stored = pending(runtime)
    assert stored >= 1, "the changes of NCT09000001's new version"

    clock.now = NEXT_MORNING
    digest_job(runtime)
    assert pending(runtime) == 0
    assert sorted(mailed_studies(outbox)) == ["NCT09000001"], "each change once"
    clock.now += timedelta(days=1)
    digest_job(runtime)
    assert sorted(mailed_studies(outbox)) == ["NCT09000001"], "and never twice"


def pending(runtime: Runtime) -> int:
    with db.transaction(runtime.service.engine) as session:
        return outbox.count_pending_notifications(session=session)


def deliveries(runtime: Runtime) -> list[Delivery]:
    with db.transaction(runtime.service.engine) as session:
        return list(session.exec(select(Delivery)))


def test_postgresqls_disk_full_is_a_database_full_error(postgres_url: str) -> None:
    engine = db.make_engine(postgres_url)
    statement = text(
        "DO $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'"
        " USING ERRCODE = 'disk_full'; END $$"
    )
    full = pytest.raises(db.DatabaseFull, match=r"^database full: .*No space left on device")
    with full, db.transaction(engine) as session:
        session.execute(statement)
    engine.dispose()


def test_an_unwritable_outbox_keeps_the_changes_pending_and_the_next_run_delivers(
    tmp_path: Path, registry: Any, own_study: Any, database_url: str, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    registry.put(own_study("study_NCT09000001_v1"))
    runtime, clock = daemon_for(tmp_path, registry, database_url)
    poll_job(runtime)
    registry.put(own_study("study_NCT09000001_v2"))
    outbox = tmp_path / "var" / "outbox"
    outbox.parent.mkdir(parents=True, exist_ok=True)
    outbox.write_text("a file where the folder should be: nothing can be written in it")
    clock.now += timedelta(hours=6)
    poll_job(runtime)
    clock.now = NEXT_MORNING
    digest_job(runtime)
    status = health(runtime, clock)
    assert status["status"] == "degraded" and status["storage"]["outbox"].startswith("outbox not writable: ")
    [waiting] = deliveries(runtime)
    assert waiting.status == "pending" and waiting.last_error.startswith("outbox not writable: "), "kept, with why"

    outbox.unlink()
    clock.now += timedelta(hours=1)  # past the retry's backoff
    digest_job(runtime)
    assert health(runtime, clock)["status"] == "ok"
    assert [delivery.status for delivery in deliveries(runtime)] == ["sent"]
    assert sorted(mailed_studies(outbox)) == ["NCT09000001"]
    digest_job(runtime)
    assert sorted(mailed_studies(outbox)) == ["NCT09000001"], "each change once"


def test_an_outbox_past_the_file_size_limit_keeps_the_change_pending(
    tmp_path: Path, registry: Any, own_study: Any, postgres_url: str
) -> None:
    """RLIMIT_FSIZE in the command's own process (PostgreSQL: no database file of ours to hit it)."""
    registry.put(own_study("study_NCT09000001_v1"))
    config = write_config(tmp_path, registry, database_url=postgres_url)
    trialwatch = [sys.executable, "-m", "watcher", "--config", str(config)]
    env = {**os.environ, "TRIALWATCH_DATABASE_URL": postgres_url}
    subprocess.run([*trialwatch, "poll"], check=True, capture_output=True, env=env, cwd=tmp_path)
    registry.put(own_study("study_NCT09000001_v2"))
    subprocess.run([*trialwatch, "poll", "--full"], check=True, capture_output=True, env=env, cwd=tmp_path)

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    limited = subprocess.run(
        [*trialwatch, "digest", "--now"], capture_output=True, text=True, env=env, cwd=tmp_path, preexec_fn=small_files
    )
    assert limited.returncode == 1, limited.stderr
    said = limited.stdout + limited.stderr
    assert "outbox full: " in said and "File too large" in said and "Traceback" not in said
    assert not list((tmp_path / "var" / "outbox").glob("*.eml"))
    done = subprocess.run([*trialwatch, "digest", "--now"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert mailed_studies(tmp_path / "var" / "outbox") == ["NCT09000001"] * 2, "one message per recipient"
