"""cProfile of one poll, in-process, against the benchmark registry (its own process):
`python -m tests.benchmarks.profile_poll 3000 [first|full|update]` prints the functions that took the
most time. For finding where a poll spends it; `make bench` gives the figures."""

from __future__ import annotations

import cProfile
import pstats
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from tests.benchmarks.bench import Server, states_in_child, write_config
from watcher.cli.shared import make_service
from watcher.config import load_config


def main(count: int, case: str) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        states_in_child(folder, count)
        server = Server(folder)
        try:
            server.serve("base")
            service = make_service(load_config(write_config(folder, server.base_url)))
            profile = cProfile.Profile()
            if case in ("full", "update"):
                service.poll(datetime.now(UTC), feeds=False)
                server.serve("refreshed")
            if case == "update":
                service.poll(datetime.now(UTC), feeds=False, force_full=True)
                server.serve("updated")
            profile.enable()
            report = service.poll(datetime.now(UTC), feeds=False, force_full=case == "full")
            profile.disable()
            print(report.lines())
            pstats.Stats(profile).sort_stats(sys.argv[3] if len(sys.argv) > 3 else "tottime").print_stats(30)
        finally:
            server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "first")
