"""`trialwatch run` as a real process: polls at start, delivers, stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness import write_config
from tests.servers import Fault
from watcher.store import db, repo


class Daemon:
    """A `trialwatch run` subprocess whose log lines can be awaited."""

    def __init__(
        self, config: Path, *options: str, env: dict[str, str] | None = None, command: str = "run",
        arguments: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        self.process = subprocess.Popen(
            [sys.executable, "-m", "watcher", "--config", str(config), *options, command, *arguments],
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no log line with {text!r} within {timeout}s; log:\n{''.join(self.log)}"
                ) from None
            self.log.append(line)
            if text in line:
                return line

    def stop(self, sig: int) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired as exc:  # the daemon's log says where it stayed
            self.process.kill()
            raise AssertionError("did not stop in 30 s; its log:\n" + "".join(self.lines.queue)) from exc
        finally:
            if self.process.poll() is None:
                self.process.kill()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_daemon_polls_at_start_and_stops_cleanly(tmp_path: Path, registry: Any, own_study: Any, sig: int):
    registry.put(own_study("study_NCT09000001_v1"))
    daemon = Daemon(write_config(tmp_path, registry))
    daemon.wait_for("daemon started")
    assert "baseline: 1 studies stored" in daemon.wait_for("poll RCC CAR-T")
    assert daemon.stop(sig) == 0
    daemon.wait_for("daemon stopped")
    assert (tmp_path / "var" / "trialwatch.db").exists()
    assert registry.request_count("/studies") >= 2


def test_daemon_with_bad_config_exits_with_one_line(tmp_path: Path):
    config = tmp_path / "trialwatch.toml"
    config.write_text('[clinicaltrials]\npoll_interval = "often"\n')
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "--config", str(config), "run"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {config}: [clinicaltrials]: key 'poll_interval': bad interval 'often': "
        "write a number and a unit, e.g. '6h', '30m', '1d'"
    )


def test_sighup_reloads_a_good_config_and_refuses_a_bad_one(tmp_path: Path, registry: Any, own_study: Any):
    registry.put(own_study("study_NCT09000001_v1"))
    config = write_config(tmp_path, registry)
    daemon = Daemon(config)
    daemon.wait_for("poll RCC CAR-T")
    good = config.read_text()
    config.write_text(good.replace("[[watch]]", "[[watch]]\nkeywrds = []", 1))
    daemon.process.send_signal(signal.SIGHUP)
    refused = daemon.wait_for("config reload refused")
    assert "keeping the running config" in refused and "unknown key 'keywrds'" in refused
    config.write_text(good.replace("max_attempts = 3", 'max_attempts = 3\npoll_interval = "2m"'))
    daemon.process.send_signal(signal.SIGHUP)
    assert "polling every 0:02:00" in daemon.wait_for("config reloaded")
    assert daemon.stop(signal.SIGTERM) == 0


def test_json_logs_one_object_per_line(tmp_path: Path, registry: Any, own_study: Any):
    registry.put(own_study("study_NCT09000001_v1"))
    daemon = Daemon(write_config(tmp_path, registry), "--log-format", "json")
    line = daemon.wait_for("poll RCC CAR-T")
    assert daemon.stop(signal.SIGTERM) == 0
    entry = json.loads(line)
    assert entry["level"] == "info" and entry["logger"] == "watcher.registry.pipeline"
    assert entry["message"].startswith("poll RCC CAR-T: baseline: 1 studies stored")
    for earlier in daemon.log:
        assert json.loads(earlier)["time"].endswith("+00:00")


def test_daemon_serves_health_and_metrics(tmp_path: Path, registry: Any, own_study: Any):
    registry.put(own_study("study_NCT09000001_v1"))
    config = write_config(tmp_path, registry)
    config.write_text(config.read_text() + '\n[server]\nlisten = "127.0.0.1:0"\n')
    daemon = Daemon(config)
    url = daemon.wait_for("serving /healthz and /metrics on ").rsplit(" on ", 1)[1].strip()
    daemon.wait_for("poll RCC CAR-T")  # logged as the poll ends; the monitor hears of it once the job ends
    deadline = time.monotonic() + 30
    while (health := requests.get(f"{url}/healthz", timeout=5)).json()["sources"]["RCC CAR-T"]["last_success"] is None:
        assert time.monotonic() < deadline, health.text
    metrics = requests.get(f"{url}/metrics", timeout=5).text
    assert daemon.stop(signal.SIGTERM) == 0
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["role"] == "leader"
    assert set(body["sources"]) == {"RCC bispecifics", "RCC CAR-T"}
    assert body["sources"]["RCC CAR-T"]["last_success"] is not None
    assert 'trialwatch_polls_total{result="ok",source="RCC CAR-T"} 1.0' in metrics


@pytest.mark.parametrize("moment", ["watch(es)", "daemon started", "poll RCC bispecifics"])
def test_a_stop_asked_for_at_any_moment_of_the_start_exits_cleanly(
    tmp_path: Path, registry: Any, own_study: Any, moment: str
):
    registry.put(own_study("study_NCT09000001_v1"))
    daemon = Daemon(write_config(tmp_path, registry))
    daemon.wait_for(moment)
    assert daemon.stop(signal.SIGTERM) == 0
    daemon.wait_for("daemon stopped")


def test_sigterm_during_a_long_retry_wait_stops_at_once_and_stores_nothing(
    tmp_path: Path, registry: Any, own_study: Any
):
    registry.put(own_study("study_NCT09000001_v1"))
    config = write_config(tmp_path, registry)
    config.write_text(config.read_text().replace("backoff_seconds = 0.01", "backoff_seconds = 600"))
    registry.fail_next(Fault.none(), Fault.status(503))  # /version answers; the first page fails
    daemon = Daemon(config)
    daemon.wait_for("retrying in")  # about to wait ten minutes before the next try
    daemon.process.send_signal(signal.SIGTERM)
    try:
        code = daemon.process.wait(timeout=30)  # well before the retry wait would have ended
    except subprocess.TimeoutExpired:
        daemon.process.kill()
        code = None
    assert code == 0, "".join(daemon.lines.queue)  # the daemon's log, to see where it stayed
    daemon.wait_for("nothing from it is stored")
    daemon.wait_for("daemon stopped")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'var' / 'trialwatch.db'}")
    with db.transaction(engine) as session:
        assert repo.count_studies(session=session, watch="RCC bispecifics") == 0
