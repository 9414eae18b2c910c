"""Issue #25, vulnerability 5: one registry record stops no poll. A lone surrogate (`\\ud800`) in
a study's title is cleaned to U+FFFD where the registry's JSON is parsed, so it is stored and shown;
and a record that breaks the poll in a way nobody foresaw is that watch's failed poll (recorded
with its error), while the next watch still polls. Real polls against the fake registry, on both
databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.harness import Cli, write_config
from watcher.store import db, repo

TWO_WATCHES = """
[[watch]]
name = "Odd record"
nct_ids = ["NCT09000001"]
recipients = ["onc@example.org"]

[[watch]]
name = "Plain record"
nct_ids = ["NCT09000002"]
recipients = ["onc@example.org"]
"""


def _cli(tmp_path: Path, registry: Any, database_url: str) -> Cli:
    return Cli(write_config(tmp_path, registry, database_url=database_url, watches=TWO_WATCHES))


def _state(database_url: str, name: str) -> Any:
    engine = db.make_engine(database_url)
    try:
        with db.transaction(engine) as session:
            state = repo.get_watch_state(session=session, name=name)
            session.expunge(state)
            return state
    finally:
        engine.dispose()


def test_a_lone_surrogate_in_a_title_is_stored_as_a_replacement_character(
    tmp_path: Path, registry: Any, own_study: Any, database_url: str
):
    odd = own_study("study_NCT09000001_v1")
    odd["protocolSection"]["identificationModule"]["briefTitle"] = "CD70 \ud800 CAR-T \udfff\x00"  # NUL: PostgreSQL
    registry.put(odd)
    registry.put(own_study("study_NCT09000002_v1"))
    cli = _cli(tmp_path, registry, database_url)
    output = cli("poll")
    assert "Odd record: baseline: 1 studies stored" in output
    assert "Plain record: baseline: 1 studies stored" in output
    assert "CD70 \ufffd CAR-T \ufffd" in cli("history", "NCT09000001")
    assert cli("poll")  # and the next poll too


def test_an_unforeseen_error_in_one_watchs_poll_is_that_watchs_failed_poll(
    tmp_path: Path, registry: Any, own_study: Any, database_url: str
):
    broken = own_study("study_NCT09000001_v1")
    broken["protocolSection"]["statusModule"] = "not an object"  # no code foresees this
    registry.put(broken)
    registry.put(own_study("study_NCT09000002_v1"))
    cli = _cli(tmp_path, registry, database_url)
    output = cli("poll", code=1)
    assert "Plain record: baseline: 1 studies stored" in output
    odd = _state(database_url, "Odd record")
    assert odd.last_error is not None and odd.last_error.startswith("unexpected error (")
    assert odd.failing_since is not None
    assert _state(database_url, "Plain record").last_error is None
