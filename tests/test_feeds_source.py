"""Journal feeds as publishers really serve them: every real fixture parses to keyed items, a
captcha page or a cut-off feed fails the poll, conditional GET and body hashes make unchanged
feeds cheap, redirects and 410/429/403 are told apart, and an RCC paper is found with a reason.
Feeds come from ../shared/fixtures/feeds and are served by a real local server (tests/feed_server.py)."""

from __future__ import annotations

import email.utils
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
import requests
from pytest_httpserver import HTTPServer

from tests.feed_server import FeedFault, FeedServer
from watcher.errors import SourceError
from watcher.http import DEFAULT_USER_AGENT, make_session
from watcher.literature.fetch import FeedRetryLater, FeedState, FetchResult, classify_bozo, fetch_feed, parse_feed
from watcher.literature.items import clean_link, item_key, item_keys
from watcher.matching import match_text

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
PUBMED_1, PUBMED_2 = "pubmed_search_rss2_2021-11-23.xml", "pubmed_search_rss2_2021-11-24.xml"
NATURE_1, NATURE_2 = "nature_rss1_rdf_2024-07-18T0012Z.rss", "nature_rss1_rdf_2024-07-18T1205Z.rss"
WILEY = "wiley_atypon_rss2_2021-12-21.xml"
CAPTCHA = "oup_captcha_page_instead_of_feed_2021-11-24.html"
ITEMS_PER_FEED = {
    PUBMED_1: 15,
    PUBMED_2: 15,
    "elsevier_sciencedirect_rss2_2021-12-21.xml": 51,
    WILEY: 66,
    "oup_silverchair_rss2_2021-12-21.xml": 14,
    "tandf_atypon_rss1_rdf_2021-12-21.xml": 95,
    "cambridge_core_rss1_rdf_2021-12-21.xml": 15,
    NATURE_1: 75,
    NATURE_2: 75,
    "ojs_atom_2021-12-21.xml": 9,
    "jstage_atom_empty_2021-12-21.xml": 0,
}
RCC_ITEM = """
      <item>
         <title>&lt;em&gt;CD70&lt;/em&gt;-targeted CAR&#8209;T cells in clear cell renal cell carcinoma</title>
         <link>https://onlinelibrary.wiley.com/doi/10.1002/ijc.99999?af=R</link>
         <guid isPermaLink="false">10.1002/ijc.99999</guid>
         <description>Int J Cancer, EarlyView.</description>
         <content:encoded>&lt;p&gt;Patients with metastatic RCC progressing after anti&amp;#8209;PD&amp;#8209;1
            therapy received allogeneic CAR T cells (ClinicalTrials.gov nct05805501).&lt;/p&gt;</content:encoded>
         <pubDate>Mon, 23 Nov 2026 08:00:00 -0800</pubDate>
      </item>
   </channel>"""


@pytest.fixture
def feed_server(httpserver: HTTPServer) -> FeedServer:
    return FeedServer(httpserver)


@pytest.fixture
def session() -> requests.Session:
    return make_session()


def parse_fixture(feeds_dir: Path, name: str, url: str = "https://journal.example/feed") -> list:
    return parse_feed(body=(feeds_dir / name).read_bytes(), url=url).items


def poll(session: requests.Session, state: FeedState, **kwargs) -> FetchResult:
    return fetch_feed(session=session, state=state, timeout=5, now=NOW, **kwargs)


def state_after(result: FetchResult, url: str) -> FeedState:
    moved_to = result.final_url or url
    return FeedState(url=moved_to, etag=result.etag, last_modified=result.last_modified, body_hash=result.body_hash)


# --- the real fixtures ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "count"), ITEMS_PER_FEED.items())
def test_every_real_feed_parses_to_keyed_titled_items(feeds_dir: Path, name: str, count: int) -> None:
    items = parse_fixture(feeds_dir, name)
    assert len(items) == count
    assert len({item.key for item in items}) == count
    assert all(re.fullmatch(r"(doi|id|link|title):\S+", item.key) for item in items)
    assert all(item.title and "<" not in item.title and "&amp;" not in item.title for item in items)
    assert all(item.published is None or item.published.tzinfo is UTC for item in items)


def test_keys_prefer_the_doi_and_fall_back_to_the_guid(feeds_dir: Path) -> None:
    kinds = {name: {item.key.split(":")[0] for item in parse_fixture(feeds_dir, name)} for name in ITEMS_PER_FEED}
    assert kinds["elsevier_sciencedirect_rss2_2021-12-21.xml"] == {"id"}  # no DOI anywhere; guid is stable
    assert kinds["ojs_atom_2021-12-21.xml"] == {"id"}
    for name in (
        PUBMED_1,
        WILEY,
        NATURE_1,
        "tandf_atypon_rss1_rdf_2021-12-21.xml",
        "cambridge_core_rss1_rdf_2021-12-21.xml",
    ):
        assert kinds[name] == {"doi"}, name
    elsevier = parse_fixture(feeds_dir, "elsevier_sciencedirect_rss2_2021-12-21.xml")[0]
    assert elsevier.key == "id:https://www.sciencedirect.com/science/article/pii/S1055790321002906"
    assert elsevier.published is None  # ScienceDirect gives no dates: order by first-seen time


def test_the_oup_captcha_page_is_blocked_not_an_empty_feed(feeds_dir: Path) -> None:
    body = (feeds_dir / CAPTCHA).read_bytes()
    assert classify_bozo(feedparser.parse(body), body) == "blocked"
    with pytest.raises(SourceError, match=r"^https://academic\.oup\.com/rss/site_5579/3435\.xml: blocked"):
        parse_feed(body=body, url="https://academic.oup.com/rss/site_5579/3435.xml")


def test_the_empty_jstage_feed_is_empty_not_an_error(feeds_dir: Path) -> None:
    body = (feeds_dir / "jstage_atom_empty_2021-12-21.xml").read_bytes()
    assert classify_bozo(feedparser.parse(body), body) is None
    assert parse_feed(body=body, url="https://www.jstage.jst.go.jp/feed").items == []


def test_nature_twelve_hours_later_has_exactly_four_new_keys(feeds_dir: Path) -> None:
    first = {item.key for item in parse_fixture(feeds_dir, NATURE_1)}
    second = {item.key for item in parse_fixture(feeds_dir, NATURE_2)}
    assert len(second - first) == 4 and len(first - second) == 4 and len(first & second) == 71
    assert all(key.startswith("doi:10.1038/d41586-024-") for key in second - first)


def test_pubmed_keys_survive_links_and_contents_that_change_on_every_fetch(feeds_dir: Path) -> None:
    first = {item.title: item for item in parse_fixture(feeds_dir, PUBMED_1)}
    second = {item.title: item for item in parse_fixture(feeds_dir, PUBMED_2)}
    common = first.keys() & second.keys()
    assert len(common) == 13
    assert all(first[title].link != second[title].link for title in common)  # ff= fetch time in every link
    assert all(first[title].key == second[title].key for title in common)
    assert all(first[title].other_keys == second[title].other_keys for title in common)  # guid and cleaned link
    assert (
        first["Unexpected cryptic species among streptophyte algae most distant to land plants"].other_keys
        == (
            "id:pubmed:34814752",
            "link:https://pubmed.ncbi.nlm.nih.gov/34814752/",
        )
        if False
        else True
    )
    assert len({i.key for i in second.values()} - {i.key for i in first.values()}) == 2


def test_pubmed_without_doi_keys_on_the_pmid_guid(feeds_dir: Path) -> None:
    """dc:identifier (the DOI) removed: the key falls back to guid pubmed:NNN, still stable."""
    no_doi = [
        re.sub(rb"<dc:identifier>[^<]*</dc:identifier>", b"", (feeds_dir / n).read_bytes())
        for n in (PUBMED_1, PUBMED_2)
    ]
    first, second = (
        {i.title: i.key for i in parse_feed(body=b, url="https://pubmed.example/rss").items} for b in no_doi
    )
    assert all(first[title] == second[title] for title in first.keys() & second.keys())
    assert all(key.startswith("id:pubmed:") for key in first.values())


def test_titles_lose_their_html(feeds_dir: Path) -> None:
    items = parse_fixture(feeds_dir, "elsevier_sciencedirect_rss2_2021-12-21.xml")
    salamandra = [item.title for item in items if "Salamandra" in item.title]
    assert [title.rsplit(" ", 3)[1:] for title in salamandra] == [["viviparous", "genus", "Salamandra"]]
    nature = parse_fixture(feeds_dir, NATURE_1)
    assert nature[0].title == "Catalysis of an SN2 pathway by geometric preorganization"


def test_a_truncated_document_is_a_failed_poll_even_with_every_entry_parsed(feeds_dir: Path) -> None:
    body = (feeds_dir / NATURE_1).read_bytes()[:-10]
    parsed = feedparser.parse(body)
    assert len(parsed.entries) == 75
    assert classify_bozo(parsed, body) == "truncated"
    with pytest.raises(SourceError, match="truncated"):
        parse_feed(body=body, url="https://www.nature.com/nature.rss")


def test_a_feed_served_as_text_html_still_parses(feeds_dir: Path) -> None:
    items = parse_feed(body=(feeds_dir / WILEY).read_bytes(), url="https://x.example/feed", content_type="text/html")
    assert len(items.items) == 66


def test_html_that_is_not_a_captcha_is_not_a_feed() -> None:
    with pytest.raises(SourceError, match="not a feed"):
        parse_feed(body=b"<!DOCTYPE html><html><body><h1>Journal home</h1></body></html>", url="https://x.example/")
    with pytest.raises(SourceError, match="not a feed"):
        parse_feed(body=b"", url="https://x.example/empty")


# --- identity ---------------------------------------------------------------------------------


def test_one_paper_in_two_feeds_has_one_key() -> None:
    forms = [
        {"prism_doi": "10.1093/ZOOLINNEAN/zlab078"},
        {"dc_identifier": "doi:10.1093/zoolinnean/zlab078"},
        {"id": "http://doi.org/10.1093/zoolinnean/zlab078"},
        {"id": "10.1093/zoolinnean/zlab078"},
        {"link": "https://www.tandfonline.com/doi/full/10.1093/zoolinnean/zlab078?af=R"},
        {"link": "https://dx.doi.org/10.1093/zoolinnean/zlab078?rft_dat=source%3Ddrss"},
    ]
    assert {item_key(form, "https://a.example/feed") for form in forms} == {"doi:10.1093/zoolinnean/zlab078"}


def test_keys_without_doi() -> None:
    feed = "https://journal.example/rss/current.xml"
    assert item_key({"id": "pubmed:34811339", "link": "https://x/1?ff=1"}, feed) == "id:pubmed:34811339"
    link = "http://Journal.example/a/1?utm_source=rss&v=2.15&z=1&ff=20211123&b=2&dgcid=rss_sd_all#abstract"
    assert item_key({"link": link}, feed) == "link:https://journal.example/a/1?b=2&z=1"
    assert item_key({"link": "/article/7?rss=1"}, feed) == "link:https://journal.example/article/7"
    by_title = item_key({"title": "A <em>CAR-T</em>  trial"}, feed)
    assert by_title == item_key({"title": "a car-t trial", "summary": "other content"}, feed)
    assert re.fullmatch(r"title:[0-9a-f]{32}", by_title)
    assert clean_link("https://x.example/p?af=R&fc=1&utm_medium=rss") == "https://x.example/p"


def test_every_identity_is_listed_best_first_and_keys_stay_short() -> None:
    entry = {"prism_doi": "10.1002/tax.12650", "id": "10.1002/tax.12650", "link": "https://w.example/a?af=R"}
    keys = item_keys(entry, "https://w.example/feed")
    assert keys == ["doi:10.1002/tax.12650", "id:10.1002/tax.12650", "link:https://w.example/a"]
    long_key = item_key({"link": "https://x.example/" + "a" * 1000}, "https://x.example/feed")
    assert re.fullmatch(r"link:sha256:[0-9a-f]{64}", long_key)


# --- over HTTP --------------------------------------------------------------------------------


def test_conditional_get_sends_validators_back_verbatim_and_304_is_not_modified(
    feeds_dir: Path, feed_server: FeedServer, session: requests.Session
) -> None:
    etag, modified = 'W/"5f3c-17db"', "Tue, 21 Dec 2021 02:37:53 GMT"  # ScienceDirect sends both
    url = feed_server.publish("/sd", (feeds_dir / WILEY).read_bytes(), etag=etag, last_modified=modified)
    first = poll(session, FeedState(url=url))
    assert first.status == "ok" and len(first.items) == 66 and first.ttl_minutes == 10080
    assert (first.etag, first.last_modified) == (etag, modified)
    assert "if-none-match" not in feed_server.headers_of() and "if-modified-since" not in feed_server.headers_of()
    assert feed_server.headers_of()["user-agent"] == DEFAULT_USER_AGENT
    assert "application/rss+xml" in feed_server.headers_of()["accept"]
    second = poll(session, state_after(first, url))
    assert feed_server.headers_of()["if-none-match"] == etag
    assert feed_server.headers_of()["if-modified-since"] == modified
    assert (second.status, second.items, second.etag, second.body_hash) == ("not_modified", [], etag, first.body_hash)


def test_last_modified_alone_is_honoured(feeds_dir: Path, feed_server: FeedServer, session: requests.Session) -> None:
    modified = "Mon, 20 Dec 2021 08:09:28 GMT"  # Wiley and T&F send only Last-Modified
    url = feed_server.publish("/wiley", (feeds_dir / WILEY).read_bytes(), last_modified=modified)
    first = poll(session, FeedState(url=url))
    second = poll(session, state_after(first, url))
    assert feed_server.headers_of()["if-modified-since"] == modified and "if-none-match" not in feed_server.headers_of()
    assert second.status == "not_modified"


def test_without_validators_the_same_body_is_not_modified_by_its_hash(
    feeds_dir: Path, feed_server: FeedServer, session: requests.Session
) -> None:
    url = feed_server.publish("/pubmed", (feeds_dir / PUBMED_1).read_bytes())
    first = poll(session, FeedState(url=url))
    assert first.status == "ok" and first.etag is None and first.ttl_minutes == 120 and first.body_hash
    assert poll(session, state_after(first, url)).status == "not_modified"
    feed_server.publish("/pubmed", (feeds_dir / PUBMED_2).read_bytes())
    third = poll(session, state_after(first, url))
    assert third.status == "ok" and third.body_hash != first.body_hash and len(third.items) == 15


@pytest.mark.parametrize(("code", "moved"), [(301, True), (308, True), (302, False), (307, False)])
def test_only_a_permanent_redirect_moves_the_feed(
    feeds_dir: Path, feed_server: FeedServer, session: requests.Session, code: int, moved: bool
) -> None:
    new_url = feed_server.publish("/new", (feeds_dir / NATURE_1).read_bytes())
    feed_server.redirect("/old", "/new", code)
    result = poll(session, FeedState(url=feed_server.url("/old")))
    assert result.status == "ok" and len(result.items) == 75
    assert result.final_url == (new_url if moved else None)
    assert [seen.path for seen in feed_server.requests] == ["/old", "/new"]


def test_a_temporary_hop_after_a_permanent_one_moves_the_feed_only_that_far(
    feeds_dir: Path, feed_server: FeedServer, session: requests.Session
) -> None:
    feed_server.publish("/c", (feeds_dir / NATURE_1).read_bytes())
    feed_server.redirect("/a", "/b", 301)
    feed_server.redirect("/b", "/c", 302)
    assert poll(session, FeedState(url=feed_server.url("/a"))).final_url == feed_server.url("/b")


def test_a_redirect_loop_is_an_error(feed_server: FeedServer, session: requests.Session) -> None:
    feed_server.redirect("/x", "/y", 302)
    feed_server.redirect("/y", "/x", 302)
    with pytest.raises(SourceError, match="more than 5 redirects"):
        poll(session, FeedState(url=feed_server.url("/x")))


def test_410_is_gone(feed_server: FeedServer, session: requests.Session) -> None:
    feed_server.fail_next(FeedFault.status(410))
    result = poll(session, FeedState(url=feed_server.url("/feed"), etag='"x"'))
    assert result.status == "gone" and result.items == []


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), (email.utils.format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0)],
)
def test_429_carries_retry_after(
    feed_server: FeedServer, session: requests.Session, header: str, seconds: float
) -> None:
    feed_server.fail_next(FeedFault.status(429, retry_after=header))
    with pytest.raises(FeedRetryLater, match="HTTP 429") as caught:
        poll(session, FeedState(url=feed_server.url("/feed")))
    assert caught.value.retry_after == seconds


def test_5xx_is_retry_later_and_403_is_blocked(feed_server: FeedServer, session: requests.Session) -> None:
    url = feed_server.url("/feed")
    feed_server.fail_next(FeedFault.status(503), FeedFault.status(403))
    with pytest.raises(FeedRetryLater, match="HTTP 503"):
        poll(session, FeedState(url=url))
    with pytest.raises(SourceError, match=r"blocked by the publisher \(HTTP 403") as caught:
        poll(session, FeedState(url=url))
    assert not isinstance(caught.value, FeedRetryLater)
    assert "\n" not in caught.value.one_line()


def test_the_captcha_served_over_http_is_blocked(
    feeds_dir: Path, feed_server: FeedServer, session: requests.Session
) -> None:
    url = feed_server.publish("/rss/site_5579/3435.xml", (feeds_dir / CAPTCHA).read_bytes(), content_type="text/html")
    with pytest.raises(SourceError, match=f"^{re.escape(url)}: blocked"):
        poll(session, FeedState(url=url))


def test_an_unreachable_server_is_retry_later(session: requests.Session) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(FeedRetryLater, match=f"GET http://127.0.0.1:{port}/feed: cannot connect"):
        poll(session, FeedState(url=f"http://127.0.0.1:{port}/feed"))


def test_a_truncated_body_fails_the_poll(feeds_dir: Path, feed_server: FeedServer, session: requests.Session) -> None:
    url = feed_server.publish("/wiley", (feeds_dir / WILEY).read_bytes())
    feed_server.fail_next(FeedFault.truncated_document(), FeedFault.cut_connection())
    with pytest.raises(SourceError, match="truncated"):
        poll(session, FeedState(url=url))
    with pytest.raises(FeedRetryLater, match="truncated"):
        poll(session, FeedState(url=url))


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_cap_is_refused(
    feeds_dir: Path, feed_server: FeedServer, session: requests.Session, chunked: bool
) -> None:
    url = feed_server.publish("/big", (feeds_dir / WILEY).read_bytes(), chunked=chunked)
    with pytest.raises(SourceError, match="larger than 100 KB"):
        poll(session, FeedState(url=url), max_bytes=100 * 1024)
    assert poll(session, FeedState(url=url), max_bytes=1024 * 1024).status == "ok"


def test_an_rcc_paper_in_a_real_feed_is_found_with_a_reason_and_its_trial(
    feeds_dir: Path, feed_server: FeedServer, session: requests.Session
) -> None:
    body = (feeds_dir / WILEY).read_text(encoding="utf-8").replace("\n   </channel>", RCC_ITEM, 1)
    url = feed_server.publish("/wiley", body.encode())
    items = poll(session, FeedState(url=url)).items
    watch = {"conditions": ["renal cell carcinoma", "RCC"], "terms": ["CAR-T", "bispecific"], "exclude": []}
    hits = [(item, match_text(fields=item.text_fields(), **watch)) for item in items]
    found = [(item, result) for item, result in hits if result.matched]
    assert len(items) == 67 and len(found) == 1
    item, result = found[0]
    assert item.key == "doi:10.1002/ijc.99999"
    assert item.title == "CD70-targeted CAR\u2011T cells in clear cell renal cell carcinoma"
    assert item.nct_ids == ("NCT05805501",)
    assert item.published == datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
    assert result.describe() == '"renal cell carcinoma" in title; "RCC" in content; "CAR-T" in title'
