"""#25, W18: a new watch taking an archived watch's name inherits none of its changes, audit, feed
or recipients' choices (they are keyed by the watch's id), over HTTP against the real server and
through the CLI, on both databases; migration 0016 gives the rows stored before their watch's id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import feedparser
from sqlalchemy import text

from watcher.model import ChangeKind, Source
from watcher.recipient_token import LEGACY_VERSION, _signed, make_token
from watcher.store import db, outbox, people, repo
from watcher.store.watch_keys import active_ids_of

NAME = "RCC vaccines"
ONC, NURSE = "onc@example.org", "nurse@example.org"
BODY = {"name": NAME, "conditions": ["renal cell carcinoma"], "terms": ["vaccine"], "recipients": [ONC, NURSE]}
OLD_SUMMARY = "Overall status: RECRUITING -> TERMINATED (the old watch's)."
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def found_change(site: Any, summary: str, nct_id: str = "NCT09000001") -> None:
    """A change of the active watch NAME, stored as a poll stores it."""
    with db.transaction(site.engine) as session:
        repo.add_change(
            session=session, watch=NAME, kind=ChangeKind.STATUS, source=Source.CLINICALTRIALS, nct_id=nct_id,
            title="A vaccine trial", summary=summary, details={}, recipients=[ONC, NURSE], now=site.clock.now(),
        )  # fmt: skip


def key_of(site: Any) -> bytes:
    with db.transaction(site.engine) as session:
        return people.session_key(session=session, now=site.clock.now()).encode()


def owed_to(site: Any) -> list[tuple[str, str]]:
    with db.transaction(site.engine) as session:
        rows = session.exec(
            text("SELECT c.summary, n.recipient FROM notification n JOIN change c ON c.id = n.change_id ORDER BY n.id")
        ).all()
    return [(summary, recipient) for summary, recipient in rows]


def test_a_new_watch_taking_an_archived_watchs_name_starts_empty(web_server):
    site = web_server
    ann = site.api(site.token("ann@example.org"))
    assert ann.post("/api/v1/watches", json=BODY).status_code == 201
    found_change(site, OLD_SUMMARY)
    with db.transaction(site.engine) as session:
        (old_id,) = active_ids_of(session=session, names=[NAME])
    old_token = make_token(key_of(site), ONC, [old_id])
    assert site.client().post(f"/u/{old_token}", data=ONE_CLICK).status_code == 200  # onc leaves the old watch
    assert ann.delete("/api/v1/watches/" + quote(NAME)).status_code == 204
    site.clock.advance(timedelta(hours=1))

    bob = site.signed_in("bob@example.org")
    assert bob.submit("/watches/new", {**_form(), "action": "save"}).status_code == 303  # the name again, by bob
    api = site.api(site.token("carol@example.org"))

    assert api.get("/api/v1/changes", params={"watch": NAME}).json()["changes"] == []  # no changes inherited
    assert OLD_SUMMARY not in bob.get("/changes", params={"watch": NAME}).text
    assert api.get("/api/v1/watches/" + quote(NAME)).json()["changes_7d"] == 0
    page = bob.get("/watches/" + quote(NAME)).text  # the audit: only the new watch's creation
    assert "ann@example.org" not in page and "bob@example.org" in page
    assert f'<td data-label="Recipient">{ONC}</td>' in page and "opted out since" not in page  # onc's choice too
    feed = feedparser.parse(api.get(f"/atom/{quote(NAME)}.atom", params={"token": site.token("dan@example.org")}).text)
    assert feed.bozo == 0 and feed.entries == []  # no feed inherited
    assert OLD_SUMMARY in [c["summary"] for c in api.get("/api/v1/changes").json()["changes"]]  # kept, unfiltered

    found_change(site, "the new watch's first change")  # onc's opt-out was the old watch's: mailed again
    assert ("the new watch's first change", ONC) in owed_to(site)
    assert (OLD_SUMMARY, ONC) in owed_to(site)  # (owed before onc left the old watch; skipped since)

    assert site.client().post(f"/u/{old_token}", data=ONE_CLICK).status_code == 200  # the old link again
    found_change(site, "the new watch's second change")
    assert ("the new watch's second change", ONC) in owed_to(site)  # did not reach the new watch
    legacy = _signed(key_of(site), LEGACY_VERSION, ONC, [NAME])  # a link mailed before ids, naming the name
    assert site.client().post(f"/u/{legacy}", data=ONE_CLICK).status_code == 200
    found_change(site, "the new watch's third change")
    assert ("the new watch's third change", ONC) in owed_to(site)  # a name two watches had means neither


def test_a_link_mailed_before_ids_still_unsubscribes_from_a_name_only_one_watch_had(web_server):
    site = web_server
    ann = site.api(site.token("ann@example.org"))
    assert ann.post("/api/v1/watches", json=BODY).status_code == 201
    legacy = _signed(key_of(site), LEGACY_VERSION, ONC, [NAME])
    page = site.client().get(f"/u/{legacy}")
    assert page.status_code == 200 and NAME in page.text
    assert site.client().post(f"/u/{legacy}", data=ONE_CLICK).status_code == 200
    found_change(site, "after the old link")
    assert owed_to(site) == [("after the old link", NURSE)]


def test_the_cli_shows_the_new_watchs_changes_and_audit_only(cli_for, database_url, web_server):
    site = web_server
    ann = site.api(site.token("ann@example.org"))
    assert ann.post("/api/v1/watches", json=BODY).status_code == 201
    found_change(site, OLD_SUMMARY)
    assert ann.delete("/api/v1/watches/" + quote(NAME)).status_code == 204
    assert site.api(site.token("bob@example.org")).post("/api/v1/watches", json=BODY).status_code == 201
    cli = cli_for(database_url=database_url)
    assert cli.changes("--watch", NAME) == []
    audit = cli("audit", "--watch", NAME)
    assert "bob@example.org" in audit and "ann@example.org" not in audit
    assert [c["summary"] for c in cli.changes()] == [OLD_SUMMARY]


def _form() -> dict[str, str]:
    return {"name": NAME, "conditions": "renal cell carcinoma", "terms": "vaccine", "recipients": f"{ONC}, {NURSE}",
            "digest": "daily", "feeds": "on"}  # fmt: skip


AT = datetime(2026, 11, 1, 9)


def test_migration_0016_gives_stored_rows_their_watchs_id(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine, "0013")
    with engine.begin() as connection:
        insert_watch = text(
            "INSERT INTO watch (name, source, owner, definition, created_at, updated_at) "
            "VALUES (:name, :source, :owner, '{}', :at, :at)"
        )
        connection.execute(insert_watch, {"name": "from the file", "source": "config", "owner": None,
                                          "at": AT + timedelta(days=5)})  # fmt: skip
        connection.execute(insert_watch, {"name": NAME, "source": "web", "owner": "bob@example.org", "at": AT})
        for name, day, summary in [
            ("from the file", -3, "older than its provisioning"),
            (NAME, 1, "the web one's"),
            (NAME, -2, "an earlier watch's, of the same name"),
            ("gone", 0, "no watch"),
        ]:
            connection.execute(
                text("INSERT INTO change (watch, kind, source, nct_id, title, summary, details, detected_at, alerted) "
                     "VALUES (:watch, 'status', 'clinicaltrials', 'NCT09000001', 't', :summary, '{}', :at, :yes)"),
                {"watch": name, "summary": summary, "at": AT + timedelta(days=day), "yes": True},
            )  # fmt: skip
        connection.execute(
            text("INSERT INTO audit (at, actor, action, watch, changes) VALUES (:at, 'bob@example.org', 'create', "
                 ":watch, '{}')"), {"at": AT, "watch": NAME},
        )  # fmt: skip
        for recipient, day in ((ONC, 1), (NURSE, -1)):
            connection.execute(
                text("INSERT INTO recipient_preference (watch, recipient, pause_changes, updated_at, unsubscribed_at)"
                     " VALUES (:watch, :recipient, 'deliver', :at, :at)"),
                {"watch": NAME, "recipient": recipient, "at": AT + timedelta(days=day)},
            )  # fmt: skip
    db.upgrade(engine)
    with engine.begin() as connection:
        ids = dict(connection.execute(text("SELECT name, id FROM watch")).all())
        changes = dict(connection.execute(text("SELECT summary, watch_id FROM change")).all())
        audit = connection.execute(text("SELECT watch_id FROM audit")).scalars().all()
        prefs = dict(connection.execute(text("SELECT recipient, watch_id FROM recipient_preference")).all())
    assert changes == {
        "older than its provisioning": ids["from the file"], "the web one's": ids[NAME],
        "an earlier watch's, of the same name": None, "no watch": None,
    }  # fmt: skip
    assert audit == [ids[NAME]] and prefs == {ONC: ids[NAME], NURSE: None}
    with db.transaction(engine) as session:  # the earlier watch's row is not the web watch's
        assert [c.summary for c in repo.list_changes(session=session, watch=NAME)] == ["the web one's"]
    db.downgrade(engine, "0013")
    db.upgrade(engine)
    engine.dispose()


def test_names_are_unique_among_active_watches_only(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    insert = text(
        "INSERT INTO watch (name, source, definition, created_at, updated_at, archived_at) "
        "VALUES ('w', 'web', '{}', :at, :at, :archived)"
    )
    with engine.begin() as connection:
        connection.execute(insert, {"at": AT, "archived": AT})
        connection.execute(insert, {"at": AT, "archived": AT})
        connection.execute(insert, {"at": AT, "archived": None})
    try:
        with engine.begin() as connection:
            connection.execute(insert, {"at": AT, "archived": None})
        raise AssertionError("two active watches of one name were stored")
    except Exception as exc:  # noqa: BLE001 (each backend's own IntegrityError)
        assert "unique" in str(exc).lower() or "uq_watch_active_name" in str(exc)
    engine.dispose()


def test_what_was_recorded_under_a_config_watchs_name_before_it_was_stored_stays_its_own(database_url):
    from watcher.store import recipients
    from watcher.store.watches import provision_watches
    from watcher.watch import WatchConfig

    engine = db.make_engine(database_url)
    db.upgrade(engine)
    watch = WatchConfig(name="RCC file", conditions=["renal cell carcinoma"], recipients=[ONC, NURSE])
    with db.transaction(engine) as session:  # the web app read the file before the daemon stored it
        recipients.unsubscribe(session=session, recipient=ONC, watches=[watch.name], now=AT.replace(tzinfo=UTC))
        repo.add_change(
            session=session, watch=watch.name, kind=ChangeKind.STATUS, source=Source.CLINICALTRIALS,
            nct_id="NCT09000001", title="t", summary="before it was stored", details={}, recipients=[NURSE],
            now=AT.replace(tzinfo=UTC),
        )  # fmt: skip
    with db.transaction(engine) as session:
        provision_watches(session=session, watches=[watch], now=AT.replace(tzinfo=UTC), where="trialwatch.toml")
    with db.transaction(engine) as session:
        assert recipients.opted_out(session=session, watch=watch.name) == {ONC}
        assert [c.summary for c in repo.list_changes(session=session, watch=watch.name)] == ["before it was stored"]
        assert outbox.watches_owing(session=session, watches=[watch.name]) == {watch.name}
    engine.dispose()
