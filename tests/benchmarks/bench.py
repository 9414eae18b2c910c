"""Benchmarks (`make bench`): figures, never assertions. Run against the local test servers.

- diff: the real 1.5 MB record (437 sites) against itself and with one site removed;
- a baseline poll of N synthetic studies (our own fixture, renumbered) through the local registry,
  1,000 per page: wall time and peak Python memory (tracemalloc) — memory should track a page,
  not N;
- a no-change cycle (one /version request);
- parsing the real Nature feed (75 items) and keying its items.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pytest_httpserver import HTTPServer

from tests.servers import FakeRegistry
from watcher.config import load_config
from watcher.mail.transport import FileTransport
from watcher.registry.client import CtgovClient
from watcher.registry.diff import diff_records
from watcher.service import Service
from watcher.store import db

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("TRIALWATCH_FIXTURES") or REPO.parent / "shared" / "fixtures")
OWN = REPO / "tests" / "data" / "study_NCT09000001_v1.json"


def timed(action: Callable[[], object], repeat: int = 5) -> str:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return f"median {statistics.median(runs) * 1000:.1f} ms over {repeat} runs (min {min(runs) * 1000:.1f} ms)"


def bench_diff() -> None:
    path = FIXTURES / "ctgov" / "study_NCT02513394_with_results_large.json"
    if not path.exists():
        print("diff: real fixtures absent, skipped")
        return
    record = json.loads(path.read_text())
    shorter = copy.deepcopy(record)
    shorter["protocolSection"]["contactsLocationsModule"]["locations"].pop(100)
    print(f"diff 1.5 MB record with itself:        {timed(lambda: diff_records(record, record))}")
    print(f"diff 1.5 MB record, one site removed:  {timed(lambda: diff_records(record, shorter))}")


def bench_poll(count: int) -> None:
    base = json.loads(OWN.read_text())
    with tempfile.TemporaryDirectory() as folder, HTTPServer(host="127.0.0.1", port=0) as server:
        registry = FakeRegistry(server)
        for n in range(count):
            study = copy.deepcopy(base)
            study["protocolSection"]["identificationModule"]["nctId"] = f"NCT08{n:06d}"
            registry.studies[f"NCT08{n:06d}"] = study
        config_path = Path(folder) / "trialwatch.toml"
        config_path.write_text(
            f'[database]\nurl = "sqlite:///{folder}/tw.db"\n[clinicaltrials]\nbase_url = "{registry.base_url}"\n'
            'requests_per_second = 0\n[[watch]]\nname = "all"\nterms = ["x"]\nrecipients = ["a@example.org"]\n'
        )
        config = load_config(config_path)
        engine = db.make_engine(config.database.url)
        db.upgrade(engine)
        service = Service(config=config, engine=engine, client=CtgovClient(config.clinicaltrials),
                          transport=FileTransport(Path(folder)))  # fmt: skip
        now = datetime.now(UTC)
        tracemalloc.start()
        started = time.perf_counter()
        report = service.poll(now, feeds=False)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        line = report.polls[0].line()
        print(f"baseline poll of {count} studies: {seconds:.2f} s, peak traced memory {peak / 1e6:.1f} MB: {line}")
        before = registry.request_count()
        started = time.perf_counter()
        service.poll(now, feeds=False)
        print(f"no-change cycle: {(time.perf_counter() - started) * 1000:.1f} ms, "
              f"{registry.request_count() - before} request(s)")  # fmt: skip


def bench_feed() -> None:
    path = FIXTURES / "feeds" / "nature_rss1_rdf_2024-07-18T0012Z.rss"
    if not path.exists():
        print("feed: real fixtures absent, skipped")
        return
    from watcher.literature.fetch import parse_feed

    body = path.read_bytes()
    print(f"parse + key the Nature feed (75 items, {len(body) / 1e3:.0f} KB): "
          f"{timed(lambda: parse_feed(body=body, url='https://www.nature.com/nature.rss'))}")  # fmt: skip


if __name__ == "__main__":
    from tests.benchmarks import timeline

    if sys.argv[1:] == ["timeline"]:  # only the browser pages: python -m tests.benchmarks.bench timeline
        timeline.main(FIXTURES)
        sys.exit(0)
    sizes = [int(arg) for arg in sys.argv[1:]] or [1000, 5000]
    bench_diff()
    for size in sizes:
        bench_poll(size)
    bench_feed()
    timeline.main(FIXTURES)
