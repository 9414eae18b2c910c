"""`make bench`, Crossref (issue #20): a window of 5,000 works (5 pages of 1,000, built from the real
JCO meeting abstract of ../shared/fixtures/crossref and our own RCC ones, renumbered) polled,
parsed and matched against three watches (`poll_crossref` into a fresh SQLite file whose journal
took an empty baseline), beside a floor that only downloads and JSON-parses the same pages with a
plain `requests` session. Pages are pre-built and served from a thread on loopback; both sides
read the same bytes. Each side the fastest of REPEAT runs. Figures, never assertions.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

WORKS, PAGES, ISSN = 5000, 5, "1527-7755"
NOW = datetime(2026, 11, 22, 10, tzinfo=UTC)


RCC_SHARE = 20  # one work in 20 is about kidney cancer (the rest: a JCO supplement's other abstracts)


def build_pages(fixtures: Path, own: Path) -> list[bytes]:
    """5 pages of 1,000 works, renumbered (unique DOIs): one in RCC_SHARE is one of our own RCC
    works (most name a trial or match a watch), the others the real HER2 meeting abstract (its
    JATS text, 3 kB) or our own non-matching JCO article, alternately."""
    own_works = json.loads((own / "readouts_rcc.json").read_text())["crossref"]
    rcc = [work for name, work in own_works.items() if name != "jco_article_not_matching"]
    real = fixtures / "crossref" / "crossref_item_jco_asco2021_suppl_abstract_4068.json"
    other = [own_works["jco_article_not_matching"]] + ([json.loads(real.read_text())] if real.exists() else [])
    pages = []
    size = WORKS // PAGES
    for page in range(PAGES):
        items = []
        for number in range(page * size, (page + 1) * size):
            pool = rcc if number % RCC_SHARE == 0 else other
            work = copy.deepcopy(pool[(number // RCC_SHARE) % len(pool)])
            work["DOI"] = f"10.1200/jco.2026.44.16_suppl.{number}"
            work["page"] = f"{number}-{number}"
            items.append(work)
        message = {"total-results": WORKS, "items": items, "items-per-page": size, "next-cursor": f"c{page + 1}"}
        pages.append(json.dumps({"status": "ok", "message-type": "work-list", "message": message}).encode())
    return pages


def serve(pages: list[bytes]) -> ThreadingHTTPServer:
    empty = json.dumps({"status": "ok", "message": {"items": [], "next-cursor": "c0"}}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            query = parse_qs(urlsplit(self.path).query)
            cursor = query.get("cursor", ["*"])[0]
            index = 0 if cursor == "*" else int(cursor[1:])
            in_window = "until-created-date:2026-11-22" in query.get("filter", [""])[0]
            body = pages[index] if in_window and index < len(pages) else empty
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def floor(base_url: str) -> float:
    started = time.perf_counter()
    works, cursor = 0, "*"
    with requests.Session() as session:
        for _ in range(PAGES + 1):
            params = {"filter": "from-created-date:2026-11-15,until-created-date:2026-11-22", "rows": "1000",
                      "cursor": cursor}  # fmt: skip
            response = session.get(f"{base_url}/journals/{ISSN}/works", params=params, timeout=60)
            response.raise_for_status()
            message = json.loads(response.content)["message"]
            works += len(message["items"])
            if len(message["items"]) < 1000:
                break
            cursor = message["next-cursor"]
    assert works == WORKS
    return time.perf_counter() - started


def prepared_database(folder: Path, base_url: str) -> tuple[Path, Any]:
    """A migrated SQLite file whose journal took its (empty) baseline a day before, and the config."""
    from watcher.config import load_config
    from watcher.literature.crossref import CrossrefClient
    from watcher.literature.crossref_pipeline import poll_crossref
    from watcher.store import db

    shipped = (Path(__file__).resolve().parents[2] / "config" / "trialwatch.toml").read_text()
    text = shipped.replace('url = "sqlite:///../var/trialwatch.db"', f'url = "sqlite:///{folder / "tw.db"}"')
    text = text.replace("[crossref]\nenabled = true", f'[crossref]\nenabled = true\nbase_url = "{base_url}"')
    text = text.replace("requests_per_second = 1 ", "requests_per_second = 50 ")
    (folder / "trialwatch.toml").write_text(text)
    config = load_config(folder / "trialwatch.toml")
    engine = db.make_engine(config.database.url)
    db.upgrade(engine)
    client = CrossrefClient(config.crossref)
    report = poll_crossref(engine=engine, client=client, config=config, issn=ISSN, now=NOW.replace(day=15))
    assert report.ok and report.status == "baseline", report.line()
    engine.dispose()
    return folder / "tw.db", config


def trialwatch(database: Path, config: Any, copy_to: Path) -> tuple[float, str]:
    from watcher.literature.crossref import CrossrefClient
    from watcher.literature.crossref_pipeline import poll_crossref
    from watcher.store import db

    shutil.copy(database, copy_to)
    config = config.model_copy(update={"database": config.database.model_copy(update={"url": f"sqlite:///{copy_to}"})})
    engine = db.make_engine(config.database.url)
    started = time.perf_counter()
    report = poll_crossref(engine=engine, client=CrossrefClient(config.crossref), config=config, issn=ISSN, now=NOW)
    seconds = time.perf_counter() - started
    engine.dispose()
    assert report.ok and report.found == WORKS, report.line()
    return seconds, report.line()


def main(fixtures: Path, own: Path, repeat: int = 3) -> None:
    pages = build_pages(fixtures, own)
    server = serve(pages)
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with tempfile.TemporaryDirectory() as folder:
            database, config = prepared_database(Path(folder), base_url)
            floor(base_url)  # warm
            floors = [floor(base_url) for _ in range(repeat)]
            runs = [trialwatch(database, config, Path(folder) / f"run{n}.db") for n in range(repeat)]
    finally:
        server.shutdown()
    best_floor, (best, line) = min(floors), min(runs)
    megabytes = sum(len(page) for page in pages) / 1e6
    print(f"Crossref window, {WORKS:,} works in {PAGES} pages ({megabytes:.1f} MB), 3 watches, "
          f"{date.today()}:")  # fmt: skip
    print(f"  floor (download + JSON parse): {best_floor:5.2f} s")
    print(f"  poll, parse, match, store:     {best:5.2f} s = {best / best_floor:4.2f}x the floor")
    print(f"  ({line})")


if __name__ == "__main__":
    import os

    repo = Path(__file__).resolve().parents[2]
    main(Path(os.environ.get("TRIALWATCH_FIXTURES") or repo.parent / "shared" / "fixtures"), repo / "tests" / "data")
