"""The daemon picks up watches created, edited and archived in the database (the browser, the API)
with no signal: the watches job, run as the scheduler runs it, on both databases; and a running
`trialwatch run` polling a new web watch's baseline within a minute."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.harness import write_config
from tests.test_daemon import Daemon
from tests.test_watches_cli import archive, create, update, web_watch
from watcher.cli.shared import make_service
from watcher.config import load_config
from watcher.daemon.health import Metrics, Monitor
from watcher.daemon.scheduler import Runtime, build_scheduler
from watcher.store import db, repo

START = datetime(2026, 11, 21, 10, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def baseline_of(engine: Any, name: str) -> datetime | None:
    with db.transaction(engine) as session:
        state = repo.watch_states(session=session).get(name)
    return state.baseline_at if state else None


def test_the_watches_job_follows_the_database(tmp_path: Path, registry: Any, own_study: Any, database_url: str):
    registry.put(own_study("study_NCT09000001_v1"))
    config = load_config(write_config(tmp_path, registry, database_url=database_url))
    service = make_service(config, watches="provisioned")
    clock, engine = Clock(), service.engine
    monitor = Monitor(metrics=Metrics(), poll_interval=timedelta(hours=6), started_at=START)
    runtime = Runtime(service=service, clock=clock, monitor=monitor)
    job = build_scheduler(runtime).get_job("watches")

    def run_job() -> list[str]:
        job.func(*job.args)
        return [watch.name for watch in runtime.service.config.watch]

    assert run_job() == ["RCC bispecifics", "RCC CAR-T"] and runtime.service is service, "nothing changed"

    create(engine, web_watch())
    assert run_job() == ["RCC bispecifics", "RCC CAR-T", "RCC vaccines"]
    assert baseline_of(engine, "RCC vaccines") == START, "a new watch is polled at once: its baseline"
    assert baseline_of(engine, "RCC bispecifics") is None, "the others wait for their own schedule"
    assert "RCC vaccines" in monitor.status(now=START).sources

    clock.now += timedelta(minutes=1)
    update(engine, web_watch(recipients=["pi@example.org"]))
    run_job()
    assert runtime.service.config.watch_named("RCC vaccines").recipients == ["pi@example.org"]
    assert baseline_of(engine, "RCC vaccines") == START, "new recipients, same query: no new baseline"

    clock.now += timedelta(minutes=1)
    update(engine, web_watch(terms=["neoantigen"]))
    run_job()
    assert baseline_of(engine, "RCC vaccines") == clock.now, "new words: a new baseline, polled at once"

    archive(engine)
    assert run_job() == ["RCC bispecifics", "RCC CAR-T"], "archived: no longer polled or mailed"
    with db.transaction(engine) as session:
        assert repo.count_studies(session=session, watch="RCC vaccines") == 1, "what it found stays"


def test_a_running_leader_polls_a_new_web_watch_within_a_minute(
    tmp_path: Path, registry: Any, own_study: Any, postgres_url: str
):
    registry.put(own_study("study_NCT09000001_v1"))
    daemon = Daemon(write_config(tmp_path, registry, database_url=postgres_url))
    daemon.wait_for("poll RCC CAR-T")
    engine = db.make_engine(postgres_url)
    create(engine, web_watch())
    assert "new 'RCC vaccines'" in daemon.wait_for("watches changed in the database", timeout=60)
    assert "baseline: 1 studies stored" in daemon.wait_for("poll RCC vaccines", timeout=60)
    assert daemon.stop(signal.SIGTERM) == 0
    engine.dispose()
