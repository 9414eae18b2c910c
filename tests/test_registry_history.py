"""The registry's own version history (registry/version_history.py, backfill.py, citing.py): the
replay on the real history fixtures (every version stored once, the past changes those a poll
would have reported, none mailed, the next live change citing its version pair), the endpoints'
answers read defensively, and pacing measured at the local registry."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from tests.conftest import real_fixtures_path
from tests.harness import Cli, write_config
from watcher.errors import SourceError
from watcher.registry.version_history import chosen_versions, parse_version_list, parse_version_record
from watcher.store import db
from watcher.store.models import ChangeRow, HistoryBackfill, Notification, StudyVersion

STUDIES = ["NCT07011550", "NCT06657144", "NCT05935098", "NCT05414032", "NCT06989112"]


@pytest.fixture
def history_dir() -> Path:
    path = real_fixtures_path() / "registry-history"
    if not (path / "NCT07011550" / "history.json").is_file():
        pytest.skip(f"registry history fixtures not found at {path}")
    return path


def watch_of(*ids: str, name: str = "History") -> str:
    listed = ", ".join(f'"{nct_id}"' for nct_id in ids)
    return f'[[watch]]\nname = "{name}"\nnct_ids = [{listed}]\nrecipients = ["onc@example.org"]\ndigest = "daily"\n'


def versions_of(url: str, nct_id: str) -> list[StudyVersion]:
    engine = db.make_engine(url)
    with db.transaction(engine) as session:
        rows = list(session.exec(select(StudyVersion).where(StudyVersion.nct_id == nct_id)))
        session.expunge_all()
    engine.dispose()
    return rows


def backfill_row(url: str, nct_id: str) -> HistoryBackfill | None:
    engine = db.make_engine(url)
    with db.transaction(engine) as session:
        row = session.get(HistoryBackfill, nct_id)
        if row is not None:
            session.expunge(row)
    engine.dispose()
    return row


def listing(folder: Path) -> list[dict[str, Any]]:
    return json.loads((folder / "history.json").read_text())["history"]["changes"]  # type: ignore[no-any-return]


def record_of(folder: Path, number: int) -> dict[str, Any]:
    return json.loads((folder / f"v{number}.json").read_text())["study"]  # type: ignore[no-any-return]


# --- the answers, read defensively -------------------------------------------------------------


def test_the_real_version_list_is_read_with_its_own_numbers(history_dir):
    body = json.loads((history_dir / "NCT03690141.history-member.json").read_text())
    listed = parse_version_list(body, "NCT03690141")
    assert [v.number for v in listed] == list(range(10))
    assert (listed[0].date, listed[0].status, listed[-1].date, listed[-1].status) == (
        "2018-09-27", "NOT_YET_RECRUITING", "2020-04-27", "COMPLETED"
    )  # fmt: skip
    assert "Contacts/Locations" in listed[1].labels
    assert [v.number for v in chosen_versions(listed, 3)] == [0, 7, 8, 9]  # the newest three and the first
    changes = body["history"]["changes"]
    gaps = parse_version_list({"history": {"changes": [changes[0], changes[4], changes[9]]}}, "NCT03690141")
    assert [v.number for v in gaps] == [0, 4, 9]  # numbers read from the list, never from positions
    repeated = parse_version_list({"history": {"changes": [changes[1], changes[0], changes[1]]}}, "NCT03690141")
    assert [v.number for v in repeated] == [0, 1]
    conflicting = [changes[0], {**changes[0], "date": "2019-01-01"}]
    with pytest.raises(SourceError, match="version 0 is listed twice with different dates"):
        parse_version_list({"history": {"changes": conflicting}}, "NCT03690141")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"history": {}}, "no history.changes list"),
        ([], "no history.changes list"),
        ({"history": {"changes": []}}, "no versions listed"),
        ({"history": {"changes": [{"version": "1", "date": "2020-01-01"}]}}, "is not a number from 0"),
        ({"history": {"changes": [{"version": True, "date": "2020-01-01"}]}}, "is not a number from 0"),
        ({"history": {"changes": [{"version": -1, "date": "2020-01-01"}]}}, "is not a number from 0"),
        ({"history": {"changes": [{"version": 0, "date": "01/02/2020"}]}}, "is not yyyy-mm-dd"),
        ({"history": {"changes": ["v0"]}}, "is not an object"),
    ],
)
def test_a_malformed_version_list_is_refused_in_one_line(body, error):
    with pytest.raises(SourceError, match=error):
        parse_version_list(body, "NCT03690141")


def test_a_version_record_must_be_the_study_and_version_asked_for(history_dir):
    record = record_of(history_dir / "NCT05935098", 0)
    assert parse_version_record({"studyVersion": 0, "study": record}, "NCT05935098", 0) == record
    with pytest.raises(SourceError, match="is NCT05935098's, not NCT07011550's"):
        parse_version_record({"studyVersion": 0, "study": record}, "NCT07011550", 0)
    with pytest.raises(SourceError, match="the answer is version 1"):
        parse_version_record({"studyVersion": 1, "study": record}, "NCT05935098", 0)
    with pytest.raises(SourceError, match="no study record"):
        parse_version_record({"studyVersion": 0}, "NCT05935098", 0)
    marked = copy.deepcopy(record)
    ident = marked["protocolSection"]["identificationModule"]
    first = ident["briefTitle"].split()[0]
    ident["briefTitle"] = ident["briefTitle"].replace(first, f'<mark class="hl-term">{first}</mark>', 1)
    assert "<mark" in json.dumps(marked)
    cleaned = parse_version_record({"study": marked}, "NCT05935098", 0)
    assert cleaned == record and "mark" not in json.dumps(cleaned["protocolSection"]["identificationModule"])


# --- the replay --------------------------------------------------------------------------------


def reference_changes(tmp_path: Path, registry: Any, history_dir: Path) -> dict[str, Counter[tuple[str, str]]]:
    """What polls would have reported, seeing every version of each study one after another."""
    found: dict[str, Counter[tuple[str, str]]] = {}
    for nct_id in STUDIES:
        folder = tmp_path / f"reference-{nct_id}"
        folder.mkdir()
        url = f"sqlite:///{folder / 'ref.db'}"
        cli = Cli(write_config(folder, registry, database_url=url, watches=watch_of(nct_id)))
        for entry in listing(history_dir / nct_id):
            registry.put(record_of(history_dir / nct_id, entry["version"]))
            cli("poll", "--full")
        found[nct_id] = Counter((c["kind"], c["summary"]) for c in cli.changes() if c["nct_id"] == nct_id)
        registry.remove(nct_id)
    return found


def test_replay_stores_every_version_once_with_the_changes_a_poll_would_report(
    tmp_path, registry, history_dir, database_url
):
    expected = reference_changes(tmp_path, registry, history_dir)
    for nct_id in STUDIES:
        registry.load_history(history_dir / nct_id)
    cli = Cli(write_config(tmp_path, registry, database_url=database_url, watches=watch_of(*STUDIES), history=True))
    output = cli("poll")
    assert "baseline: 5 studies stored" in output and "registry history: 5 studies backfilled" in output
    past = [c for c in cli.changes("--all") if c["historical"]]
    for nct_id in STUDIES:
        listed = listing(history_dir / nct_id)
        stored = versions_of(database_url, nct_id)
        numbers = sorted(v.registry_version for v in stored if v.registry_version is not None)
        assert numbers == [e["version"] for e in listed], nct_id  # every version once, none twice
        assert len(stored) == len(listed)  # the version the baseline stored is the newest registry version
        assert {v.registry_version: v.registry_date for v in stored} == {e["version"]: e["date"] for e in listed}
        mine = Counter((c["kind"], c["summary"]) for c in past if c["nct_id"] == nct_id)
        assert mine == expected[nct_id], nct_id  # same kinds, same sentences
        row = backfill_row(database_url, nct_id)
        assert row is not None
        assert (row.status, row.versions, row.newest) == ("done", len(listed), listed[-1]["version"])
    assert sum(expected.values(), Counter()), "the fixtures hold real changes"
    assert all(not c["alerted"] and c["registry_versions"] and "tab=history&a=" in c["compare_url"] for c in past)
    assert not [c for c in cli.changes() if c["historical"]]  # not among the changes mailed
    engine = db.make_engine(database_url)
    with db.transaction(engine) as session:
        owed = session.exec(
            select(Notification).join(ChangeRow, col(ChangeRow.id) == col(Notification.change_id))
        ).all()
        assert owed == []  # a baseline alerts on nothing, and the past is never owed to anyone
    engine.dispose()
    timeline = cli("history", "NCT07011550")
    assert "version 1: from the registry's history, registry version 1 submitted 2025-08-20" in timeline
    assert "compare versions 1 and 2 on ClinicalTrials.gov: https://clinicaltrials.gov/study/NCT07011550" in timeline
    assert "Status changed from Recruiting to Suspended" in timeline

    # the next live change cites its version pair and the registry's comparison
    changed = record_of(history_dir / "NCT07011550", 3)
    status = changed["protocolSection"]["statusModule"]
    status["overallStatus"], status["lastUpdateSubmitDate"] = "TERMINATED", "2026-11-20"
    status["lastUpdatePostDateStruct"] = {"date": "2026-11-20", "type": "ACTUAL"}
    assert registry.add_version(changed) == 4
    cli.now = "2026-11-22T10:00:00+00:00"
    assert "1 change" in cli("poll")
    (live,) = [c for c in cli.changes() if c["nct_id"] == "NCT07011550"]
    assert live["registry_versions"] == [3, 4] and not live["historical"]
    assert live["compare_url"] == (
        "https://clinicaltrials.gov/study/NCT07011550?tab=history&a=4&b=5#version-content-panel"
    )
    assert len(versions_of(database_url, "NCT07011550")) == 5
    digest = cli("digest", "--now", "--dry-run")
    assert "compare versions 4 and 5 on ClinicalTrials.gov" in digest and live["compare_url"] in digest
