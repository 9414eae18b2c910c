"""Two `trialwatch run` processes on one database: SQLite refuses the second, PostgreSQL stands it by."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from tests.harness import WATCHES, posted, write_config
from tests.test_daemon import Daemon


def test_sqlite_second_daemon_refuses_naming_the_first(tmp_path: Path, registry: Any, own_study: Any):
    registry.put(own_study("study_NCT09000001_v1"))
    config = write_config(tmp_path, registry)
    first = Daemon(config)
    first.wait_for("daemon started")
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "--config", str(config), "run"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert f"held by process {first.process.pid}" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    poll = subprocess.run(
        [sys.executable, "-m", "watcher", "--config", str(config), "poll"], capture_output=True, text=True, timeout=60
    )
    assert poll.returncode == 2 and f"held by process {first.process.pid}" in poll.stderr
    assert first.stop(signal.SIGTERM) == 0


def test_postgres_only_the_leader_polls_a_standby_takes_over_and_nothing_is_sent_twice(
    tmp_path: Path, registry: Any, own_study: Any, postgres_url: str, smtp: Any
):
    registry.put(own_study("study_NCT09000001_v1"))
    watches = WATCHES.replace('digest = "daily"', 'digest = "immediate"')
    config = write_config(tmp_path, registry, database_url=postgres_url, smtp=smtp, watches=watches)
    config.write_text(config.read_text() + '\n[server]\nlisten = "127.0.0.1:0"\n')
    first = Daemon(config)
    first.wait_for("poll RCC CAR-T")  # the leader's baseline
    second = Daemon(config)
    second.wait_for("standing by")
    today = datetime.now(UTC).date().isoformat()  # the daemons run on the real clock
    registry.put(posted(own_study("study_NCT09000001_v2"), today))  # a change the next leader will find
    first.process.kill()
    first.process.wait(timeout=30)
    second.wait_for("acquired, this process leads")
    standing = list(second.log)
    assert not [line for line in standing if "poll RCC" in line], "the standby polled before it led"
    assert "incremental: 1 studies seen, 3 changes" in second.wait_for("poll RCC bispecifics")
    second.wait_for("delivered")
    assert {r.rcpt_tos[0] for r in smtp.wait_for(2)} == {"onc@example.org", "coordinator@example.org"}
    assert second.stop(signal.SIGTERM) == 0

    third = Daemon(config)  # a restart: the changes were delivered once, never again
    assert "registry data unchanged" in third.wait_for("poll RCC bispecifics")
    assert third.stop(signal.SIGTERM) == 0
    assert len(smtp.received) == 2


def test_postgres_a_stop_asked_for_as_the_standby_takes_over_is_honoured(
    tmp_path: Path, registry: Any, own_study: Any, postgres_url: str
):
    registry.put(own_study("study_NCT09000001_v1"))
    config = write_config(tmp_path, registry, database_url=postgres_url)
    first = Daemon(config)
    first.wait_for("daemon started")
    second = Daemon(config)
    second.wait_for("standing by")
    first.process.kill()
    first.process.wait(timeout=30)
    second.wait_for("acquired, this process leads")
    second.process.send_signal(signal.SIGTERM)  # at the moment of the takeover
    assert second.process.wait(timeout=60) == 0
    second.wait_for("daemon stopped")


def test_secrets_never_reach_logs_or_endpoints(tmp_path: Path, registry: Any, own_study: Any, postgres_url: str):
    """PostgreSQL here trusts any password: one in the URL exercises every place a URL is shown."""
    registry.put(own_study("study_NCT09000001_v1"))
    with_password = postgres_url.replace("postgres@", "postgres:db-s3cret@", 1)
    assert "db-s3cret" in with_password
    config = write_config(tmp_path, registry, database_url=with_password)
    config.write_text(config.read_text() + '\n[server]\nlisten = "127.0.0.1:0"\n')
    environment = {**os.environ, "TRIALWATCH_SMTP_USERNAME": "alice", "TRIALWATCH_SMTP_PASSWORD": "mail-s3cret"}
    daemon = Daemon(config, "--verbose", env=environment)
    url = daemon.wait_for("serving /healthz and /metrics on ").rsplit(" on ", 1)[1].strip()
    daemon.wait_for("poll RCC CAR-T")
    served = requests.get(f"{url}/healthz", timeout=5).text + requests.get(f"{url}/metrics", timeout=5).text
    assert daemon.stop(signal.SIGTERM) == 0
    daemon.wait_for("daemon stopped")
    check = subprocess.run(
        [sys.executable, "-m", "watcher", "--config", str(config), "check"],
        capture_output=True, text=True, timeout=60, env=environment,
    )  # fmt: skip
    shown = "".join(daemon.log) + served + check.stdout + check.stderr
    assert "postgres:***@" in shown  # the URL is shown, redacted
    assert "db-s3cret" not in shown and "mail-s3cret" not in shown
