"""`trialwatch run` as a real process: polls at start, delivers, stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.test_end_to_end import write_config


class Daemon:
    """A `trialwatch run` subprocess whose log lines can be awaited."""

    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "watcher", "--config", str(config), "run"],
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
