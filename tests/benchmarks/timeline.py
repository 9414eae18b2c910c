"""Benchmark of the browser's timeline and study pages (`make bench`): figures, never assertions.

A database is seeded with 10,000 studies and 100,000 changes (five watches, every kind, a minute
apart) and the real 1.5 MB record NCT02513394 (437 sites) with 20 stored versions; then the pages
are requested from the real app served by uvicorn on loopback, signed in, and timed: `/changes`
(first page), a page deep in the cursor, a filtered page, `/studies/NCT02513394` (its first view,
which computes and caches the versions' changes, then warm). SQLite always; PostgreSQL too when
TRIALWATCH_TEST_POSTGRES_URL is set (a fresh database, dropped afterwards).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from tests.timeline_data import T0, change_rows, insert_changes, insert_studies, store_versions
from watcher.store import db
from watcher.store.timeline import Cursor

STUDIES, CHANGES, VERSIONS = 10_000, 100_000, 20
WATCHES = ("RCC bispecifics", "RCC CAR-T", "After checkpoint inhibitors", "Bladder", "Prostate")
BIG = "study_NCT02513394_with_results_large.json"


def seed(engine: Any, fixtures: Path) -> None:
    small = json.loads((Path(__file__).resolve().parents[1] / "data" / "study_NCT09000001_v1.json").read_text())
    started = time.perf_counter()
    ids = insert_studies(engine, small, STUDIES)
    insert_changes(engine, change_rows(CHANGES, watches=WATCHES, nct_ids=ids))
    big = fixtures / "ctgov" / BIG
    if big.exists():
        store_versions(engine, json.loads(big.read_text()), VERSIONS)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))  # as autovacuum would soon after a bulk load (planner statistics)
    print(f"  seeded {STUDIES:,} studies, {CHANGES:,} changes, {VERSIONS} versions of NCT02513394 "
          f"in {time.perf_counter() - started:.1f} s")  # fmt: skip


def timed(action: Callable[[], object], repeat: int = 9) -> str:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return f"median {statistics.median(runs) * 1000:6.1f} ms (min {min(runs) * 1000:.1f}, max {max(runs) * 1000:.1f})"


@contextmanager
def postgres_database() -> Iterator[str | None]:
    base = os.environ.get("TRIALWATCH_TEST_POSTGRES_URL")
    if not base:
        yield None
        return
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(base)
    name = f"trialwatch_bench_{uuid.uuid4().hex[:12]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_pages(database_url: str, label: str, fixtures: Path) -> None:
    from tests.web_support import close_site, make_site

    print(f"timeline pages on {label}:")
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    seed(engine, fixtures)
    engine.dispose()
    site = make_site(database_url, "http://127.0.0.1:9")
    try:
        client = site.signed_in("bench@example.org")

        def get(path: str) -> Callable[[], object]:
            def run() -> object:
                response = client.get(path)
                assert response.status_code == 200, (path, response.status_code)
                return response

            return run

        first = client.get("/changes")
        cursor = _deep_cursor()
        print(f"  /changes first page:               {timed(get('/changes'))}  ({len(first.content) / 1e3:.0f} KB)")
        print(f"  /changes 1,000 pages deep (cursor): {timed(get('/changes?cursor=' + cursor))}")
        filtered = "/changes?watch=RCC+CAR-T&kind=dates&kind=status&q=medi5752"
        print(f"  /changes filtered (watch, 2 kinds, q): {timed(get(filtered))}")
        print(f"  /changes?nct_id=NCT07000042:        {timed(get('/changes?nct_id=NCT07000042'))}")
        rare = "/changes?q=nowhere+to+be+found"  # the worst case: words in no row scan every title and summary
        print(f"  /changes?q=<words in no row>:       {timed(get(rare), repeat=3)}")
        if (fixtures / "ctgov" / BIG).exists():
            started = time.perf_counter()
            page = client.get("/studies/NCT02513394")
            cold = (time.perf_counter() - started) * 1000
            print(f"  /studies/NCT02513394 first view (computes and caches 19 diffs): {cold:.0f} ms")
            print(f"  /studies/NCT02513394 (cached):      {timed(get('/studies/NCT02513394'))}  "
                  f"({len(page.content) / 1e3:.0f} KB)")  # fmt: skip
    finally:
        close_site(site)


def _deep_cursor() -> str:
    """The cursor ending page 1,000 (50,000 changes deep): change n+1 was detected n minutes after T0."""
    return Cursor(detected_at=T0 + timedelta(minutes=CHANGES - 50_000), id=CHANGES - 50_000).encode()


def main(fixtures: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        bench_pages(f"sqlite:///{folder}/bench.db", "SQLite", fixtures)
    with postgres_database() as url:
        if url is None:
            print("timeline pages on PostgreSQL: TRIALWATCH_TEST_POSTGRES_URL not set, skipped")
        else:
            bench_pages(url, "PostgreSQL", fixtures)
