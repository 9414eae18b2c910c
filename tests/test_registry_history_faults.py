"""The registry's version history failing in every way the issue names: each fails soft (the study
keeps what trialwatch saw itself, nothing half-stored, tried again after a backoff), and polls,
their changes and the mail go on as before. Pacing of polls and history together, measured at the
local registry."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import real_fixtures_path
from tests.harness import Cli, write_config
from tests.servers import Fault
from tests.test_registry_history import STUDIES, backfill_row, listing, record_of, versions_of, watch_of

STUDY = "NCT05935098"  # two versions: ACTIVE_NOT_RECRUITING -> TERMINATED


@pytest.fixture
def history_dir() -> Path:
    path = real_fixtures_path() / "registry-history"
    if not (path / STUDY / "history.json").is_file():
        pytest.skip(f"registry history fixtures not found at {path}")
    return path


@pytest.fixture
def setup(tmp_path, registry, history_dir):
    """A CLI over a registry serving STUDY's history (sqlite), and the database's URL."""
    registry.load_history(history_dir / STUDY)
    url = f"sqlite:///{tmp_path / 'history.db'}"
    cli = Cli(write_config(tmp_path, registry, database_url=url, watches=watch_of(STUDY), history=True))
    return cli, url


def only_own_version(url: str) -> bool:
    stored = versions_of(url, STUDY)
    return len(stored) == 1 and not stored[0].from_history


@pytest.mark.parametrize(
    ("faults", "error"),
    [
        ([Fault.status(403, "Forbidden: client not recognised")], "HTTP 403"),
        ([Fault.status(404, "Not found")], "HTTP 404"),
        ([Fault.status(503)] * 3, "HTTP 503"),
        ([Fault.status(429, retry_after="0")] * 3, "HTTP 429"),
        ([Fault.truncated()] * 3, "truncated"),
        ([Fault.none(), *[Fault.status(500)] * 3], "HTTP 500"),  # the list answers, a version does not
    ],
)
def test_a_failing_history_stores_nothing_and_is_tried_again_later(setup, registry, faults, error):
    cli, url = setup
    registry.fail_history(*faults)
    output = cli("poll")
    assert "baseline: 1 studies stored" in output and "1 failed" in output  # the poll itself is unaffected
    assert only_own_version(url)  # nothing half-stored
    row = backfill_row(url, STUDY)
    assert row is not None and row.status == "failing" and error in (row.last_error or "")
    assert row.attempts == 1 and row.next_attempt_at is not None
    history = cli("history", STUDY)
    assert "the registry's version history could not be read" in history and error in history
    assert "registry history: 0 studies done, 0 pending, 1 failing; last error:" in cli("check")
    cli.now = "2026-11-21T10:30:00+00:00"  # the backoff (an hour) has not passed: not asked again
    asked = registry.request_count()
    cli("poll")
    assert registry.request_count() - asked == 1  # /version only
    cli.now = "2026-11-21T12:00:00+00:00"  # it has: asked again, and now it works
    assert "registry history: 1 studies backfilled (1 versions" in cli("poll")
    row = backfill_row(url, STUDY)
    assert row is not None and (row.status, row.attempts, row.last_error) == ("done", 0, None)
    assert sorted(v.registry_version for v in versions_of(url, STUDY)) == [0, 1]


def test_a_retry_after_429_or_a_cut_body_once_is_retried_at_once(setup, registry):
    cli, url = setup
    registry.fail_history(Fault.status(429, retry_after="0"), Fault.none(), Fault.truncated())
    assert "registry history: 1 studies backfilled" in cli("poll")
    assert sorted(v.registry_version for v in versions_of(url, STUDY)) == [0, 1]


def test_gaps_in_the_list_keep_the_registrys_numbers(setup, registry, history_dir):
    cli, url = setup
    entries = listing(history_dir / STUDY)
    gapped = [entries[0], {**entries[1], "version": 5}, entries[1] | {"version": 5}]  # a gap and a repeat
    registry.put_history(STUDY, gapped, {0: record_of(history_dir / STUDY, 0), 5: record_of(history_dir / STUDY, 1)})
    cli("poll")
    assert sorted(v.registry_version for v in versions_of(url, STUDY)) == [0, 5]
    (past,) = [c for c in cli.changes("--all") if c["historical"] and c["kind"] == "status"]
    assert past["registry_versions"] == [0, 5]
    assert past["compare_url"].endswith("?tab=history&a=1&b=6#version-content-panel")


@pytest.mark.parametrize("fault", ["conflicting", "other_study"])
def test_an_answer_that_is_not_what_was_asked_is_refused(setup, registry, history_dir, fault):
    cli, url = setup
    entries = listing(history_dir / STUDY)
    records = {0: record_of(history_dir / STUDY, 0), 1: record_of(history_dir / STUDY, 1)}
    if fault == "conflicting":
        entries = [entries[0], {**entries[0], "date": "2020-01-01"}, entries[1]]
    elif fault == "other_study":
        records[0] = record_of(history_dir / "NCT07011550", 0)
    registry.put_history(STUDY, entries, records)
    cli("poll")
    row = backfill_row(url, STUDY)
    assert row is not None and row.status == "failing" and only_own_version(url)
    assert {"conflicting": "listed twice", "other_study": "NCT07011550's, not"}[fault] in (row.last_error or "")


def test_a_failing_study_among_others_written_together_stores_nothing_and_the_others_all(
    tmp_path, registry, history_dir, database_url
):
    """The backfill writes several studies in one transaction: the one failing in the middle
    leaves only what trialwatch saw itself, the ones before and after it are stored whole."""
    for nct_id in STUDIES:
        registry.load_history(history_dir / nct_id)
    entries = listing(history_dir / STUDY)
    records = {0: record_of(history_dir / "NCT07011550", 0), 1: record_of(history_dir / STUDY, 1)}
    registry.put_history(STUDY, entries, records)  # its first version is another study's record
    cli = Cli(write_config(tmp_path, registry, database_url=database_url, watches=watch_of(*STUDIES), history=True))
    assert "registry history: 4 studies backfilled" in cli("poll")
    stored = versions_of(database_url, STUDY)
    assert len(stored) == 1 and not stored[0].from_history  # nothing half-stored
    assert not [c for c in cli.changes("--all") if c["historical"] and c["nct_id"] == STUDY]
    failing = backfill_row(database_url, STUDY)
    assert failing is not None and failing.status == "failing" and "NCT07011550's, not" in (failing.last_error or "")
    for nct_id in (n for n in STUDIES if n != STUDY):
        numbers = sorted(v.registry_version for v in versions_of(database_url, nct_id))
        assert numbers == [e["version"] for e in listing(history_dir / nct_id)], nct_id
        row = backfill_row(database_url, nct_id)
        assert row is not None and (row.status, row.versions) == ("done", len(numbers)), nct_id


def test_highlights_in_a_record_are_never_stored(setup, registry, history_dir):
    cli, url = setup
    marked = record_of(history_dir / STUDY, 0)
    ident = marked["protocolSection"]["identificationModule"]
    word = ident["briefTitle"].split()[0]
    ident["briefTitle"] = ident["briefTitle"].replace(word, f'<mark class="hl-term">{word}</mark>', 1)
    registry.put_history(STUDY, listing(history_dir / STUDY), {0: marked})
    cli("poll")
    from watcher.store.packing import unpack_record

    (first,) = [v for v in versions_of(url, STUDY) if v.registry_version == 0]
    assert "<mark" not in json.dumps(unpack_record(first.record))
    assert unpack_record(first.record) == record_of(history_dir / STUDY, 0)


def test_a_failing_history_never_stops_a_change_from_being_stored_and_mailed(setup, registry, history_dir):
    cli, url = setup
    registry.fail_history(*[Fault.status(403)] * 10)
    cli("poll")
    changed = copy.deepcopy(record_of(history_dir / STUDY, 1))
    status = changed["protocolSection"]["statusModule"]
    status["overallStatus"], status["lastUpdateSubmitDate"] = "COMPLETED", "2026-11-20"
    status["lastUpdatePostDateStruct"] = {"date": "2026-11-20", "type": "ACTUAL"}
    registry.add_version(changed)
    cli.now = "2026-11-21T10:30:00+00:00"
    assert "1 change" in cli("poll")
    (change,) = cli.changes()
    assert change["alerted"] and change["registry_versions"] is None  # the citation failed: mailed all the same
    assert "Terminated to Completed" in cli("digest", "--now", "--dry-run")


def test_history_off_asks_nothing_of_the_internal_api(tmp_path, registry, history_dir):
    registry.load_history(history_dir / STUDY)
    cli = Cli(write_config(tmp_path, registry, watches=watch_of(STUDY)))  # history = false
    cli("poll")
    assert not [path for path, _ in registry.requests_log if path.startswith("/api/int")]
    assert "registry history: off" in cli("check")
    assert "history is false" in cli("backfill", code=2)


def test_backfill_commands_queue_and_read_one_study_now(setup, registry):
    cli, url = setup
    cli("poll")
    assert "queued 1 studies" in cli("backfill", "--watch", "History")
    row = backfill_row(url, STUDY)
    assert row is not None and row.status == "pending"
    asked = registry.request_count()
    output = cli("history", STUDY, "--backfill")
    assert "registry history: 1 studies backfilled (0 versions" in output  # all stored: only the list asked
    assert registry.request_count() - asked == 1
    assert "is not stored" in cli("history", "NCT01234567", "--backfill", code=2)
    assert "no watch named 'Nope'" in cli("backfill", "--watch", "Nope", code=2)


def test_pacing_of_polls_and_history_together_never_exceeds_requests_per_second(tmp_path, registry, history_dir):
    for nct_id in STUDIES:
        registry.load_history(history_dir / nct_id)
    rate = 25.0
    config = write_config(
        tmp_path, registry, watches=watch_of(*STUDIES), history=True, extra_ctgov=f"requests_per_second = {rate}"
    ).read_text()
    path = tmp_path / "paced.toml"
    path.write_text(config.replace("requests_per_second = 0\n", "", 1))
    before = len(registry.request_times)
    Cli(path)("poll")
    times = registry.request_times[before:]
    assert len(times) > 12  # /version, the page, and the history of five studies
    interval = 1 / rate
    # measured at the server (where a request's own arrival may be seen a little late): any n+1
    # requests in a row span at least n-1 intervals, so no window of time holds more than the rate
    # allows, give or take the one request in hand
    spans = [(times[j] - times[i], j - i) for i in range(len(times)) for j in range(i + 1, len(times))]
    assert all(span >= (count - 1) * interval for span, count in spans)
    assert (len(times) - 1) / (times[-1] - times[0]) <= rate


def test_the_backfill_yields_to_a_poll_that_is_due(tmp_path, registry, history_dir):
    from watcher.cli.shared import make_service
    from watcher.config import load_config
    from watcher.daemon.jobs import Runtime, yielding

    registry.load_history(history_dir / STUDY)
    path = write_config(tmp_path, registry, watches=watch_of(STUDY), history=True, extra_ctgov="history_per_cycle = 0")
    cli = Cli(path)
    assert "registry history" not in cli("poll")  # none a cycle: the study waits in the queue
    assert "1 pending" in cli("check")
    clock = [datetime(2026, 11, 21, 10, tzinfo=UTC)]
    service = make_service(load_config(path))
    runtime = Runtime(service=service, clock=lambda: clock[0])
    paced = yielding(runtime, service)
    assert not paced.poll_due()
    asked = registry.request_count()
    runtime.unpolled.add("a new watch")  # its baseline waits for no backfill
    report = paced.backfill(clock[0], limit=10)
    assert report.yielded and report.studies == 0 and registry.request_count() == asked
    runtime.unpolled.clear()
    clock[0] += timedelta(hours=6)  # the next scheduled poll is due
    assert paced.poll_due() and paced.backfill(clock[0], limit=10).yielded
    clock[0] -= timedelta(hours=3)
    assert paced.backfill(clock[0], limit=10).studies == 1
    service.engine.dispose()
