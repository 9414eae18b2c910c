"""Benchmark of a watch's landscape (`make bench`, issue #21): figures, never assertions.

Two watches are seeded: one of 1,000 studies, one of 10,000 (each with its own stored version,
tests/landscape_data), 20,000 changes over them and 2,000 articles naming them. Timed against the
real app served by uvicorn on loopback, signed in (the client's round trip included, so each figure
is an upper bound of the server's time):
- `/watches/<1,000>/studies`: the first view (reads every record once, caches the facts), then
  warm, unfiltered and filtered; the target is 300 ms;
- the CSV and XLSX export of the 10,000 and the JSON API's first page; the target is 2 s;
- the server's own work on the same, in process, as CPU time (the fastest of a few runs): the
  figures to hold against the targets on a shared machine, where wall times swing with the load;
each beside its floor measured in the same run: the same rows read by one plain SQL query (no
facts, no rendering) for the page; for the exports, the same 10,000 × 23 cells of text written from
memory by the csv module, and by XlsxWriter alone. SQLite always; PostgreSQL too when
TRIALWATCH_TEST_POSTGRES_URL is set (a fresh database, dropped afterwards).
"""

from __future__ import annotations

import csv
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import insert, text

from tests.benchmarks.timeline import postgres_database
from tests.landscape_data import hold_many
from watcher.registry.landscape_export import COLUMNS
from watcher.store import db
from watcher.store.models import ChangeRow, FeedItemRow
from watcher.watch import WatchConfig

SMALL, LARGE = ("RCC bispecifics", 1_000), ("Kidney cancer", 10_000)
CHANGES, ARTICLES = 20_000, 2_000


def seed(engine: Any, now: datetime) -> None:
    started = time.perf_counter()
    hold_many(engine, SMALL[0], SMALL[1], now)
    hold_many(engine, LARGE[0], LARGE[1], now, first=SMALL[1])
    with db.transaction(engine) as session:
        session.execute(insert(ChangeRow), [
            {"watch": SMALL[0] if n % 2 else LARGE[0], "kind": "dates", "source": "clinicaltrials",
             "nct_id": f"NCT08{(n % 11_000):06d}", "title": "t", "summary": "s", "details": {},
             "detected_at": now - timedelta(minutes=n)}
            for n in range(CHANGES)
        ])  # fmt: skip
        session.execute(insert(FeedItemRow), [
            {"key": f"doi:10.1/{n}", "feed": "JCO", "title": f"Article {n}", "link": "https://journal.example/a",
             "nct_ids": [f"NCT08{(n * 7) % 11_000:06d}"], "first_seen_at": now}
            for n in range(ARTICLES)
        ])  # fmt: skip
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))
    print(f"  seeded {SMALL[1]:,} + {LARGE[1]:,} studies, {CHANGES:,} changes, {ARTICLES:,} articles "
          f"in {time.perf_counter() - started:.1f} s")  # fmt: skip


def timed(action: Callable[[], object], repeat: int = 7) -> float:
    """The median seconds of `repeat` runs."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def floor_query(engine: Any, watch: str) -> Callable[[], object]:
    query = text(
        "SELECT s.nct_id, s.title, s.status, s.phase, v.summary FROM study s JOIN watch_study w ON "
        "w.nct_id = s.nct_id LEFT JOIN study_version v ON v.id = s.version_id WHERE w.watch = :watch"
    )

    def run() -> object:
        with engine.connect() as connection:
            return connection.execute(query, {"watch": watch}).all()

    return run


def floor_csv(count: int) -> Callable[[], object]:
    rows = [tuple(f"cell {n} {i}" for i in range(len(COLUMNS))) for n in range(count)]

    def run() -> object:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerows(rows)
        return buffer.getvalue().encode()

    return run


def floor_xlsx(count: int, folder: str) -> Callable[[], object]:
    import xlsxwriter

    def run() -> object:
        workbook = xlsxwriter.Workbook(f"{folder}/floor.xlsx", {"constant_memory": True})
        sheet = workbook.add_worksheet()
        for n in range(count):
            for i in range(len(COLUMNS)):
                sheet.write_string(n, i, f"cell {i}")
        workbook.close()
        return None

    return run


def cpu(action: Callable[[], object], repeat: int = 5) -> float:
    """The least CPU seconds of `repeat` runs in this process (the machine's other load hardly moves it)."""
    runs = []
    for _ in range(repeat):
        started = time.process_time()
        action()
        runs.append(time.process_time() - started)
    return min(runs)


def server_work(engine: Any, now: datetime) -> None:
    """The server's own work, in process: the one query, the page's context and its template; the
    rows of the 10,000 written as CSV and as XLSX."""
    from watcher.registry.landscape import landscape
    from watcher.registry.landscape_export import csv_chunks, write_xlsx
    from watcher.registry.landscape_query import ParsedView, select_rows
    from watcher.web.render import templates
    from watcher.web.routes_landscape import page_context

    view, template = ParsedView(), templates.env.get_template("landscape.html")
    base = {"user": None, "csrf_field": lambda: "", "path": "/", "schedule": lambda digest: ""}

    def rows_of(name: str) -> list[Any]:
        with db.transaction(engine) as session:
            return landscape(session=session, watch=name, filters=view.filters, now=now)

    def page() -> object:
        every = rows_of(SMALL[0])
        context = page_context(SMALL[0], every, select_rows(every, view.filters), view, 1, now.date())
        return template.render({**base, **context})

    floor = cpu(floor_query(engine, SMALL[0]))
    seconds = cpu(page)
    print(f"  server work, CPU in process: {SMALL[1]:,}-study page {seconds * 1000:.0f} ms (target 300) "
          f"= {seconds / floor:.1f}x the plain query's {floor * 1000:.1f} ms")  # fmt: skip
    rows = rows_of(LARGE[0])
    query = cpu(lambda: rows_of(LARGE[0]), repeat=3)
    with tempfile.TemporaryDirectory() as folder:
        floors = {"CSV": cpu(floor_csv(LARGE[1]), repeat=3), "XLSX": cpu(floor_xlsx(LARGE[1], folder), repeat=3)}
        writes = {"CSV": cpu(lambda: b"".join(csv_chunks(rows)), repeat=3),
                  "XLSX": cpu(lambda: write_xlsx(rows, Path(folder) / "x.xlsx"), repeat=3)}  # fmt: skip
    for what in ("CSV", "XLSX"):
        total = query + writes[what]
        print(f"  server work, CPU in process: {LARGE[1]:,}-study {what} {total * 1000:.0f} ms (target 2,000): "
              f"the query {query * 1000:.0f} ms + writing {writes[what] * 1000:.0f} ms = "
              f"{writes[what] / floors[what]:.1f}x the floor's {floors[what] * 1000:.0f} ms")  # fmt: skip


def bench_landscape(database_url: str, label: str) -> None:
    from tests.web_support import close_site, make_site

    print(f"landscape on {label} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          "HTTP figures are wall time, client and server in one process):")  # fmt: skip
    now = datetime.now(UTC)
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    seed(engine, now)
    site = make_site(database_url, "http://127.0.0.1:9")
    try:
        site.provision(*(WatchConfig(name=name, conditions=["kidney cancer"], recipients=["onc@example.org"])
                         for name in (SMALL[0], LARGE[0])))  # fmt: skip
        client = site.signed_in("bench@example.org")
        token = site.token("api@example.org")

        def get(path: str, api: bool = False) -> Callable[[], object]:
            def run() -> object:
                headers = {"Authorization": f"Bearer {token}"} if api else {}
                response = client.get(path, headers=headers)
                assert response.status_code == 200, (path, response.status_code)
                return response.content

            return run

        small, large = (f"/watches/{quote(name, safe='')}/studies" for name in (SMALL[0], LARGE[0]))
        cold = timed(get(small), repeat=1)
        print(f"  {SMALL[1]:,} studies, first view (reads each record once, caches the facts): {cold * 1000:.0f} ms")
        floor = timed(floor_query(engine, SMALL[0]))
        print(f"  floor: the same rows by one plain SQL query: {floor * 1000:.1f} ms")
        for what, path in (("page", small), ("page, sorted by sponsor, descending", small + "?sort=-sponsor"),
                           ("page, filtered (2 statuses, phase, words)",
                            small + "?status=RECRUITING&status=COMPLETED&phase=PHASE2&q=drug"),
                           ("page 10 of 10", small + "?page=10")):  # fmt: skip
            seconds = timed(get(path))
            print(f"  {what}: {seconds * 1000:.0f} ms (target 300) = {seconds / floor:.1f}x the floor")
        get(large)()  # caches the 10,000's facts
        with tempfile.TemporaryDirectory() as folder:
            floors = {"CSV": timed(floor_csv(LARGE[1])), "XLSX": timed(floor_xlsx(LARGE[1], folder), repeat=3)}
        print(f"  floors: {LARGE[1]:,} x {len(COLUMNS)} cells of text written by the csv module "
              f"{floors['CSV'] * 1000:.0f} ms, by XlsxWriter {floors['XLSX'] * 1000:.0f} ms")  # fmt: skip
        for what, path in (("CSV", large + ".csv"), ("XLSX", large + ".xlsx")):
            seconds, floor = timed(get(path), repeat=3), floors[what]
            print(f"  {LARGE[1]:,} studies, {what} export: {seconds * 1000:.0f} ms (target 2,000) "
                  f"= {seconds / floor:.1f}x the floor")  # fmt: skip
        api = f"/api/v1/watches/{quote(LARGE[0], safe='')}/studies?limit=500"
        print(f"  {LARGE[1]:,} studies, API first page of 500: {timed(get(api, api=True), repeat=3) * 1000:.0f} ms")
        server_work(engine, now)
    finally:
        close_site(site)
        engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        bench_landscape(f"sqlite:///{folder}/bench.db", "SQLite")
    with postgres_database() as url:
        if url is None:
            print("landscape on PostgreSQL: TRIALWATCH_TEST_POSTGRES_URL not set, skipped")
        else:
            bench_landscape(url, "PostgreSQL")


if __name__ == "__main__":
    main()
