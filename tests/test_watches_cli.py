"""Every command sees the config file's watches and those created in the browser or the API (stored
in the database), on SQLite and PostgreSQL: check, poll, digest, changes, queries, preview, audit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from watcher.store import db, repo
from watcher.store import watches as stored
from watcher.watch import WatchConfig

NOW = datetime(2026, 11, 21, 9, tzinfo=UTC)
ANN = "ann@example.org"


def web_watch(name: str = "RCC vaccines", **fields: Any) -> WatchConfig:
    return WatchConfig.model_validate(
        {"name": name, "conditions": ["renal cell carcinoma"], "terms": ["vaccine"],
         "recipients": ["nurse@example.org"], **fields}
    )  # fmt: skip


@pytest.fixture
def engine(database_url: str) -> Engine:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    return engine


def create(engine: Engine, watch: WatchConfig, owner: str = ANN) -> None:
    with db.transaction(engine) as session:
        stored.create_watch(session=session, watch=watch, owner=owner, now=NOW)


def update(engine: Engine, watch: WatchConfig, name: str = "RCC vaccines") -> None:
    with db.transaction(engine) as session:
        stored.update_watch(session=session, name=name, watch=watch, actor=ANN, now=NOW)


def archive(engine: Engine, name: str = "RCC vaccines") -> None:
    with db.transaction(engine) as session:
        stored.archive_watch(session=session, name=name, actor=ANN, now=NOW)


def test_check_lists_both_kinds_and_refuses_a_config_watch_taking_a_web_watchs_name(cli_for, database_url, engine):
    cli = cli_for(database_url=database_url)
    create(engine, web_watch())
    output = cli("check")
    assert "watches: 3" in output
    assert "  - RCC bispecifics [daily] to onc@example.org, coordinator@example.org" in output
    assert "; 1 NCT id(s) (config file)" in output
    assert "  - RCC vaccines [daily] to nurse@example.org: conditions renal cell carcinoma; terms vaccine; " \
           "0 NCT id(s) (web, by ann@example.org)" in output  # fmt: skip
    taken = '\n[[watch]]\nname = "RCC vaccines"\nrecipients = ["a@example.org"]\nconditions = ["kidney cancer"]\n'
    cli.config.write_text(cli.config.read_text() + taken)
    expected = (
        f"error: {cli.config}: watch 'RCC vaccines': the name is taken by a watch created in the browser; "
        "rename one of them"
    )
    assert cli("check", code=2).strip() == expected
    assert cli("poll", code=2).strip() == expected
    with db.transaction(engine) as session:  # refused whole: nothing of the file was provisioned
        assert [(row.name, row.source) for row in stored.watch_rows(session=session)] == [("RCC vaccines", "web")]


def test_poll_changes_queries_preview_and_digest_see_web_watches_until_archived(
    cli_for, database_url, engine, registry, own_study, smtp
):
    registry.put(own_study("study_NCT09000001_v1"))
    cli = cli_for(database_url=database_url, smtp=smtp)
    create(engine, web_watch())
    assert "RCC vaccines: baseline: 1 studies stored" in cli("poll")
    registry.put(own_study("study_NCT09000001_v2"))
    assert "RCC vaccines: incremental: 1 studies seen" in cli("poll")
    found = cli.changes("--watch", "RCC vaccines")
    assert found and {change["watch"] for change in found} == {"RCC vaccines"}
    assert "RCC vaccines:\n  GET " in cli("queries", "RCC vaccines")
    assert "RCC vaccines:" in cli("queries")
    assert "NCT09000001" in cli("preview", "RCC vaccines", "--no-feeds")
    assert "To: nurse@example.org" in cli("digest", "--now", "--dry-run")

    archive(engine)
    polled = cli("poll")
    assert "RCC vaccines" not in polled and "RCC bispecifics" in polled, "an archived watch is not polled"
    assert cli.changes("--watch", "RCC vaccines") == found, "its changes stay readable"
    assert "RCC vaccines" not in cli("check")
    assert "no watch named 'RCC vaccines'" in cli("queries", "RCC vaccines", code=2)
    cli("digest", "--now")
    assert smtp.received and "nurse@example.org" not in {r.rcpt_tos[0] for r in smtp.received}, "its mail stops"
    with db.transaction(engine) as session:
        assert repo.count_studies(session=session, watch="RCC vaccines") == 1


def test_new_words_make_a_web_watchs_next_poll_a_baseline(cli_for, database_url, engine, registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    cli = cli_for(database_url=database_url)
    create(engine, web_watch())
    assert "RCC vaccines: baseline" in cli("poll")
    update(engine, web_watch(recipients=["nurse@example.org", "pi@example.org"], digest="weekly"))
    again = cli("poll")
    assert "RCC vaccines: baseline" not in again and "RCC vaccines" in again, "new recipients: same query"
    update(engine, web_watch(terms=["vaccine", "neoantigen"]))
    assert "RCC vaccines: baseline: 1 studies stored" in cli("poll"), "new words: a new baseline"


def test_audit_says_who_did_what_when(cli_for, database_url, engine):
    cli = cli_for(database_url=database_url)
    cli("poll")  # provisions the file's watches
    create(engine, web_watch())
    update(engine, web_watch(digest="weekly"))
    lines = cli("audit", "--watch", "RCC vaccines").splitlines()
    assert lines == [
        '2026-11-21 09:00 ann@example.org update \'RCC vaccines\': digest "daily" → "weekly"',
        lines[1],
    ]
    assert lines[1] == (
        "2026-11-21 09:00 ann@example.org create 'RCC vaccines': "
        'conditions ["renal cell carcinoma"]; crossref true; digest "daily"; europepmc true; feeds true; pubmed true; '
        'recipients ["nurse@example.org"]; send_empty false; terms ["vaccine"]; upcoming true'
    ), "a new watch: the values it has, empty ones left out"
    entries = json.loads(cli("audit", "--json"))
    assert {(e["action"], e["watch"], e["actor"]) for e in entries} == {
        ("update", "RCC vaccines", ANN), ("create", "RCC vaccines", ANN),
        ("provision", "RCC bispecifics", "trialwatch.toml"), ("provision", "RCC CAR-T", "trialwatch.toml"),
    }  # fmt: skip
    assert next(e for e in entries if e["action"] == "update") == {
        "at": "2026-11-21T09:00:00+00:00", "actor": ANN, "action": "update", "watch": "RCC vaccines",
        "changes": {"digest": ["daily", "weekly"]},
    }  # fmt: skip
    assert cli("audit", "--watch", "nothing here").strip() == "no audit entries"


def test_web_needs_an_address_to_listen_on(cli_for):
    cli = cli_for()
    assert cli("web", code=2).strip() == (
        "error: nothing to listen on: set [server] listen in the config file or pass --listen"
    )
    assert "--listen: listen 'nowhere'" in cli("web", "--listen", "nowhere", code=2)
