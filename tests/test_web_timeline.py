"""The timeline, study, article and source pages, the Atom feed and the study API, over HTTP against
the real app (uvicorn on loopback), on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import feedparser
import pytest

from tests.timeline_data import T0, add_article, add_change, change_rows, insert_changes, store_versions
from tests.web_support import WebSite
from watcher.config import FeedConfig
from watcher.model import ChangeKind
from watcher.store import db, people, repo
from watcher.watch import WatchConfig

HOSTILE = "<img src=x onerror=alert(1)>"
OTHER_WATCH = WatchConfig(name="Bladder <b>watch</b>", terms=["bladder"], recipients=["uro@example.org"])


def seed(site: WebSite, own_study) -> dict[str, int | list[int]]:
    """Two watches; 120 changes a minute apart; NCT09000001 with 5 versions and a hostile title;
    an article naming it; one change whose title and summary are hostile."""
    from tests.web_support import FILE_WATCH

    site.provision(FILE_WATCH, OTHER_WATCH)
    record = own_study("study_NCT09000001_v1")
    record["protocolSection"]["identificationModule"]["briefTitle"] = f"Study {HOSTILE}"
    versions = store_versions(site.engine, record, 5)
    insert_changes(site.engine, change_rows(120, watches=[FILE_WATCH.name, OTHER_WATCH.name],
                                             nct_ids=["NCT09000001", "NCT09000002"]))  # fmt: skip
    hostile = add_change(site.engine, watch=FILE_WATCH.name, kind=ChangeKind.STATUS, nct_id="NCT09000001",
                         title=f"Study {HOSTILE}", summary=f"Status changed {HOSTILE}",
                         when=T0 + timedelta(days=2))  # fmt: skip
    add_change(site.engine, watch=FILE_WATCH.name, kind=ChangeKind.PUBLICATION, nct_id="NCT09000001",
               title=f"Study {HOSTILE}", summary=f"New article on NCT09000001: {HOSTILE}", when=T0 + timedelta(days=1),
               details={"feed": f"JCO {HOSTILE}", "link": "javascript:alert(1)", "nct_ids": ["NCT09000001"],
                        "why": f'"{HOSTILE}" in title', "title": HOSTILE})  # fmt: skip
    add_article(site.engine, title=f"Paper {HOSTILE}", nct_ids=["NCT09000001"])
    return {"versions": versions, "hostile": hostile}


def seed_sources(site: WebSite) -> None:
    """Two feeds in the config (one healthy with counters, one failing) and a polled watch."""
    from tests.web_support import FILE_WATCH

    feeds = [FeedConfig(name="JCO", url="https://ascopubs.org/jco.rss"),
             FeedConfig(name="Lancet <Oncology>", url="https://thelancet.com/onc.rss")]  # fmt: skip
    config = site.config.model_copy(update={"feed": feeds})
    site.app.state.context.config = lambda: config  # the running app reads its config through this
    with db.transaction(site.engine) as session:
        state = repo.get_watch_state(session=session, name=FILE_WATCH.name)
        state.last_poll_at = state.last_success_at = state.baseline_at = T0
        state.request_count, state.unchanged_count = 14, 5
        jco = repo.get_feed_state(session=session, name="JCO", url=feeds[0].url)
        jco.last_poll_at = jco.last_success_at = T0
        jco.next_poll_at, jco.request_count, jco.not_modified_count = T0 + timedelta(hours=1), 30, 21
        lancet = repo.get_feed_state(session=session, name=feeds[1].name, url=feeds[1].url)
        lancet.last_poll_at, lancet.failing_since = T0, T0 - timedelta(hours=3)
        lancet.last_error, lancet.request_count, lancet.error_count = f"HTTP 503 {HOSTILE}", 4, 3


def rows_of(html: str) -> list[str]:
    return re.findall(r'<li class="change kind-[a-z_]+">', html)


def assert_escaped(html: str) -> None:
    assert "<img" not in html and "onerror=alert(1)>" not in html
    assert "javascript:" not in html


def test_pages_need_a_session_and_the_api_a_token(web_server):
    client = web_server.client()
    for path in ("/changes", "/articles", "/sources", "/studies/NCT09000001", "/studies/NCT09000001/diff"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/login"), path
    for path in ("/api/v1/studies/NCT09000001", "/api/v1/studies/NCT09000001/diff?from=1&to=2"):
        assert client.get(path).status_code == 401


def test_timeline_pages_by_keyset_and_keeps_its_filters(web_server, own_study):
    seed(web_server, own_study)
    client = web_server.signed_in("reader@example.org")
    first = client.get("/changes")
    assert first.status_code == 200 and len(rows_of(first.text)) == 50
    seen, page, pages = 0, first, 1
    while True:
        seen += len(rows_of(page.text))
        older = re.search(r'<a class="button" href="([^"]+)" rel="next">', page.text)
        if not older:
            break
        page, pages = client.get(unescape(older.group(1))), pages + 1
        assert page.status_code == 200
    assert (seen, pages) == (122, 3)
    filtered = client.get("/changes", params={"watch": "RCC file watch", "kind": ["dates", "status"], "q": "study"})
    assert filtered.status_code == 200
    kinds = set(re.findall(r'<li class="change kind-([a-z_]+)">', filtered.text))
    assert kinds == {"dates", "status"}
    watches = set(re.findall(r'class="watch-name" href="[^"]+">([^<]+)</a>', filtered.text))
    assert watches == {"RCC file watch"}
    one_watch = client.get("/changes?watch=RCC+file+watch")
    assert "/atom/RCC%20file%20watch.atom?token=" in one_watch.text  # where to follow it in a feed reader
    assert (
        '<a class="button" href="/changes?watch=RCC+file+watch&amp;cursor=' in one_watch.text
    )  # kept on the next page
    by_study = client.get("/changes?nct_id=nct09000002&since=2026-01-05&until=2026-01-05")
    assert by_study.status_code == 200 and rows_of(by_study.text)
    assert set(re.findall(r'<span class="mono">(NCT\d+)</span>', by_study.text)) == {"NCT09000002"}


def test_a_bad_filter_is_named_next_to_its_field(web_server):
    client = web_server.signed_in("reader@example.org")
    response = client.get("/changes?since=yesterday&kind=gossip&nct_id=NCT1&cursor=zzz")
    assert response.status_code == 400
    for message in ("is not a date", "unknown kind", "NCT followed by 8 digits", "not one this server handed out"):
        assert message in response.text


def test_hostile_text_shows_as_text_everywhere(web_server, own_study):
    ids = seed(web_server, own_study)
    client = web_server.signed_in("reader@example.org")
    versions = ids["versions"]
    assert isinstance(versions, list)
    paths = ["/changes", "/changes?q=onerror", "/articles", "/sources", "/studies/NCT09000001",
             f"/studies/NCT09000001/diff?from={versions[0]}&to={versions[4]}",
             "/changes?watch=Bladder+<b>watch</b>"]  # fmt: skip
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        assert_escaped(response.text)
    assert "Study &lt;img src=x onerror=alert(1)&gt;" in client.get("/studies/NCT09000001").text
    assert "Bladder &lt;b&gt;watch&lt;/b&gt;" in client.get("/sources").text


def test_study_page_shows_versions_chart_sites_and_articles(web_server, own_study):
    seed(web_server, own_study)
    client = web_server.signed_in("reader@example.org")
    page = client.get("/studies/NCT09000001").text
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg"') == 4  # two charts, drawn wide and narrow
    assert "Primary completion and completion dates across stored versions" in page
    assert len(re.findall(r'class="(?:actual|estimated)"', page)) >= 15  # 5 versions x 2 dates + 5 enrollment
    assert page.count("<strong>Version ") == 5 and "First stored version." in page
    assert "Gustave Roussy" in page and 'class="removed"' in page  # the first site left at version 3
    assert "Added Hospital 4" in page and "2026-02-02 08:00 UTC" in page  # added with version 5
    assert "Paper &lt;img" in page and "https://clinicaltrials.gov/study/NCT09000001?tab=history" in page
    assert client.get("/studies/NCT01234567").status_code == 404
    assert client.get("/studies/not-an-id").status_code == 404


def test_diff_view_shows_the_fields_side_by_side(web_server, own_study):
    versions = seed(web_server, own_study)["versions"]
    assert isinstance(versions, list)
    client = web_server.signed_in("reader@example.org")
    page = client.get(f"/studies/NCT09000001/diff?from={versions[0]}&to={versions[4]}")
    assert page.status_code == 200
    before_after = r'<td data-label="Version 1" class="before">40</td><td data-label="Version 5" class="after">80</td>'
    assert re.search(before_after, page.text)
    assert "Gustave Roussy" in page.text  # a site removed, on the left
    default = client.get("/studies/NCT09000001/diff")  # the newest two
    assert default.status_code == 200 and "Version 4" in default.text and "Version 5" in default.text
    assert client.get("/studies/NCT09000001/diff?from=x&to=1").status_code == 400
    assert client.get(f"/studies/NCT09000001/diff?from={versions[0]}&to=999999").status_code == 404


def test_study_api_and_its_diff(web_server, own_study):
    versions = seed(web_server, own_study)["versions"]
    assert isinstance(versions, list)
    api = web_server.api(web_server.token("robot@example.org"))
    body = api.get("/api/v1/studies/NCT09000001").json()
    assert body["nct_id"] == "NCT09000001" and body["title"] == f"Study {HOSTILE}" and body["status"] == "RECRUITING"
    assert [v["id"] for v in body["versions"]] == versions and all("stored_at" in v for v in body["versions"])
    assert body["changes"] and {c["nct_id"] for c in body["changes"]} == {"NCT09000001"}
    assert set(body["changes"][0]) >= {"id", "watch", "kind", "source", "summary", "details", "detected_at", "url"}
    diff = api.get(f"/api/v1/studies/NCT09000001/diff?from={versions[0]}&to={versions[2]}")
    assert diff.status_code == 200
    kinds = [c["kind"] for c in diff.json()["changes"]]
    assert "dates" in kinds and "enrollment" in kinds and "sites" in kinds
    one = diff.json()["changes"][0]
    assert set(one) >= {"id", "watch", "kind", "source", "nct_id", "title", "summary", "details", "detected_at", "url"}
    assert api.get("/api/v1/studies/NCT09000001/diff?from=1").status_code == 400
    assert api.get("/api/v1/studies/NCT01234567").status_code == 404
    assert api.get("/api/v1/studies/NCT01234567").json()["error"]


def test_atom_feed_with_a_token_and_stable_ids(web_server, own_study):
    seed(web_server, own_study)
    token = web_server.token("reader@example.org")
    client = web_server.client()  # no session
    first = client.get(f"/atom/RCC%20file%20watch.atom?token={token}")
    assert first.status_code == 200 and first.headers["content-type"].startswith("application/atom+xml")
    again = client.get(f"/atom/RCC%20file%20watch.atom?token={token}")
    parsed, reparsed = feedparser.parse(first.content), feedparser.parse(again.content)
    assert parsed.bozo == 0 and parsed.version == "atom10"
    assert len(parsed.entries) == 62  # 60 of the 120 changes are this watch's, and the two added
    assert [e.id for e in parsed.entries] == [e.id for e in reparsed.entries]
    assert len({e.id for e in parsed.entries}) == 62 and all(e.id.startswith("tag:") for e in parsed.entries)
    assert parsed.entries[0].title == f"NCT09000001, status: Status changed {HOSTILE}"  # escaped in XML, text here
    assert b"<img" not in first.content
    assert parsed.entries[0].link.endswith("/studies/NCT09000001")
    for bad in ("wrong", ""):
        assert client.get(f"/atom/RCC%20file%20watch.atom?token={bad}").status_code == 404
    assert client.get(f"/atom/No%20such%20watch.atom?token={token}").status_code == 404
    with db.transaction(web_server.engine) as session:
        for info in people.list_tokens(session=session):
            people.revoke_token(session=session, token_id=info.id)
    assert client.get(f"/atom/RCC%20file%20watch.atom?token={token}").status_code == 404


def test_sources_table(web_server, own_study):
    seed(web_server, own_study)
    seed_sources(web_server)
    client = web_server.signed_in("reader@example.org")
    page = client.get("/sources")
    assert page.status_code == 200
    cells = [re.sub(r"<[^>]+>", " ", row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page.text, flags=re.S)[1:]]
    rows = [" ".join(unescape(cell).split()) for cell in cells]
    assert len(rows) == 4  # two watches on the registry, two feeds
    assert rows[0].startswith("ClinicalTrials.gov watch Bladder <b>watch</b>") and "no baseline yet" in rows[0]
    assert "watch RCC file watch" in rows[1] and "ok 2026-01-05 08:00 UTC" in rows[1] and rows[1].endswith("14 5")
    assert "2026-01-05 14:00 UTC" in rows[1]  # the next poll: the last one plus the 6 h interval
    assert rows[2].startswith("JCO feed") and "2026-01-05 09:00 UTC" in rows[2] and rows[2].endswith("30 21")
    assert "failing since 2026-01-05 05:00 UTC" in rows[3] and f"HTTP 503 {HOSTILE}" in rows[3]
    assert_escaped(page.text)


@pytest.mark.parametrize("path", ["/changes?kind=publication", "/articles"])
def test_articles_show_journal_why_and_named_trials_but_no_unsafe_link(web_server, own_study, path):
    seed(web_server, own_study)
    client = web_server.signed_in("reader@example.org")
    page = client.get(path).text
    assert "JCO &lt;img" in page and "matched &#34;&lt;img" in page
    assert '<a class="mono" href="/studies/NCT09000001">NCT09000001</a>' in page
    assert "read the article" in page  # the seeded feed changes carry an https link
    assert_escaped(page)


def test_held_back_changes_stay_out_of_the_timeline_atom_and_api_unless_asked(web_server):
    """Issue 15: a change a watch rule held back is stored but never in the timeline by default,
    never in the Atom feed; the timeline's "show held back" switch and the API's held_back=1 show it."""
    from tests.web_support import FILE_WATCH

    web_server.provision(FILE_WATCH)
    with db.transaction(web_server.engine) as session:
        for summary, rule in (("Dates moved 12 days", "min_slip_days=30"), ("Status changed to Recruiting", None)):
            kind = ChangeKind.DATES if rule else ChangeKind.STATUS
            repo.add_change(session=session, watch=FILE_WATCH.name, kind=kind,
                            source="clinicaltrials", nct_id="NCT09000001", title="Study", summary=summary, details={},
                            recipients=["onc@example.org"], now=T0, suppressed_by=rule)  # fmt: skip
    client = web_server.signed_in("reader@example.org")
    default = unescape(client.get("/changes").text)
    assert "Status changed to Recruiting" in default and "Dates moved 12 days" not in default
    shown = client.get("/changes?held_back=1")
    assert shown.status_code == 200 and "Dates moved 12 days" in unescape(shown.text)
    assert "held back by min_slip_days=30" in unescape(shown.text)
    assert 'name="held_back" value="1" checked' in shown.text  # the switch stays on in the bookmarkable view
    token = web_server.token("feeds@example.org")
    feed = feedparser.parse(client.get(f"/atom/RCC%20file%20watch.atom?token={token}").content)
    assert [entry.summary for entry in feed.entries] == ["Status changed to Recruiting"]
    api = {"Authorization": f"Bearer {token}"}
    alerted = client.get("/api/v1/changes", headers=api).json()["changes"]
    assert [c["summary"] for c in alerted] == ["Status changed to Recruiting"]
    every = client.get("/api/v1/changes?held_back=1", headers=api).json()["changes"]
    assert {(c["summary"], c["alerted"], c["suppressed_by"]) for c in every} == {
        ("Dates moved 12 days", False, "min_slip_days=30"), ("Status changed to Recruiting", True, None)}  # fmt: skip
