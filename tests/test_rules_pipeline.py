"""Rules of a watch through the whole path: config file -> `trialwatch poll` against the local
registry -> changes stored with `alerted` / `suppressed_by` -> `changes`, `changes --all`,
`changes --json` -> digest in a real SMTP server holding only alerted changes. On the real
records in ../shared/fixtures and records derived from them, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from tests.harness import REAL_0212, REAL_0216, Cli, posted, write_config
from tests.test_feeds import feed_config, journals  # noqa: F401 (journals is a fixture)
from watcher.model import ChangeKind, Source
from watcher.store import db, outbox, repo
from watcher.store.models import ChangeRow, Notification, WatchStudy

RCC_IO_0205 = "study_NCT04514484_rcc_io_2026-02-05.json"
RECRUITING = "study_NCT05127824_kidney_cancer_recruiting.json"
NEAR_DALLAS = "near = { lat = 32.78, lon = -96.80, radius_km = 100 }"


def watch_block(name: str, recipients: str, *rules: str) -> str:
    lines = "\n".join(rules)
    return f"""
[[watch]]
name = "{name}"
conditions = ["renal cell carcinoma"]
terms = ["bispecific"]
recipients = [{recipients}]
digest = "daily"
{lines}
"""


def held(database_url: str, watch: str) -> set[str]:
    engine = db.make_engine(database_url)
    with db.transaction(engine) as session:
        return set(session.exec(select(WatchStudy.nct_id).where(WatchStudy.watch == watch)))


def notified_change_ids(database_url: str) -> set[int]:
    engine = db.make_engine(database_url)
    with db.transaction(engine) as session:
        return set(session.exec(select(Notification.change_id)))


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'var' / 'trialwatch.db'}"


def test_a_dallas_reader_gets_neither_the_short_slip_nor_the_seoul_site(
    tmp_path, registry, real_study, smtp, database_url
):
    watches = watch_block("Everything", '"analyst@example.org"') + watch_block(
        "Dallas", '"coordinator@example.org", "analyst@example.org"', "min_slip_days = 100", NEAR_DALLAS
    )
    cli = Cli(write_config(tmp_path, registry, database_url=database_url, smtp=smtp, watches=watches))
    registry.put(real_study(REAL_0212))  # has a site in Dallas (UT Southwestern): it joins both watches
    cli.now = "2026-02-12T08:00:00+00:00"
    cli("poll")
    scoped = [params for path, params in registry.requests_log if path.endswith("/studies") and "filter.geo" in params]
    assert [params["filter.geo"] for params in scoped] == ["distance(32.78,-96.8,62.76mi)"]  # the baseline only
    assert held(database_url, "Dallas") == {"NCT05805501"}

    registry.put(real_study(REAL_0216))  # the 92-day slip, and the Seoul site removed
    cli.now = "2026-02-16T10:00:00+00:00"
    output = cli("poll")
    assert "Everything: incremental: 1 studies seen, 2 changes (1 dates, 1 sites) (" in output
    assert (
        "Dallas: incremental: 1 studies seen, 2 changes (1 dates, 1 sites), 2 held back by the watch's rules" in output
    )

    assert cli.changes("--watch", "Dallas") == []
    assert "no changes" in cli("changes", "--watch", "Dallas")
    every = {c["kind"]: c for c in cli.changes("--all", "--watch", "Dallas")}
    assert {k: (c["alerted"], c["suppressed_by"]) for k, c in every.items()} == {
        "dates": (False, "min_slip_days=100"),
        "sites": (False, "geography"),
    }
    listed = cli("changes", "--all", "--watch", "Dallas")
    assert "[dates] Primary completion slipped 92 days" in listed and "(held back by min_slip_days=100)" in listed
    assert "(held back by geography)" in listed
    mailed = cli.changes("--watch", "Everything")
    assert len(mailed) == 2 and all(c["alerted"] is True and c["suppressed_by"] is None for c in mailed)
    assert not {c["id"] for c in every.values()} & notified_change_ids(database_url)  # owed to nobody

    cli("digest", "--now")
    (message,) = smtp.wait_for(1)
    assert message.rcpt_tos == ["analyst@example.org"]  # the coordinator is owed nothing
    text = message.message.get_body(("plain",)).get_content()
    assert message.message["Subject"].startswith("[trialwatch] Everything: 1 date change, 1 site change")
    assert "Site removed: Asan Medical Center, Seoul, South Korea." in text
    assert "== Everything (" in text and "== Dallas (" not in text  # no section for the Dallas watch
    assert "nothing to deliver" in cli("digest", "--now")
    assert len(smtp.received) == 1


def left_recruiting(record: dict[str, Any], day: str) -> dict[str, Any]:
    moved = posted(record, day)
    moved["protocolSection"]["statusModule"]["overallStatus"] = "ACTIVE_NOT_RECRUITING"
    return moved


def test_a_study_leaving_statuses_is_reported_held_then_let_go_quietly(tmp_path, registry, real_study, database_url):
    watches = watch_block("Recruiting", '"coordinator@example.org"', 'statuses = ["RECRUITING"]')
    cli = Cli(write_config(tmp_path, registry, database_url=database_url, watches=watches))
    recruiting = real_study(RECRUITING)
    registry.put(recruiting)
    registry.put(real_study(REAL_0212))  # ACTIVE_NOT_RECRUITING: the registry leaves it out
    cli.now = "2026-02-12T08:00:00+00:00"
    assert "Recruiting: baseline: 1 studies stored" in cli("poll")
    (baseline,) = [p for path, p in registry.requests_log if path.endswith("/studies")]
    assert baseline["filter.overallStatus"] == "RECRUITING"
    assert held(database_url, "Recruiting") == {"NCT05127824"}

    registry.put(left_recruiting(recruiting, "2026-02-13"))
    cli.now = "2026-02-14T10:00:00+00:00"
    cli("poll")
    incremental = [p for path, p in registry.requests_log if path.endswith("/studies")][-1]
    assert "filter.overallStatus" not in incremental  # later polls must see a study leave
    (status,) = cli.changes()
    assert status["kind"] == "status" and status["alerted"] is True
    assert "Status changed from Recruiting to Active, not recruiting" in status["summary"]
    assert held(database_url, "Recruiting") == {"NCT05127824"}  # held until a reconciliation

    cli.now = "2026-02-15T10:00:00+00:00"
    assert "1 held back by the watch's rules" in cli("poll", "--full")
    assert held(database_url, "Recruiting") == set()
    assert [c["kind"] for c in cli.changes()] == ["status"]  # never reported as no_longer_matching
    gone = next(c for c in cli.changes("--all") if c["kind"] == "no_longer_matching")
    assert (gone["alerted"], gone["suppressed_by"]) == (False, "statuses")
    assert gone["id"] not in notified_change_ids(database_url)


def test_local_geography_decides_which_studies_join_and_preview_counts_them(tmp_path, registry, real_study):
    watches = watch_block("Pittsburgh", '"a@example.org"', 'cities = ["pittsburgh"]')
    cli = Cli(write_config(tmp_path, registry, watches=watches))
    for name in (REAL_0212, RCC_IO_0205, RECRUITING):
        registry.put(real_study(name))
    preview = cli("preview", "Pittsburgh", "--no-feeds")
    assert "2 studies match: GET " in preview
    assert "(3 returned by the registry; left out: 1 by geography)" in preview
    assert "NCT04514484" in preview and "NCT05127824" in preview and "NCT05805501" not in preview
    assert "rules: mails: every kind of change; sites in pittsburgh" in cli("check")
    cli.now = "2026-02-12T08:00:00+00:00"
    cli("poll")
    assert held(sqlite_url(tmp_path), "Pittsburgh") == {"NCT04514484", "NCT05127824"}


def test_preview_of_a_watch_with_registry_filters_sends_them(tmp_path, registry, real_study):
    watches = watch_block("Phase 1", '"a@example.org"', 'phases = ["PHASE1"]', 'statuses = ["ACTIVE_NOT_RECRUITING"]')
    cli = Cli(write_config(tmp_path, registry, watches=watches))
    for name in (REAL_0212, RCC_IO_0205, RECRUITING):
        registry.put(real_study(name))
    preview = cli("preview", "Phase 1", "--no-feeds")
    assert "1 studies match: GET " in preview and "filter.overallStatus=ACTIVE_NOT_RECRUITING" in preview
    assert "NCT04514484" in preview and "returned by the registry" not in preview
    assert "filter.advanced='AREA[Phase]PHASE1'" in cli("queries", "Phase 1")


def test_editing_an_alert_rule_is_no_baseline_editing_a_join_rule_is(tmp_path, registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    config = write_config(tmp_path, registry, watches=watch_block("W", '"a@example.org"'))
    cli = Cli(config)
    cli("poll")
    config.write_text(config.read_text() + 'alert_on = ["status"]\nmin_slip_days = 30\n')
    registry.put(own_study("study_NCT09000001_v2"))  # status, a 91-day slip, a site removed
    output = cli("poll")
    assert "W: incremental: 1 studies seen, 3 changes" in output and "2 held back" in output
    assert {c["kind"]: c["suppressed_by"] for c in cli.changes("--all")} == {
        "status": None,
        "dates": "alert_on",
        "sites": "alert_on",
    }
    config.write_text(config.read_text() + 'countries = ["France"]\n')
    assert "W: baseline:" in cli("poll")
    assert len(cli.changes("--all")) == 3  # editing never re-sends or retro-suppresses what is stored


def test_held_back_changes_are_never_owed_even_with_a_stray_notification(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    with db.transaction(engine) as session:
        common = {"session": session, "watch": "w", "source": Source.CLINICALTRIALS, "nct_id": "NCT09000001",
                  "title": "t", "details": {}, "recipients": ["a@example.org"], "now": now}  # fmt: skip
        mailed = repo.add_change(kind=ChangeKind.STATUS, summary="Status changed.", **common)
        held_back = repo.add_change(kind=ChangeKind.DATES, summary="Moved.", suppressed_by="min_slip_days=30", **common)
    with db.transaction(engine) as session:
        assert [n.change_id for n in session.exec(select(Notification))] == [mailed.id]
        session.add(Notification(change_id=held_back.id, recipient="a@example.org"))  # as if written by a bug
    with db.transaction(engine) as session:
        (owed,) = outbox.undelivered(session=session, watches=["w"]).values()
        assert len(owed) == 1  # the stray notification of the held-back change is not owed
        assert [c.id for c in outbox.notification_changes(session=session, notification_ids=owed)] == [mailed.id]
        assert [c.id for c in repo.list_changes(session=session)] == [mailed.id]
        every = repo.list_changes(session=session, include_held_back=True)
        assert [(c.id, c.alerted, c.suppressed_by) for c in every] == [
            (held_back.id, False, "min_slip_days=30"),
            (mailed.id, True, None),
        ]
        row = session.exec(select(ChangeRow).where(col(ChangeRow.id) == held_back.id)).one()
        assert (row.alerted, row.suppressed_by) == (False, "min_slip_days=30")


def test_alert_on_holds_back_articles_too(tmp_path, registry, own_study, journals):  # noqa: F811
    from tests.test_feeds import DATA

    registry.put(own_study("study_NCT09000001_v1"))
    body = (DATA / "journal_rss2.xml").read_bytes()
    url = journals.publish("/juo.rss", body, last_modified="Fri, 20 Nov 2026 07:00:00 GMT")
    watches = """
[[watch]]
name = "RCC bispecifics"
conditions = ["renal cell carcinoma"]
terms = ["bispecific"]
recipients = ["onc@example.org"]
alert_on = ["publication", "status"]

[[watch]]
name = "RCC CAR-T"
conditions = ["renal cell carcinoma"]
terms = ["CAR-T"]
recipients = ["onc@example.org"]
alert_on = ["status"]
"""
    cli = Cli(write_config(tmp_path, registry, watches=watches, feeds=feed_config(("J Fict Urol Oncol", url))))
    cli("poll")
    new_items = (DATA / "journal_rss2_new_items.xml").read_bytes()
    journals.publish("/juo.rss", body.replace(b"    <item>", new_items + b"    <item>", 1),
                     last_modified="Sat, 21 Nov 2026 07:00:00 GMT")  # fmt: skip
    cli.now = "2026-11-21T11:01:00+00:00"
    cli("poll")
    assert [(c["kind"], c["watch"]) for c in cli.changes()] == [("publication", "RCC bispecifics")]
    held_back = {(c["kind"], c["watch"]): c["suppressed_by"] for c in cli.changes("--all") if not c["alerted"]}
    assert held_back == {("new_article", "RCC CAR-T"): "alert_on", ("publication", "RCC CAR-T"): "alert_on"}
    dry = cli("digest", "--now", "--dry-run")
    assert "RCC bispecifics" in dry and "CD70-directed" not in dry


def test_without_rules_nothing_changes(tmp_path, registry, real_study):
    cli = Cli(write_config(tmp_path, registry))
    registry.put(real_study(REAL_0212))
    cli.now = "2026-02-12T08:00:00+00:00"
    cli("poll")
    registry.put(copy.deepcopy(real_study(REAL_0216)))
    cli.now = "2026-02-16T10:00:00+00:00"
    assert "held back" not in cli("poll")
    every = cli.changes("--all")
    assert every == cli.changes() and len(every) == 4  # two watches, dates and sites each
    assert all(c["alerted"] is True and c["suppressed_by"] is None for c in every)
