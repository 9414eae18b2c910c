"""`make bench`: backfilling 200 studies of 20 registry versions each (issue #22), against the
floor of downloading and JSON-parsing the same answers with a plain `requests` client.

The studies are the real RCC records (renumbered), each given 20 versions whose enrollment,
primary completion and sites move (a real change every version); the version lists and records
are served pre-built from a process of their own (tests/benchmarks/history_server.py). Each
backfill starts from a fresh copy of a database holding the 200 studies as a poll stored them
(their newest version); the fastest of REPEAT runs of each side is shown.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

STUDIES, VERSIONS = 200, 20


def versions_of(base: dict[str, Any], nct_id: str) -> list[tuple[str, dict[str, Any]]]:
    """A study's VERSIONS records (day submitted, record), each with a real change from the one before."""
    made = []
    for number in range(VERSIONS):
        record = copy.deepcopy(base)
        section = record["protocolSection"]
        section["identificationModule"]["nctId"] = nct_id
        section["identificationModule"].pop("nctIdAliases", None)
        day = (date(2024, 1, 1) + timedelta(days=30 * number)).isoformat()
        status = section["statusModule"]
        status["lastUpdateSubmitDate"] = day
        status["lastUpdatePostDateStruct"] = {"date": day, "type": "ACTUAL"}
        status["primaryCompletionDateStruct"] = {"date": f"{2027 + number // 12}-{number % 12 + 1:02d}-28",
                                                 "type": "ESTIMATED"}  # fmt: skip
        section.setdefault("designModule", {})["enrollmentInfo"] = {"count": 100 + 5 * number, "type": "ESTIMATED"}
        locations = section.get("contactsLocationsModule", {}).get("locations") or []
        if len(locations) > 2:
            section["contactsLocationsModule"]["locations"] = locations[: len(locations) - number % 2]
        made.append((day, record))
    return made


def build(folder: Path, templates: list[dict[str, Any]]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Every study's versions; the server's answers written to folder/answers.jsonl."""
    studies = {}
    with (folder / "answers.jsonl").open("w") as out:
        for n in range(STUDIES):
            nct_id = f"NCT08{n:06d}"
            made = studies[nct_id] = versions_of(templates[n % len(templates)], nct_id)
            changes = [{"version": i, "date": day, "status": "RECRUITING", "moduleLabels": ["Study Status"]}
                       for i, (day, _) in enumerate(made)]  # fmt: skip
            listing = {"study": made[-1][1], "history": {"changes": changes}}
            out.write(json.dumps({"path": f"/api/int/studies/{nct_id}", "body": listing}) + "\n")
            for i, (_, record) in enumerate(made):
                body = {"studyVersion": i, "study": record}
                out.write(json.dumps({"path": f"/api/int/studies/{nct_id}/history/{i}", "body": body}) + "\n")
    return studies


def stored_database(path: Path, studies: dict[str, list[tuple[str, dict[str, Any]]]]) -> None:
    """The 200 studies as a poll stored them: their newest version, held by one watch."""
    from watcher.model import Study
    from watcher.registry.normalize import content_digest
    from watcher.store import db
    from watcher.store.packing import pack_record
    from watcher.store.studies import NewStudy, add_new_studies, add_watch_links

    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    now = datetime(2026, 11, 21, tzinfo=UTC)
    rows = [NewStudy.of(Study.from_record(made[-1][1]), content_digest(made[-1][1]), pack_record(made[-1][1]))
            for made in studies.values()]  # fmt: skip
    with db.transaction(engine) as session:
        versions = add_new_studies(session=session, studies=rows, now=now)
        add_watch_links(session=session, watch="bench", versions=versions, now=now)
    engine.dispose()


def floor(base: str) -> float:
    """Download and parse every answer the backfill asks for (the list, then each version but the newest)."""
    started = time.perf_counter()
    with requests.Session() as session:
        for n in range(STUDIES):
            url = f"{base}/studies/NCT08{n:06d}"
            listing = json.loads(session.get(url, params={"history": "true"}, timeout=60).content)
            for entry in listing["history"]["changes"][:-1]:
                json.loads(session.get(f"{url}/history/{entry['version']}", timeout=60).content)
    return time.perf_counter() - started


def backfill(base: str, database: Path) -> tuple[float, str]:
    from watcher.config import ClinicalTrialsConfig
    from watcher.http import HttpClient, make_session
    from watcher.registry.backfill import run_backfill
    from watcher.registry.version_history import VersionHistoryClient
    from watcher.store import db

    engine = db.make_engine(f"sqlite:///{database}")
    settings = ClinicalTrialsConfig(requests_per_second=0)
    api = VersionHistoryClient(HttpClient(session=make_session()), base)
    started = time.perf_counter()
    report = run_backfill(engine=engine, api=api, settings=settings, now=datetime(2026, 11, 22, tzinfo=UTC),
                          limit=STUDIES)  # fmt: skip
    seconds = time.perf_counter() - started
    engine.dispose()
    return seconds, report.line()


def fastest(runs: list[Callable[[], float]]) -> float:
    return min(run() for run in runs)


def main(templates: list[dict[str, Any]], repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="trialwatch-history-bench-") as tmp:
        folder = Path(tmp)
        studies = build(folder, templates)
        stored_database(folder / "stored.db", studies)
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.benchmarks.history_server", str(folder / "answers.jsonl")],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            base = f"http://127.0.0.1:{server.stdout.readline().strip()}/api/int"
            floor(base)  # warms the server and the connection pool's code paths
            floors, runs, line = [], [], ""
            for attempt in range(repeat):
                floors.append(floor(base))
                copy_path = folder / f"run{attempt}.db"
                shutil.copy(folder / "stored.db", copy_path)
                seconds, line = backfill(base, copy_path)
                runs.append(seconds)
        finally:
            server.terminate()
            server.wait()
    best_floor, best = min(floors), min(runs)
    print(f"registry history backfill, {STUDIES} studies x {VERSIONS} versions: {best:.2f} s = "
          f"{best / best_floor:.2f}x the floor's {best_floor:.2f} s (download + parse of the same "
          f"{STUDIES * VERSIONS} answers); target at most 1.5x")  # fmt: skip
    print(f"  {line}")


if __name__ == "__main__":
    from tests.benchmarks.bench import REPEAT, templates

    main(templates(), REPEAT)
