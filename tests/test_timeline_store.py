"""The timeline's queries (keyset pages, filters), a study's versions with their cached changes,
its sites' history, articles naming it, the diff between two versions, and the sources table;
on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from sqlalchemy import event

from tests.timeline_data import T0, add_article, add_change, change_rows, insert_changes, store_versions
from watcher.config import DEFAULT_IGNORE, Config, FeedConfig
from watcher.model import ChangeKind, Study
from watcher.registry import studies
from watcher.store import db, repo, timeline
from watcher.store.sources import source_rows
from watcher.store.timeline import ChangeFilter, Cursor


@pytest.fixture
def engine(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    return engine


def all_pages(engine, filters, limit):
    seen, cursor, pages = [], None, 0
    while True:
        with db.transaction(engine) as session:
            page = timeline.change_page(session=session, filters=filters, after=cursor, limit=limit)
        seen += page.changes
        pages += 1
        assert pages <= 100, "the cursor does not move on"
        if page.next_cursor is None:
            return seen, pages
        cursor = Cursor.decode(page.next_cursor.encode())


def test_keyset_pages_walk_every_change_once_newest_first(engine):
    if engine.dialect.name == "postgresql":  # the cursor's time must not depend on the session's zone
        event.listen(engine, "connect", lambda connection, _: connection.execute("SET TIME ZONE 'Asia/Tokyo'"))
        engine.dispose()
    rows = change_rows(123, watches=["A", "B"], nct_ids=["NCT01000001", "NCT01000002"])
    for row in rows[40:50]:  # ten changes detected in the same instant: the id breaks the tie
        row["detected_at"] = T0 + timedelta(days=1)
    insert_changes(engine, rows)
    seen, pages = all_pages(engine, ChangeFilter(), limit=50)
    assert pages == 3
    assert len(seen) == 123 and len({c.id for c in seen}) == 123
    keys = [(c.detected_at, c.id) for c in seen]
    assert keys == sorted(keys, reverse=True)


def test_filters_combine_and_each_narrows(engine):
    insert_changes(engine, change_rows(70, watches=["A", "B"], nct_ids=["NCT01000001", "NCT01000002"]))
    with db.transaction(engine) as session:

        def ids(**kwargs):
            return {
                c.id for c in timeline.change_page(session=session, filters=ChangeFilter(**kwargs), limit=500).changes
            }

        everything = ids()
        assert len(everything) == 70
        only_a = ids(watch="A")
        assert 0 < len(only_a) < 70
        kinds = timeline.change_page(session=session, filters=ChangeFilter(kinds=("status", "dates")), limit=500)
        assert kinds.changes and {c.kind for c in kinds.changes} == {ChangeKind.STATUS, ChangeKind.DATES}
        by_study = timeline.change_page(session=session, filters=ChangeFilter(nct_id="NCT01000002"), limit=500)
        assert by_study.changes and {c.nct_id for c in by_study.changes} == {"NCT01000002"}
        window = timeline.change_page(
            session=session,
            filters=ChangeFilter(since=T0 + timedelta(minutes=10), until=T0 + timedelta(minutes=20)),
            limit=500,
        )
        assert sorted(int(c.summary.split(":")[0].split()[1]) for c in window.changes) == list(range(10, 20))
        words = timeline.change_page(session=session, filters=ChangeFilter(words=("medi5752", "BISPECIFIC")), limit=500)
        assert {c.title for c in words.changes} == {f"Bispecific MEDI5752 trial {n}" for n in range(0, 70, 10)}
        assert ids(watch="A", kinds=("status",)) == only_a & ids(kinds=("status",))
        assert ids(words=("100%",)) == set()  # LIKE wildcards in q are taken literally


def test_a_cursor_not_handed_out_is_refused_in_one_line():
    with pytest.raises(ValueError, match="not one this server handed out"):
        Cursor.decode("bm9wZQ")
    cursor = Cursor(detected_at=T0, id=7)
    assert Cursor.decode(cursor.encode()) == cursor


def test_study_versions_cache_their_changes_and_facts(engine, own_study):
    record = own_study("study_NCT09000001_v1")
    ids = store_versions(engine, record, 5)
    with db.transaction(engine) as session:
        view = studies.study_view(session=session, nct_id="NCT09000001", ignore=DEFAULT_IGNORE)
    assert view is not None and [v.meta.id for v in view.versions] == ids
    assert view.versions[0].changes == ()
    assert all(any(c.kind is ChangeKind.DATES for c in v.changes) for v in view.versions[1:])
    assert [v.facts.enrollment_count for v in view.versions] == [40, 50, 60, 70, 80]
    assert [v.facts.completion.type for v in view.versions] == ["ESTIMATED"] * 4 + ["ACTUAL"]
    with db.transaction(engine) as session:
        cached = [summary for _, summary in timeline.version_summaries(session=session, nct_id="NCT09000001")]
    assert all(summary and summary["ignore"] == studies.ignore_signature(DEFAULT_IGNORE) for summary in cached)
    with db.transaction(engine) as session:  # from the cache: the same
        again = studies.study_view(session=session, nct_id="NCT09000001", ignore=DEFAULT_IGNORE)
    assert again == view


def test_sites_carry_the_date_they_were_added_or_removed(engine, own_study):
    record = own_study("study_NCT09000001_v1")
    first_site = record["protocolSection"]["contactsLocationsModule"]["locations"][0]["facility"]
    store_versions(engine, record, 5)
    with db.transaction(engine) as session:
        view = studies.study_view(session=session, nct_id="NCT09000001", ignore=DEFAULT_IGNORE)
    assert view is not None
    by_name = {s.site.facility: s for s in view.sites}
    assert by_name[first_site].removed_at == T0 + timedelta(days=14)
    assert (
        by_name["Added Hospital 3"].added_at == T0 + timedelta(days=21)
        and by_name["Added Hospital 3"].removed_at is None
    )
    assert by_name["Added Hospital 4"].added_at == T0 + timedelta(days=28)
    still = [s for s in view.sites if s.removed_at is None and s.site.facility.startswith("Added") is False]
    assert all(s.added_at is None for s in still)  # there since the first stored version


def test_diff_between_any_two_versions_and_refuses_another_studys(engine, own_study):
    ids = store_versions(engine, own_study("study_NCT09000001_v1"), 4)
    other = store_versions(engine, own_study("study_NCT09000002_v1"), 1)
    with db.transaction(engine) as session:
        diff = studies.version_diff(session=session, nct_id="NCT09000001", from_id=ids[0], to_id=ids[3],
                                    ignore=DEFAULT_IGNORE)  # fmt: skip
        same = studies.version_diff(session=session, nct_id="NCT09000001", from_id=ids[1], to_id=ids[1],
                                    ignore=DEFAULT_IGNORE)  # fmt: skip
        foreign = studies.version_diff(session=session, nct_id="NCT09000001", from_id=ids[0], to_id=other[0],
                                       ignore=DEFAULT_IGNORE)  # fmt: skip
    assert diff is not None and same is not None and foreign is None
    kinds = {c.kind for c in diff.changes}
    assert {ChangeKind.DATES, ChangeKind.ENROLLMENT, ChangeKind.SITES} <= kinds
    assert same.changes == ()
    enrollment = next(c for c in diff.changes if c.kind is ChangeKind.ENROLLMENT)
    assert ("count", "40", "70") in studies.side_by_side(enrollment)


def test_articles_naming_a_study(engine):
    add_article(engine, title="Paper on two trials", nct_ids=["NCT01000001", "NCT01000002"])
    add_article(engine, title="Paper on another", nct_ids=["NCT01000003"])
    add_article(engine, title="A prefix is not the id", nct_ids=["NCT010000011"])
    with db.transaction(engine) as session:
        found = timeline.articles_naming(session=session, nct_id="NCT01000001")
    assert [a.title for a in found] == ["Paper on two trials"]


def test_the_latest_changes_of_one_watch_for_its_feed(engine):
    insert_changes(engine, change_rows(30, watches=["A", "B"], nct_ids=["NCT01000001"]))
    newest = add_change(engine, watch="A", kind=ChangeKind.STATUS, nct_id="NCT01000001", title="t",
                        summary="newest", when=T0 + timedelta(days=3))  # fmt: skip
    with db.transaction(engine) as session:
        latest = timeline.latest_changes(session=session, watch="A", limit=10)
    assert len(latest) == 10 and latest[0].id == newest and {c.watch for c in latest} == {"A"}


def test_sources_show_counters_and_health(engine):
    config = Config(feed=[FeedConfig(name="JCO", url="https://ascopubs.org/jco.rss"),
                          FeedConfig(name="Lancet", url="https://thelancet.com/onc.rss")])  # fmt: skip
    with db.transaction(engine) as session:
        state = repo.get_watch_state(session=session, name="A")
        state.last_poll_at = state.last_success_at = state.baseline_at = T0
        state.request_count, state.unchanged_count = 12, 3
        feed = repo.get_feed_state(session=session, name="JCO", url="https://ascopubs.org/jco.rss")
        feed.request_count, feed.not_modified_count, feed.last_error, feed.failing_since = 9, 4, "HTTP 503", T0
    with db.transaction(engine) as session:
        rows = source_rows(session=session, config=config, watches=["A", "B"])
    assert [(r.kind, r.name) for r in rows] == [
        ("registry", "A"),
        ("registry", "B"),
        ("feed", "JCO"),
        ("feed", "Lancet"),
    ]
    assert (rows[0].requests, rows[0].not_modified, rows[0].next_poll_at) == (12, 3, T0 + timedelta(hours=6))
    assert rows[1].note == "no baseline yet" and rows[3].note == "never polled"
    assert (rows[2].requests, rows[2].not_modified, rows[2].last_error, rows[2].failing_since) == (9, 4, "HTTP 503", T0)


def test_a_poll_caches_what_the_study_page_shows(changed, tmp_path):
    changed()  # baseline on v1 of NCT09000001, then a poll that finds v2
    engine = db.make_engine(f"sqlite:///{tmp_path / 'var' / 'trialwatch.db'}")
    with db.transaction(engine) as session:
        cached = timeline.version_summaries(session=session, nct_id="NCT09000001")
    assert len(cached) == 2 and all(summary is not None for _, summary in cached)
    polled = cached[1][1]
    with db.transaction(engine) as session:  # the same as computing it afresh on view
        timeline.save_version_summaries(session=session, summaries={meta.id: {} for meta, _ in cached})
    with db.transaction(engine) as session:
        view = studies.study_view(session=session, nct_id="NCT09000001", ignore=DEFAULT_IGNORE)
        fresh = timeline.version_summaries(session=session, nct_id="NCT09000001")[1][1]
    assert view is not None and view.versions[1].changes
    assert polled == fresh


def test_versions_follow_the_configured_noise_rules_and_recompute_when_they_change(engine, own_study):
    record = own_study("study_NCT09000001_v1")
    bookkeeping = copy.deepcopy(record)
    bookkeeping["protocolSection"]["statusModule"]["statusVerifiedDate"] = "2026-11"
    enrolled = copy.deepcopy(bookkeeping)
    enrolled["protocolSection"]["designModule"]["enrollmentInfo"] = {"count": 99, "type": "ESTIMATED"}
    with db.transaction(engine) as session:
        for n, version in enumerate((record, bookkeeping, enrolled)):
            repo.save_study_version(session=session, record=version, study=Study.from_record(version),
                                    fingerprint=f"f{n}", now=T0 + timedelta(days=n))  # fmt: skip
    with db.transaction(engine) as session:
        view = studies.study_view(session=session, nct_id="NCT09000001", ignore=DEFAULT_IGNORE)
    assert view is not None and view.versions[1].changes == ()  # only noise: nothing to show
    assert [c.kind for c in view.versions[2].changes] == [ChangeKind.ENROLLMENT]
    quieter = [*DEFAULT_IGNORE, "protocolSection.designModule.enrollmentInfo"]
    with db.transaction(engine) as session:  # another ignore list: the kept changes are worked out again
        view = studies.study_view(session=session, nct_id="NCT09000001", ignore=quieter)
    assert view is not None and view.versions[2].changes == ()
