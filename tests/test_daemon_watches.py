"""The daemon picks up watches created, edited and archived in the database (the browser, the API)
with no signal: the watches job, run as the scheduler runs it, on both databases; and a running
`trialwatch run` polling a new web watch's baseline within a minute."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness import write_config
from tests.test_daemon import Daemon
from tests.test_watches_cli import archive, create, update, web_watch
from watcher.cli.shared import make_service
from watcher.config import load_config
from watcher.daemon.health import Metrics, Monitor
from watcher.daemon.scheduler import Runtime, build_scheduler
from watcher.store import db, repo
from watcher.store import watches as stored

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


TAKEN = '\n[[watch]]\nname = "RCC vaccines"\nconditions = ["kidney cancer"]\nrecipients = ["a@example.org"]\n'


def test_sighup_provisions_the_file_and_refuses_a_name_taken_in_the_browser(
    tmp_path: Path, registry: Any, own_study: Any
):
    registry.put(own_study("study_NCT09000001_v1"))
    config = write_config(tmp_path, registry)
    daemon = Daemon(config)
    daemon.wait_for("poll RCC CAR-T")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'var' / 'trialwatch.db'}")
    create(engine, web_watch())
    good = config.read_text()
    config.write_text(good + TAKEN)
    daemon.process.send_signal(signal.SIGHUP)
    refused = daemon.wait_for("config reload refused")
    assert f"{config}: watch 'RCC vaccines': the name is taken by a watch created in the browser" in refused
    config.write_text(good.replace('name = "RCC CAR-T"', 'name = "RCC CAR-T cells"'))
    daemon.process.send_signal(signal.SIGHUP)
    assert "'RCC CAR-T cells', 'RCC CAR-T'" in daemon.wait_for("watches provisioned into the database")
    assert "3 watch(es)" in daemon.wait_for("config reloaded")
    assert daemon.stop(signal.SIGTERM) == 0
    with db.transaction(engine) as session:
        names = {
            row.name: row.archived_at is not None for row in stored.watch_rows(session=session, include_archived=True)
        }
    assert names == {"RCC bispecifics": False, "RCC CAR-T cells": False, "RCC CAR-T": True, "RCC vaccines": False}


def test_run_with_a_config_watch_taking_a_web_watchs_name_exits_with_one_line(
    tmp_path: Path, registry: Any, own_study: Any
):
    config = write_config(tmp_path, registry)
    engine = db.make_engine(f"sqlite:///{tmp_path / 'var' / 'trialwatch.db'}")
    db.upgrade(engine)
    create(engine, web_watch())
    config.write_text(config.read_text() + TAKEN)
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "--config", str(config), "run"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {config}: watch 'RCC vaccines': the name is taken by a watch created in the browser; "
        "rename one of them"
    )


def test_web_serves_the_app_alone_and_polls_nothing(tmp_path: Path, registry: Any):
    pytest.importorskip("watcher.web.app", reason="the web app (watcher/web/app.py) is not in this build yet")
    config = write_config(tmp_path, registry)
    server = Daemon(config, command="web", arguments=("--listen", "127.0.0.1:0"))
    url = server.wait_for("serving the web app on ").split(" on ", 1)[1].split("/ ", 1)[0]
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{url}/login", timeout=5).status_code == 200
    assert server.stop(signal.SIGTERM) == 0
    assert registry.request_count() == 0, "no polling"
    engine = db.make_engine(f"sqlite:///{tmp_path / 'var' / 'trialwatch.db'}")
    with db.transaction(engine) as session:  # the file's watches provisioned, for the browser to show
        assert [(row.name, row.source) for row in stored.watch_rows(session=session)] == [
            ("RCC CAR-T", "config"), ("RCC bispecifics", "config")]  # fmt: skip
