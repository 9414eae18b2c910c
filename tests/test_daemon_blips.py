"""A replica outlives a lost leader lock or a database blip: it stops polling and mailing, keeps
serving HTTP, stands by and leads again. The connections of a running `trialwatch run` are killed
on the real PostgreSQL (pg_terminate_backend); on SQLite its lock file is deleted."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.harness import write_config
from tests.test_daemon import Daemon
from tests.test_lock import take_over
from watcher.daemon.health import HealthServer, Metrics, Monitor
from watcher.daemon.lock import AdvisoryLock, wait_for_leadership

TERMINATE_OTHERS = text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def terminate_sessions(url: str) -> int:
    """Kill every other session on the test database, as a failover or an admin would."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return int(connection.execute(TERMINATE_OTHERS).scalar_one())
    finally:
        engine.dispose()


def serving_daemon(
    tmp_path: Path, registry: Any, own_study: Any, database_url: str | None = None
) -> tuple[Daemon, str]:
    registry.put(own_study("study_NCT09000001_v1"))
    config = write_config(tmp_path, registry, database_url=database_url)
    config.write_text(config.read_text() + '\n[server]\nlisten = "127.0.0.1:0"\n')
    daemon = Daemon(config)
    url = daemon.wait_for("serving /healthz and /metrics on ").rsplit(" on ", 1)[1].strip()
    daemon.wait_for("poll RCC CAR-T")
    return daemon, url


@pytest.fixture
def cleanup() -> Iterator[list[Callable[[], object]]]:
    undo: list[Callable[[], object]] = []
    yield undo
    for action in undo:
        action()


def test_postgres_a_leader_whose_connections_are_killed_keeps_serving_and_leads_again(
    tmp_path: Path, registry: Any, own_study: Any, postgres_url: str, cleanup: list[Callable[[], object]]
):
    daemon, url = serving_daemon(tmp_path, registry, own_study, postgres_url)
    cleanup.append(daemon.process.kill)
    assert terminate_sessions(postgres_url) >= 1
    lost = daemon.wait_for("leadership lost")
    assert "polling and mail stop" in lost
    assert daemon.process.poll() is None, "the process keeps running"
    assert "role" in requests.get(f"{url}/healthz", timeout=5).json(), "its HTTP server keeps answering"
    daemon.wait_for("standing by to take the leader lock again")
    daemon.wait_for("acquired, this process leads")
    assert "poll RCC CAR-T: " in daemon.wait_for("poll RCC CAR-T"), "it polls again as the leader"
    health = requests.get(f"{url}/healthz", timeout=5)
    assert (health.status_code, health.json()["role"]) == (200, "leader")
    assert daemon.stop(signal.SIGTERM) == 0
    daemon.wait_for("daemon stopped")


def test_postgres_a_replica_that_lost_the_lock_stands_by_serving_and_stops_promptly(
    tmp_path: Path,
    registry: Any,
    own_study: Any,
    postgres_url: str,
    cleanup: list[Callable[[], object]],
    record_property: Callable[[str, object], None],
):
    daemon, url = serving_daemon(tmp_path, registry, own_study, postgres_url)
    cleanup.append(daemon.process.kill)
    other = AdvisoryLock(engine_url=postgres_url)  # another replica, quicker to take the lock
    cleanup.append(other.release)
    assert terminate_sessions(postgres_url) >= 1
    take_over(other)
    daemon.wait_for("leadership lost")
    daemon.wait_for("held by")  # standing by behind the other replica
    health = requests.get(f"{url}/healthz", timeout=5)
    assert (health.status_code, health.json()["role"]) == (200, "standby")
    assert "trialwatch_leader 0.0" in requests.get(f"{url}/metrics", timeout=5).text
    started = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=30) == 0
    record_property("stop_seconds_in_standby", round(time.monotonic() - started, 3))
    assert not [line for line in daemon.log if "acquired, this process leads" in line]


def test_sqlite_a_deleted_lock_file_means_standing_down_then_leading_again(
    tmp_path: Path, registry: Any, own_study: Any, cleanup: list[Callable[[], object]]
):
    daemon, url = serving_daemon(tmp_path, registry, own_study)
    cleanup.append(daemon.process.kill)
    lock_file = tmp_path / "var" / "trialwatch.db.lock"
    lock_file.unlink()
    daemon.wait_for("leadership lost")
    daemon.wait_for("acquired, this process leads")
    daemon.wait_for("poll RCC CAR-T")
    assert lock_file.read_text().split()[0] == str(daemon.process.pid), "a new lock file, held again"
    assert requests.get(f"{url}/healthz", timeout=5).json()["role"] == "leader"
    assert daemon.stop(signal.SIGTERM) == 0


def test_health_says_when_the_database_cannot_be_reached():
    """A standby whose database does not answer keeps trying and says so on /healthz (503)."""
    start = datetime(2026, 11, 21, 10, tzinfo=UTC)
    monitor = Monitor(metrics=Metrics(), poll_interval=timedelta(hours=6), started_at=start)
    monitor.set_leader(leader=False, at=start)
    stop, tries = threading.Event(), []

    class Counting(AdvisoryLock):
        def try_acquire(self) -> bool:
            tries.append(1)
            if len(tries) == 2:
                stop.set()
            return super().try_acquire()

    lock = Counting(engine_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert not wait_for_leadership(lock, poll_seconds=0.01, stop_event=stop, on_database=monitor.set_database_error)
    with HealthServer(
        listen="127.0.0.1:0", metrics=monitor.metrics, health=lambda: monitor.status(now=start)
    ) as server:
        response = requests.get(f"{server.url}/healthz", timeout=5)
        assert response.status_code == 503
        body = response.json()
        assert (body["status"], body["role"]) == ("failing", "standby")
        assert body["database"].startswith("unreachable: PostgreSQL advisory lock")
        assert "cannot try the lock" in body["database"]
        monitor.set_database_error(None)
        assert "database" not in requests.get(f"{server.url}/healthz", timeout=5).json()


def test_a_replica_whose_database_does_not_answer_serves_and_says_so(
    tmp_path: Path, registry: Any, cleanup: list[Callable[[], object]]
):
    """Started while PostgreSQL is down (nothing listens on port 1): it stands by, keeps trying,
    /healthz answers 503 naming the database, and SIGTERM still stops it with 0."""
    config = write_config(tmp_path, registry, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    config.write_text(config.read_text() + '\n[server]\nlisten = "127.0.0.1:0"\n')
    daemon = Daemon(config)
    cleanup.append(daemon.process.kill)
    url = daemon.wait_for("serving /healthz and /metrics on ").rsplit(" on ", 1)[1].strip()
    assert "trying again in" in daemon.wait_for("cannot try the lock")
    health = requests.get(f"{url}/healthz", timeout=5)
    assert health.status_code == 503
    assert health.json()["role"] == "standby" and health.json()["database"].startswith("unreachable: ")
    assert daemon.stop(signal.SIGTERM) == 0
    assert registry.request_count() == 0


def test_a_first_start_with_no_user_logs_the_setup_link(
    tmp_path: Path, registry: Any, own_study: Any, cleanup: list[Callable[[], object]]
):
    pytest.importorskip("watcher.store.people", reason="user accounts (watcher/store/people.py) are not in this build")
    daemon, url = serving_daemon(tmp_path, registry, own_study)
    cleanup.append(daemon.process.kill)
    links = [line for line in daemon.log if "to create the first admin (valid 24 h)" in line]
    assert len(links) == 1
    found = re.search(r"open http://127\.0\.0\.1:\d+/setup/(\S+) to create", links[0])  # public_url: http://<listen>
    assert found, links[0]
    token = found.group(1)
    assert requests.get(f"{url}/setup/{token}", timeout=5).status_code == 200
    assert daemon.stop(signal.SIGTERM) == 0
