"""#25, vulnerability 4: a watch named with a line break could be managed by nobody. A name is one
line of visible text of at most 100 characters, in the TOML file, the form and the API alike; a
name stored before the rule is reported by migration 0016, and can be read and archived (in the
browser, the API, and `trialwatch watch archive`). Both databases."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from sqlalchemy import text

from tests.web_support import FILE_WATCH
from watcher.store import db
from watcher.store.models import WatchRow
from watcher.store.watches import definition_of, get_watch_row, watch_rows
from watcher.watch import WatchConfig

NOW = datetime(2026, 12, 8, 9, tzinfo=UTC)
BAD_NAMES = {
    "line feed": ("RCC\nbispecifics", "a line break (LF), U+000A at character 4"),
    "carriage return": ("RCC\rbispecifics", "a carriage return (CR), U+000D at character 4"),
    "NUL": ("RCC\x00", "NUL, U+0000 at character 4"),
    "ESC": ("\x1b[31mRCC", "ESC, U+001B at character 1"),
    "bidi override": ("RCC \u202escificepsib", "U+202E (RIGHT-TO-LEFT OVERRIDE) at character 5"),
    "line separator": ("RCC\u2028x", "U+2028 (LINE SEPARATOR) at character 4"),
    "paragraph separator": ("RCC\u2029x", "U+2029 (PARAGRAPH SEPARATOR) at character 4"),
    "zero width space": ("RCC\u200bx", "U+200B (ZERO WIDTH SPACE) at character 4"),
    "too long": ("R" * 101, "the name is 101 characters long; at most 100"),
}
NEW = {"conditions": ["renal cell carcinoma"], "terms": ["bispecific"], "recipients": ["onc@example.org"]}
FORM = {"conditions": "renal cell carcinoma", "terms": "bispecific", "recipients": "onc@example.org",
        "digest": "daily", "feeds": "on"}  # fmt: skip


@pytest.mark.parametrize(("name", "words"), BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_the_api_refuses_a_bad_name_with_one_clear_line(web_server, name, words):
    api = web_server.api(web_server.token("member@example.org"))
    response = api.post("/api/v1/watches", json={"name": name, **NEW})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "name", "message": _expected(words)}]
    assert [w["name"] for w in api.get("/api/v1/watches").json()["watches"]] == [FILE_WATCH.name]


@pytest.mark.parametrize(("name", "words"), [BAD_NAMES["NUL"], BAD_NAMES["bidi override"], BAD_NAMES["too long"]])
def test_the_form_refuses_a_bad_name_next_to_its_field(web_server, name, words):
    client = web_server.signed_in("ann@example.org")
    assert 'name="name" type="text" required maxlength="100"' in client.get("/watches/new").text
    response = client.submit("/watches/new", {"name": name, **FORM, "action": "save"})
    assert response.status_code == 422
    assert f'id="name-error">{_expected(words)}' in response.text.replace("&#39;", "'")
    with db.transaction(web_server.engine) as session:
        assert [row.name for row in watch_rows(session=session)] == [FILE_WATCH.name]
    assert client.get("/watches/" + quote(name, safe="")).status_code == 404  # a NUL too (PostgreSQL stores none)


def test_a_name_of_100_characters_is_fine_everywhere(web_server):
    api = web_server.api(web_server.token("member@example.org"))
    name = "R" * 99 + "é"
    assert api.post("/api/v1/watches", json={"name": name, **NEW}).status_code == 201
    assert api.get("/api/v1/watches/" + quote(name, safe="")).json()["name"] == name


def test_the_config_file_refuses_a_bad_name_in_one_line(cli_for):
    cli = cli_for()
    cli.config.write_text(
        cli.config.read_text() + '\n[[watch]]\nname = "RCC\\u202ebispecifics"\nrecipients = ["a@example.org"]\n'
        'terms = ["bispecific"]\n'
    )
    output = cli("check", code=2).strip()
    assert output == (
        f"error: {cli.config}: watch 'RCC\\u202ebispecifics': key 'name': the name holds U+202E (RIGHT-TO-LEFT "
        "OVERRIDE) at character 4; a name is one line of visible text (no control or format characters)"
    )


def _expected(words: str) -> str:
    if words.startswith("the name is"):
        return words
    return f"the name holds {words}; a name is one line of visible text (no control or format characters)"


def _stored_watch(engine, name: str, owner: str = "ann@example.org") -> int:
    """A web watch stored before names were checked (as migration 0016 finds it)."""
    valid = WatchConfig.model_validate({"name": "placeholder", **NEW})
    with db.transaction(engine) as session:
        row = WatchRow(name=name, source="web", owner=owner, definition=definition_of(valid), created_at=NOW,
                       updated_at=NOW)  # fmt: skip
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


def test_the_owner_reads_and_archives_a_watch_stored_with_a_line_break_in_the_browser(web_server):
    name = "RCC\nbispecifics"
    _stored_watch(web_server.engine, name)
    client = web_server.signed_in("ann@example.org")
    path = "/watches/" + quote(name, safe="")
    page = client.get(path)
    assert page.status_code == 200 and "RCC\nbispecifics" in page.text
    response = client.submit(path, {"action": "delete"})
    assert response.status_code == 303
    with db.transaction(web_server.engine) as session:
        row = get_watch_row(session=session, name=name)
        assert row is not None and row.archived_at is not None
    assert client.get(path).status_code == 404


def test_an_admin_reads_and_deletes_one_through_the_api(web_server):
    name = "\x1b[2J\nRCC\u2028vaccines"
    _stored_watch(web_server.engine, name)
    api = web_server.api(web_server.token("admin@example.org", role="admin"))
    path = "/api/v1/watches/" + quote(name, safe="")
    assert api.get(path).json()["name"] == name
    assert name in [w["name"] for w in api.get("/api/v1/watches").json()["watches"]]
    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404
    assert [w["name"] for w in api.get("/api/v1/watches").json()["watches"]] == [FILE_WATCH.name]


def test_watch_archive_archives_a_stored_bad_name_by_name_or_by_id(cli_for, database_url):
    cli = cli_for(database_url=database_url)
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    first = _stored_watch(engine, "RCC\nbispecifics")
    second = _stored_watch(engine, "RCC\u202evaccines")
    assert (
        f"    warning: the name holds U+202E (RIGHT-TO-LEFT OVERRIDE) at character 4; a name is one line of visible "
        f"text (no control or format characters); rename it, or `trialwatch watch archive --id {second}`"
    ) in cli("check")
    assert cli("watch", "archive", "RCC\nbispecifics").strip() == (
        f"archived watch 'RCC\\nbispecifics' (id {first}): it is no longer polled or mailed"
    )
    assert f"archived watch 'RCC\\u202evaccines' (id {second})" in cli("watch", "archive", "--id", str(second))
    with db.transaction(engine) as session:
        rows = session.exec(text("SELECT name, archived_at FROM watch WHERE source = 'web'")).all()
        assert sorted(name for name, archived in rows if archived is not None) == ["RCC\nbispecifics",
                                                                                  "RCC\u202evaccines"]  # fmt: skip
        audit = session.exec(text("SELECT actor, action FROM audit WHERE action = 'archive'")).all()
        assert [tuple(entry) for entry in audit] == [("trialwatch watch archive", "archive")] * 2
    assert cli("watch", "archive", "--id", str(second), code=2).strip() == f"error: no active watch with id {second}"
    assert cli("watch", "archive", "nope", code=2).strip() == "error: no watch named 'nope'"
    assert cli("watch", "archive", "RCC bispecifics", code=2).strip() == (
        f"error: {cli.config}: watch 'RCC bispecifics' is defined in this file; remove it there to archive it"
    )
    assert "give the watch's NAME or --id" in cli("watch", "archive", code=2)
    engine.dispose()


def test_watch_archive_has_help_with_an_example(cli_for):
    output = cli_for()("watch", "archive", "--help")
    assert "Example: trialwatch watch archive" in output and "--id" in output


def test_migration_0016_reports_stored_names_that_break_the_rule(database_url, caplog):
    engine = db.make_engine(database_url)
    db.upgrade(engine, "0013")
    bad = _stored_watch(engine, "RCC\nbispecifics")
    _stored_watch(engine, "RCC vaccines")
    with engine.begin() as connection:
        connection.execute(text("UPDATE watch SET archived_at = :at WHERE name = 'RCC vaccines'"), {"at": NOW})
    _stored_watch(engine, "Z" * 150)
    with caplog.at_level(logging.WARNING, logger="watcher.store.migrations"):
        db.upgrade(engine)
    lines = [r.getMessage() for r in caplog.records if r.name == "watcher.store.migrations"]
    assert lines[0] == (
        f"watch 'RCC\\nbispecifics' (id {bad}): the name holds a line break (LF), U+000A at character 4; a name is "
        "one line of visible text (no control or format characters); rename it, or archive it with "
        f"`trialwatch watch archive --id {bad}`"
    )
    assert len(lines) == 2 and "the name is 150 characters long; at most 100" in lines[1]
    with db.transaction(engine) as session:  # reported, not renamed
        assert get_watch_row(session=session, name="RCC\nbispecifics") is not None
    engine.dispose()
