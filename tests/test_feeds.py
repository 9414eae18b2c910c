"""Journal feeds end to end: `trialwatch poll` against real feeds served on loopback, baseline,
new items matched to watches (`new_article`) and tied to watched trials (`publication`), the mail
that carries them, and every way a feed fails without losing or inventing anything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlmodel import func, select

from tests.feed_server import FeedFault, FeedServer
from tests.harness import REAL_0216, WATCHES
from watcher.cli.operating import make_service
from watcher.config import load_config
from watcher.store import db
from watcher.store.models import FeedItemRow, FeedState

ELSEVIER = "elsevier_sciencedirect_rss2_2021-12-21.xml"
PUBMED_1, PUBMED_2 = "pubmed_search_rss2_2021-11-23.xml", "pubmed_search_rss2_2021-11-24.xml"
NATURE_1, NATURE_2 = "nature_rss1_rdf_2024-07-18T0012Z.rss", "nature_rss1_rdf_2024-07-18T1205Z.rss"
CAPTCHA = "oup_captcha_page_instead_of_feed_2021-11-24.html"

CART_ITEM = (
    "<item><title><![CDATA[CD70-directed <em>CAR T</em> cells in metastatic clear cell renal cell carcinoma "
    "after checkpoint inhibitors]]></title><description><![CDATA[<p>Publication date: December 2026</p>"
    "<p><b>Source:</b> European Urology</p>]]></description>"
    "<link>https://www.sciencedirect.com/science/article/pii/S0302283826000001?dgcid=rss_sd_all</link>"
    '<guid isPermaLink="false">https://www.sciencedirect.com/science/article/pii/S0302283826000001</guid></item>'
)
TRIAL_ITEM = (
    "<item><title><![CDATA[Tobemstomig plus axitinib in untreated clear cell RCC: first results]]></title>"
    "<description><![CDATA[<p>Randomised phase 2 (NCT05805501) of a PD-1/LAG-3 antibody.</p>]]></description>"
    "<link>https://www.sciencedirect.com/science/article/pii/S0302283826000002?dgcid=rss_sd_all</link>"
    '<guid isPermaLink="false">https://www.sciencedirect.com/science/article/pii/S0302283826000002</guid></item>'
)


@pytest.fixture
def journals() -> Any:
    """A second HTTP server (the registry answers every path of the default one)."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield FeedServer(server)
    server.clear()
    server.stop()


def feed_config(*feeds: tuple[str, str]) -> str:
    blocks = [f'[[feed]]\nname = "{name}"\nurl = "{url}"\n' for name, url in feeds]
    return '[feeds]\nuser_agent = "trialwatch-tests (+mailto:tests@example.org)"\ntimeout = 5\n\n' + "\n".join(blocks)


def with_items(body: bytes, *items: str) -> bytes:
    """A copy of a real RSS 2.0 feed with these items first, as a journal adds new articles."""
    head, tail = body.split(b"<item>", 1)
    return head + "".join(items).encode() + b"<item>" + tail


def article_and_publications(cli: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """The changes by (kind, watch); an RCC CAR-T article and one naming the watched trial give
    exactly: a new article for the CAR-T watch, a publication for each watch holding the trial."""
    changes = {(c["kind"], c["watch"]): c for c in cli.changes()}
    assert set(changes) == {
        ("new_article", "RCC CAR-T"),
        ("publication", "RCC bispecifics"),
        ("publication", "RCC CAR-T"),
    }
    return changes


def stored(tmp_path: Path, model: Any) -> int:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'var' / 'trialwatch.db'}")
    with db.transaction(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_new_articles_and_publications_reach_the_mail(
    cli_for, registry, real_study, journals, feeds_dir, smtp, tmp_path
):
    registry.put(real_study(REAL_0216))
    body = (feeds_dir / ELSEVIER).read_bytes()
    url = journals.publish("/eu.rss", body, etag='"v1"')
    cli = cli_for(smtp=smtp, feeds=feed_config(("European Urology", url)))
    output = cli("poll")
    assert "feed European Urology: baseline: 51 items stored, no alerts" in output

    journals.publish("/eu.rss", with_items(body, CART_ITEM, TRIAL_ITEM), etag='"v2"')
    cli.now = "2026-11-21T11:00:00+00:00"
    output = cli("poll")
    assert journals.headers_of()["if-none-match"] == '"v1"'
    assert "feed European Urology: 2 new items, 3 changes" in output
    assert journals.headers_of()["user-agent"] == "trialwatch-tests (+mailto:tests@example.org)"

    changes = article_and_publications(cli)
    article = changes[("new_article", "RCC CAR-T")]
    assert article["source"] == "feeds" and article["feed"] == "European Urology"
    assert article["title"].startswith("CD70-directed CAR T cells in metastatic")  # HTML stripped
    assert article["link"].startswith("https://www.sciencedirect.com/science/article/pii/S0302283826000001")
    assert article["doi"] is None and article["nct_ids"] == [] and article["nct_id"] is None
    assert (
        '"CAR-T" in title' in article["details"]["why"]
        and '"renal cell carcinoma" in title' in article["details"]["why"]
    )
    publication = changes[("publication", "RCC bispecifics")]
    assert publication["nct_id"] == "NCT05805501" and publication["nct_ids"] == ["NCT05805501"]
    assert publication["title"] == "Tobemstomig plus axitinib in untreated clear cell RCC: first results"
    assert publication["study_title"].startswith("A Study of Immune Checkpoint Inhibitor Combinations With Axitinib")
    assert publication["summary"] == (
        "New article on NCT05805501 in European Urology: "
        "Tobemstomig plus axitinib in untreated clear cell RCC: first results"
    )

    cli("digest", "--now")
    by_rcpt = {r.rcpt_tos[0]: r.message for r in smtp.wait_for(2)}
    onc = by_rcpt["onc@example.org"]
    assert "1 new article" in onc["Subject"] and "1 article on a watched trial" in onc["Subject"]
    text = onc.get_body(("plain",)).get_content()
    assert "New articles:" in text and "Matched: " in text and "European Urology" in text
    assert "New article on NCT05805501 in European Urology: Tobemstomig" in text
    html = onc.get_body(("html",)).get_content()
    assert "CD70-directed CAR T cells" in html and "<em>" not in html

    cli.now = "2026-11-21T12:00:00+00:00"
    assert "feed European Urology: not modified" in cli("poll")
    assert stored(tmp_path, FeedItemRow) == 53


def test_pubmed_links_that_change_on_every_fetch_make_no_new_item(cli_for, registry, journals, feeds_dir, tmp_path):
    url = journals.publish("/pubmed.rss", (feeds_dir / PUBMED_1).read_bytes())
    cli = cli_for(feeds=feed_config(("PubMed RCC search", url)))
    assert "baseline: 15 items stored" in cli("poll")
    journals.publish("/pubmed.rss", (feeds_dir / PUBMED_2).read_bytes())
    cli.now = "2026-11-21T12:00:00+00:00"
    assert "feed PubMed RCC search: 2 new items, 0 changes" in cli("poll")  # the 13 shared items are known
    assert stored(tmp_path, FeedItemRow) == 17


def test_nature_twelve_hours_later_has_four_new_items(cli_for, registry, journals, feeds_dir):
    url = journals.publish("/nature.rss", (feeds_dir / NATURE_1).read_bytes())
    cli = cli_for(feeds=feed_config(("Nature", url)))
    cli("poll")
    journals.publish("/nature.rss", (feeds_dir / NATURE_2).read_bytes())
    cli.now = "2026-11-21T12:00:00+00:00"
    assert "feed Nature: 4 new items, 0 changes" in cli("poll")


def test_a_blocked_feed_fails_alone_and_is_named_in_the_digest(cli_for, registry, own_study, journals, feeds_dir, smtp):
    registry.put(own_study("study_NCT09000001_v1"))
    good = journals.publish("/eu.rss", (feeds_dir / ELSEVIER).read_bytes())
    blocked = journals.publish("/oup.rss", (feeds_dir / CAPTCHA).read_bytes(), content_type="text/html")
    watches = WATCHES.replace('digest = "weekly"', 'digest = "daily"\nsend_empty = true')
    cli = cli_for(smtp=smtp, watches=watches, feeds=feed_config(("European Urology", good), ("OUP journal", blocked)))
    output = cli("poll", code=1)
    assert "feed European Urology: baseline: 51 items stored" in output
    (line,) = [line for line in output.splitlines() if line.startswith("feed OUP journal")]
    assert line.startswith(f"feed OUP journal: FAILED: {blocked}: blocked: the publisher sent an HTML page")
    assert "error: feed OUP journal: " in output
    cli.now = "2026-11-22T07:05:00+00:00"
    cli("digest")
    (note,) = smtp.wait_for(1)
    text = note.message.get_body(("plain",)).get_content()
    assert f"! OUP journal: {blocked}: blocked" in text and "(failing since 2026-11-21 10:00 UTC)" in text


def test_retry_after_backoff_schedules_and_moved_feeds(cli_for, registry, journals, feeds_dir, tmp_path):
    body = (feeds_dir / ELSEVIER).read_bytes()
    busy = journals.publish("/busy.rss", body)
    journals.publish("/new-home.rss", body)
    moved = journals.url("/old-home.rss")
    journals.redirect("/old-home.rss", "/new-home.rss", code=301)
    other = journals.publish("/other.rss", body)
    cli = cli_for(feeds=feed_config(("Busy", busy), ("Moved", moved), ("Other", other)))
    journals.fail_next(FeedFault.status(429, retry_after="600"))  # the first request: Busy
    cli("poll", code=1)
    engine = db.make_engine(f"sqlite:///{tmp_path / 'var' / 'trialwatch.db'}")
    with db.transaction(engine) as session:
        states = {state.name: state for state in session.exec(select(FeedState))}
    assert states["Busy"].error_count == 1 and "HTTP 429" in (states["Busy"].last_error or "")
    retry_at = states["Busy"].next_poll_at
    assert retry_at and abs(retry_at - datetime(2026, 11, 21, 10, 10, tzinfo=UTC)) < timedelta(seconds=5)  # 600 s
    assert states["Moved"].url == journals.url("/new-home.rss")

    cli.now = "2026-11-21T10:02:00+00:00"
    assert "feed Busy: not due yet" in cli("poll")  # `poll` does not override a Retry-After
    service = make_service(load_config(cli.config))
    early = {r.feed: r.status for r in service.poll_feeds(datetime(2026, 11, 21, 10, 5, tzinfo=UTC)).feeds}
    assert early == {"Busy": "not_due", "Moved": "not_due", "Other": "not_due"}  # backoff; each feed's hour
    at = datetime(2026, 11, 21, 11, 3, tzinfo=UTC)  # an hour after the healthy feeds were last polled
    report = {r.feed: r.status for r in service.poll_feeds(at).feeds}
    assert report == {"Busy": "baseline", "Moved": "not_modified", "Other": "not_modified"}
    before = len(journals.requests)
    report = {r.feed: r for r in service.poll_feeds(at + timedelta(minutes=30)).feeds}
    assert {r.status for r in report.values()} == {"not_due"}  # each feed waits its own hour
    assert len(journals.requests) == before
    paths = [r.path for r in journals.requests]
    assert paths.count("/old-home.rss") == 1 and paths.count("/new-home.rss") == 3  # the stored URL is used


def test_a_gone_feed_is_no_longer_polled(cli_for, registry, journals, feeds_dir):
    url = journals.publish("/gone.rss", (feeds_dir / ELSEVIER).read_bytes())
    cli = cli_for(feeds=feed_config(("Gone", url)))
    cli("poll")
    journals.fail_next(FeedFault.status(410))
    cli.now = "2026-11-21T12:00:00+00:00"
    assert "feed Gone: gone (HTTP 410)" in cli("poll")
    before = len(journals.requests)
    cli.now = "2026-11-22T12:00:00+00:00"
    assert "feed Gone: gone (HTTP 410)" in cli("poll")
    assert len(journals.requests) == before


def test_a_truncated_feed_changes_nothing(cli_for, registry, journals, feeds_dir, tmp_path):
    body = (feeds_dir / ELSEVIER).read_bytes()
    url = journals.publish("/eu.rss", body)
    cli = cli_for(feeds=feed_config(("European Urology", url)))
    cli("poll")
    journals.publish("/eu.rss", with_items(body, CART_ITEM))
    journals.fail_next(FeedFault.truncated_document())
    cli.now = "2026-11-21T12:00:00+00:00"
    assert "feed European Urology: FAILED" in cli("poll", code=1)
    assert stored(tmp_path, FeedItemRow) == 51 and cli.changes() == []
    cli.now = "2026-11-21T13:01:00+00:00"  # after the hour of backoff
    assert "1 new items, 1 change" in cli("poll")


def test_a_watch_can_opt_out_of_feeds(cli_for, registry, journals, feeds_dir):
    body = (feeds_dir / ELSEVIER).read_bytes()
    url = journals.publish("/eu.rss", body)
    watches = WATCHES.replace('digest = "weekly"', 'digest = "weekly"\nfeeds = false')
    cli = cli_for(watches=watches, feeds=feed_config(("European Urology", url)))
    cli("poll")
    journals.publish("/eu.rss", with_items(body, CART_ITEM))
    cli.now = "2026-11-21T12:00:00+00:00"
    assert "1 new items, 0 changes" in cli("poll")


def test_preview_shows_matching_feed_items_and_why_and_stores_nothing(cli_for, registry, journals, feeds_dir, tmp_path):
    body = with_items((feeds_dir / ELSEVIER).read_bytes(), CART_ITEM, TRIAL_ITEM)
    url = journals.publish("/eu.rss", body)
    cli = cli_for(feeds=feed_config(("European Urology", url)))
    lines = cli("preview", "RCC CAR-T").splitlines()
    start = lines.index("feed European Urology: 1 of 53 items match")
    assert lines[start + 1].startswith("  CD70-directed CAR T cells in metastatic clear cell renal cell carcinoma")
    assert lines[start + 2].startswith('      matched "renal cell carcinoma" in title; "CAR-T" in title; https://')
    assert "feed European Urology" not in cli("preview", "RCC CAR-T", "--no-feeds")
    assert not (tmp_path / "var" / "trialwatch.db").exists()


WILEY = "wiley_atypon_rss2_2021-12-21.xml"
DOI = "10.1002/ijc.99999"
WILEY_ITEM = (
    f'<item><link>https://onlinelibrary.wiley.com/doi/{DOI}?af=R</link><guid isPermaLink="false">{DOI}</guid>'
    "<title>CAR-T cells against CD70 in renal cell carcinoma</title><description>IJC, EarlyView.</description>"
    f"<prism:doi>{DOI}</prism:doi></item>"
)
PUBMED_ITEM = (
    "<item><title>CAR-T cells against CD70 in renal cell carcinoma.</title>"
    "<link>https://pubmed.ncbi.nlm.nih.gov/39999999/?utm_source=x&amp;ff=20261121&amp;v=2.15.0</link>"
    '<description>Int J Cancer.</description><guid isPermaLink="false">pubmed:39999999</guid>'
    f"<dc:identifier>pmid:39999999</dc:identifier><dc:identifier>doi:{DOI}</dc:identifier></item>"
)


def test_one_paper_in_its_journal_and_in_pubmed_is_one_item(cli_for, registry, journals, feeds_dir, tmp_path):
    wiley, pubmed = (feeds_dir / WILEY).read_bytes(), (feeds_dir / PUBMED_1).read_bytes()
    journal_url = journals.publish("/ijc.rss", wiley)
    pubmed_url = journals.publish("/pubmed.rss", pubmed)
    cli = cli_for(feeds=feed_config(("Int J Cancer", journal_url), ("PubMed", pubmed_url)))
    cli("poll")
    journals.publish("/ijc.rss", with_items(wiley, WILEY_ITEM))
    journals.publish("/pubmed.rss", with_items(pubmed, PUBMED_ITEM))
    cli.now = "2026-11-21T12:00:00+00:00"
    output = cli("poll")
    assert "feed Int J Cancer: 1 new items, 1 change" in output
    assert "feed PubMed: 0 new items, 0 changes" in output  # the same DOI: already known
    (change,) = cli.changes()
    assert change["doi"] == DOI and change["feed"] == "Int J Cancer" and change["watch"] == "RCC CAR-T"
    assert stored(tmp_path, FeedItemRow) == 66 + 15 + 1


# --- our own small feed (runs where ../shared/fixtures is absent) ------------------------------

DATA = Path(__file__).parent / "data"


def test_own_feed_baseline_then_article_and_publication(cli_for, registry, own_study, journals, tmp_path):
    registry.put(own_study("study_NCT09000001_v1"))
    body = (DATA / "journal_rss2.xml").read_bytes()
    url = journals.publish("/juo.rss", body, last_modified="Fri, 20 Nov 2026 07:00:00 GMT")
    cli = cli_for(feeds=feed_config(("J Fict Urol Oncol", url)))
    assert "feed J Fict Urol Oncol: baseline: 2 items stored, no alerts" in cli("poll")
    new_items = (DATA / "journal_rss2_new_items.xml").read_bytes()
    updated = body.replace(b"    <item>", new_items + b"    <item>", 1)
    journals.publish("/juo.rss", updated, last_modified="Sat, 21 Nov 2026 07:00:00 GMT")
    cli.now = "2026-11-21T11:01:00+00:00"
    assert "feed J Fict Urol Oncol: 2 new items, 3 changes" in cli("poll")
    assert journals.headers_of()["if-modified-since"] == "Fri, 20 Nov 2026 07:00:00 GMT"
    changes = article_and_publications(cli)
    article = changes[("new_article", "RCC CAR-T")]
    assert article["title"].startswith("CD70-directed CAR T cells") and article["doi"] == "10.5555/juo.1003"
    assert article["link"] == "https://journal.example/juo/article/1003?utm_source=rss"
    assert changes[("publication", "RCC bispecifics")]["nct_ids"] == ["NCT09000001"]
    cli.now = "2026-11-21T12:02:00+00:00"
    assert "feed J Fict Urol Oncol: not modified" in cli("poll")
    assert stored(tmp_path, FeedItemRow) == 4


def test_a_feed_ttl_longer_than_the_interval_is_honoured(cli_for, registry, journals):
    body = (DATA / "journal_rss2.xml").read_bytes().replace(b"<ttl>60</ttl>", b"<ttl>180</ttl>")
    url = journals.publish("/juo.rss", body)
    cli = cli_for(feeds=feed_config(("J Fict Urol Oncol", url)))
    cli("poll")  # 10:00, baseline; its ttl asks for three hours between polls
    service = make_service(load_config(cli.config))
    statuses = {
        hour: service.poll_feeds(datetime(2026, 11, 21, hour, 1, tzinfo=UTC)).feeds[0].status for hour in (11, 12, 13)
    }
    assert statuses == {11: "not_due", 12: "not_due", 13: "not_modified"}
