"""PubMed end to end: `trialwatch poll` against a local E-utilities server (tests/eutils_server.py)
and the local registry, on SQLite and PostgreSQL: a baseline, then new articles matched by the
watch's words (`new_article`) and articles that name a watched trial in their data bank list or
their abstract (`publication`), one item per paper whichever source or watch saw it, each watch
told once; every fault a failed poll that stores nothing for that watch; the API key in no log
line even at debug level; `queries`, `preview`, `check` and the daemon's job table."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlmodel import select

from tests.eutils_server import EutilsFault, EutilsServer
from tests.feed_server import FeedServer
from tests.harness import WATCHES
from watcher.cli.shared import make_service
from watcher.config import load_config
from watcher.daemon.scheduler import Runtime, build_scheduler, reload_config
from watcher.store import db
from watcher.store.models import ArticleWatch, ChangeRow, FeedItemRow, PubmedState

DATA = Path(__file__).parent / "data"
RCC = DATA / "pubmed_rcc.xml"
KEY = "ncbi-key-4f1c2a9e7b3d5e6f"
NOW = datetime(2026, 11, 21, 10, tzinfo=UTC)
NEW = {"99000002", "99000003", "99000004", "99000005"}


def second_server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def eutils() -> Iterator[EutilsServer]:
    """A server of its own (the registry answers every path of the default one)."""
    for server in second_server():
        yield EutilsServer(server)


@pytest.fixture
def journals() -> Iterator[FeedServer]:
    for server in second_server():
        yield FeedServer(server)


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TRIALWATCH_NCBI_API_KEY", KEY)  # with a key NCBI allows 10 requests a second
    return KEY


def pubmed_config(eutils: EutilsServer, rate: float = 10, extra: str = "") -> str:
    return (
        f'[pubmed]\nenabled = true\nbase_url = "{eutils.base_url}"\nemail = "tests@example.org"\n'
        f"requests_per_second = {rate}\nbackoff_seconds = 0.01\nmax_attempts = 3\n{extra}"
    )


def stored(database_url: str, model: Any, **where: Any) -> list[Any]:
    engine = db.make_engine(database_url)
    with db.transaction(engine) as session:
        rows = list(session.exec(select(model)))
        session.expunge_all()
    return [row for row in rows if all(getattr(row, k) == v for k, v in where.items())]


def baseline(cli_for, registry, own_study, eutils, database_url, **kwargs) -> Any:
    """Registry study NCT09000001 (both watches hold it), article 99000001 entered the day before."""
    registry.put(own_study("study_NCT09000001_v1"))
    eutils.add_file(RCC, date(2026, 11, 20), pmids={"99000001"})
    cli = cli_for(database_url=database_url, pubmed=pubmed_config(eutils), **kwargs)
    cli.last_poll = cli("poll")
    eutils.add_file(RCC, date(2026, 11, 22), pmids=NEW)
    cli.now = "2026-11-22T10:00:00+00:00"
    return cli


def test_baseline_then_new_articles_and_publications_reach_the_mail(
    cli_for, registry, own_study, eutils, key, database_url, smtp
):
    cli = baseline(cli_for, registry, own_study, eutils, database_url, smtp=smtp)
    assert "pubmed RCC bispecifics: baseline: 1 articles found, 1 new stored, no alerts" in cli.last_poll
    assert "pubmed RCC CAR-T: baseline: 0 articles found, 0 new stored, no alerts" in cli.last_poll
    assert cli.changes() == []

    output = cli("poll")
    assert "pubmed RCC bispecifics: 3 found, 2 fetched, 2 new, 2 changes" in output  # 99000001 already seen
    assert "pubmed RCC CAR-T: 3 found, 3 fetched, 1 new, 3 changes" in output  # 3 and 4 stored, unseen by it
    searches = [r.params for r in eutils.of("esearch")]
    assert searches[-2]["term"] == '"renal cell carcinoma"[tiab] AND "CAR-T"[tiab]'
    assert (searches[-2]["mindate"], searches[-2]["maxdate"]) == ("2026/11/18", "2026/11/22")  # 3 days' overlap
    assert searches[-1]["term"] == "NCT09000001[si] OR NCT09000001[tiab]"

    changes = {(c["kind"], c["watch"], c["pmid"]): c for c in cli.changes()}
    assert set(changes) == {
        ("new_article", "RCC CAR-T", "99000002"),
        *{
            ("publication", watch, pmid)
            for watch in ("RCC bispecifics", "RCC CAR-T")
            for pmid in ("99000003", "99000004")
        },
    }
    article = changes[("new_article", "RCC CAR-T", "99000002")]
    assert article["source"] == "pubmed" and article["nct_id"] is None and article["doi"] == "10.5555/juo.1003"
    assert article["journal"] == "J Fict Urol Oncol" and article["link"] == "https://pubmed.ncbi.nlm.nih.gov/99000002/"
    assert (
        article["title"] == "CD70-directed CAR T cells in metastatic renal cell carcinoma after checkpoint inhibitors."
    )
    assert '"renal cell carcinoma" in title' in article["why"] and '"CAR-T" in title' in article["why"]
    by_bank = changes[("publication", "RCC bispecifics", "99000003")]
    assert (
        by_bank["nct_id"] == "NCT09000001"
        and by_bank["study_title"]
        == registry.studies["NCT09000001"]["protocolSection"]["identificationModule"]["briefTitle"]
    )
    assert by_bank["summary"] == (
        "New article on NCT09000001 in J Fict Immunother (via PubMed; named in its ClinicalTrials.gov data bank "
        "entry): Two-year follow-up of dual checkpoint blockade in kidney tumours."
    )
    by_text = changes[("publication", "RCC CAR-T", "99000004")]
    assert "named in its abstract" in by_text["summary"] and by_text["doi"] is None
    assert by_text["details"]["named_by"] == {"NCT09000001": "its abstract"}

    assert len(stored(database_url, FeedItemRow)) == 4  # 99000005 was never asked for: it names no trial
    assert len(stored(database_url, ArticleWatch)) == 6
    cli.now = "2026-11-22T12:00:00+00:00"
    again = cli("poll")
    assert "pubmed RCC bispecifics: 3 found, 0 fetched, 0 new, 0 changes" in again
    assert "pubmed RCC CAR-T: 3 found, 0 fetched, 0 new, 0 changes" in again

    cli("digest", "--now")
    by_rcpt = {r.rcpt_tos[0]: r.message for r in smtp.wait_for(2)}
    onc = by_rcpt["onc@example.org"]
    assert "1 new article" in onc["Subject"] and "2 articles on watched trials" in onc["Subject"]
    text = onc.get_body(("plain",)).get_content()
    assert "J Fict Urol Oncol, 2026-11-20, doi:10.5555/juo.1003 (found in PubMed, PMID 99000002)" in text
    assert "https://pubmed.ncbi.nlm.nih.gov/99000003/" in text and "named in its abstract" in text
    html = onc.get_body(("html",)).get_content()
    assert "found in PubMed (PMID 99000002)" in html


def test_a_paper_in_its_journal_feed_and_in_pubmed_is_one_item_told_once(
    cli_for, registry, own_study, eutils, journals, key, database_url
):
    registry.put(own_study("study_NCT09000001_v1"))
    body = (DATA / "journal_rss2.xml").read_bytes()
    url = journals.publish("/juo.rss", body)
    feeds = f'[[feed]]\nname = "J Fict Urol Oncol"\nurl = "{url}"\n'
    cli = cli_for(database_url=database_url, feeds=feeds, pubmed=pubmed_config(eutils))
    cli("poll")
    new_items = (DATA / "journal_rss2_new_items.xml").read_bytes()
    journals.publish("/juo.rss", body.replace(b"    <item>", new_items + b"    <item>", 1))
    eutils.add_file(RCC, date(2026, 11, 21), pmids={"99000002"})  # its DOI upper-case: 10.5555/JUO.1003
    cli.now = "2026-11-21T11:01:00+00:00"
    output = cli("poll")
    assert "feed J Fict Urol Oncol: 2 new items, 3 changes" in output
    assert "pubmed RCC CAR-T: 1 found, 1 fetched, 0 new, 0 changes" in output  # the feed told this watch
    assert {c["source"] for c in cli.changes()} == {"feeds"}
    (paper,) = stored(database_url, FeedItemRow, doi="10.5555/juo.1003")
    assert (paper.feed, paper.pmid) == ("J Fict Urol Oncol", "99000002")  # one row, its PMID noted
    cli.now = "2026-11-21T12:02:00+00:00"
    assert "pubmed RCC CAR-T: 1 found, 0 fetched, 0 new, 0 changes" in cli("poll")


def test_a_paper_pubmed_brought_first_is_told_by_the_feed_only_to_the_other_watches(
    cli_for, registry, own_study, eutils, journals, key, tmp_path
):
    registry.put(own_study("study_NCT09000001_v1"))
    body = (DATA / "journal_rss2.xml").read_bytes()
    url = journals.publish("/juo.rss", body)
    watches = WATCHES.replace('nct_ids = ["NCT05805501"]', "nct_ids = [\"NCT05805501\"]\npubmed_query = 'CD70[tiab]'")
    watches = watches.replace('digest = "weekly"', 'digest = "weekly"\npubmed = false')
    database_url = f"sqlite:///{tmp_path / 'tw.db'}"
    cli = cli_for(database_url=database_url, feeds=f'[[feed]]\nname = "JFUO"\nurl = "{url}"\n',
                  pubmed=pubmed_config(eutils), watches=watches)  # fmt: skip
    cli("poll")
    eutils.add_file(RCC, date(2026, 11, 21), pmids={"99000002"})
    cli.now = "2026-11-21T11:01:00+00:00"
    assert "pubmed RCC bispecifics: 1 found, 1 fetched, 1 new, 1 change " in cli("poll")
    new_items = (DATA / "journal_rss2_new_items.xml").read_bytes()
    journals.publish("/juo.rss", body.replace(b"    <item>", new_items + b"    <item>", 1))
    cli.now = "2026-11-21T12:02:00+00:00"
    assert "feed JFUO: 1 new items, 3 changes" in cli("poll")  # the CAR-T paper: only RCC CAR-T is told now
    about_it = sorted((c["watch"], c["source"], c["kind"]) for c in cli.changes() if c["doi"] == "10.5555/juo.1003")
    assert about_it == [("RCC CAR-T", "feeds", "new_article"), ("RCC bispecifics", "pubmed", "new_article")]
    assert [c["why"] for c in cli.changes() if c["source"] == "pubmed"] == ["the watch's pubmed_query"]
    (paper,) = stored(database_url, FeedItemRow, doi="10.5555/juo.1003")
    assert (paper.feed, paper.pmid) == ("PubMed", "99000002")


FAULTS = [
    (EutilsFault("esearch", "error_in_200"), "NCBI answered ERROR: Invalid query syntax near 'NOT'"),
    (EutilsFault("esearch", "extra_ids"), "NCBI returned 10001 ids where at most 10000 were asked for"),
    (EutilsFault("efetch", "cut_xml"), "answer cut off or not XML"),
    (EutilsFault("efetch", "error_document"), "NCBI answered an error document: Empty id list - nothing todo"),
    (EutilsFault("efetch", "extra_ids"), "NCBI returned 3 records for 2 ids (99000001)"),
]


@pytest.mark.parametrize(("fault", "message"), FAULTS, ids=[f"{f.endpoint}-{f.kind}" for f, _ in FAULTS])
def test_a_failed_poll_stores_nothing_for_its_watch_and_is_in_the_footer(
    cli_for, registry, own_study, eutils, key, database_url, fault, message
):
    cli = baseline(cli_for, registry, own_study, eutils, database_url)
    mine = {"watch": "RCC bispecifics"}
    before = [stored(database_url, model, **mine) for model in (ArticleWatch, ChangeRow)]
    (state,) = stored(database_url, PubmedState, **mine)
    eutils.fail_next(fault)  # the next request to that endpoint: RCC bispecifics's, polled first
    output = cli("poll", code=1)
    (line,) = [line for line in output.splitlines() if line.startswith("pubmed RCC bispecifics:")]
    assert line.startswith("pubmed RCC bispecifics: FAILED: ") and message in line
    assert "error: pubmed RCC bispecifics: " in output
    assert "pubmed RCC CAR-T: 3 found, 3 fetched, 3 new, 3 changes" in output  # the other watch is unaffected
    assert "RCC bispecifics: registry data unchanged" in output  # and so is the registry
    assert [stored(database_url, model, **mine) for model in (ArticleWatch, ChangeRow)] == before
    (failed,) = stored(database_url, PubmedState, **mine)
    assert failed.last_success_at == state.last_success_at and message in (failed.last_error or "")
    preview = cli("digest", "--now", "--dry-run")
    assert "! PubMed (RCC bispecifics): " in preview and message in preview

    cli.now = "2026-11-22T11:00:00+00:00"
    assert "pubmed RCC bispecifics: 3 found, 2 fetched, 0 new, 2 changes" in cli("poll")  # nothing was lost
    assert "PubMed (RCC bispecifics)" not in cli("digest", "--now", "--dry-run")


def test_the_api_key_is_in_no_log_line_even_at_debug(cli_for, registry, own_study, eutils, key, tmp_path):
    cli = baseline(cli_for, registry, own_study, eutils, f"sqlite:///{tmp_path / 'tw.db'}")
    eutils.fail_next(EutilsFault("esearch", "status", 429, retry_after="0"), EutilsFault("efetch", "cut_xml"))
    output = cli("--verbose", "poll", code=1)
    assert 'POST /entrez/eutils/esearch.fcgi HTTP/1.1" 429' in output  # urllib3 logs every request it makes
    assert "retrying in" in output and "pubmed RCC bispecifics: FAILED: efetch of 2 PMIDs" in output
    assert KEY not in output
    assert {r.params.get("api_key") for r in eutils.requests} == {KEY}  # it was sent, in the POSTed form
    assert all(KEY not in r.url for r in eutils.requests)
    (state,) = stored(f"sqlite:///{tmp_path / 'tw.db'}", PubmedState, watch="RCC bispecifics")
    assert state.last_error and KEY not in state.last_error
    assert KEY not in cli("check") + cli("queries")


def test_without_a_key_three_a_second_and_get(cli_for, registry, own_study, eutils, tmp_path):
    registry.put(own_study("study_NCT09000001_v1"))
    eutils.add_file(RCC, date(2026, 11, 20), pmids={"99000001"})
    cli = cli_for(pubmed=pubmed_config(eutils, rate=3))
    assert "pubmed RCC bispecifics: baseline: 1 articles found" in cli("poll")
    assert {r.method for r in eutils.requests} == {"GET"} and all("api_key" not in r.params for r in eutils.requests)
    assert "no API key (TRIALWATCH_NCBI_API_KEY)" in cli("check")
    config = cli.config.read_text().replace("requests_per_second = 3", "requests_per_second = 5")
    cli.config.write_text(config)
    assert "[pubmed]: key 'requests_per_second': 5 is more than NCBI allows without an API key (3)" in cli(
        "check", code=2
    )


def test_config_refuses_a_missing_email_and_more_than_ten_a_second(cli_for, eutils, key):
    cli = cli_for(pubmed=pubmed_config(eutils).replace('email = "tests@example.org"\n', ""))
    assert "[pubmed]: email is required when enabled = true: NCBI asks every E-utilities client" in cli("check", code=2)
    cli = cli_for(pubmed=pubmed_config(eutils, rate=11))
    assert "[pubmed]: key 'requests_per_second': Input should be less than or equal to 10" in cli("check", code=2)
    cli = cli_for(watches=WATCHES.replace('terms = ["CAR-T"]', 'terms = ["CAR-T"]\npubmed_query = " "'))
    assert "watch 'RCC CAR-T': key 'pubmed_query': empty PubMed query" in cli("check", code=2)
    assert "pubmed: not enabled" in cli_for()("check")


OWN_QUERY = WATCHES.replace(
    'terms = ["CAR-T"]', 'terms = ["CAR-T"]\npubmed_query = \'"renal cell carcinoma"[tiab] AND CD70[tiab]\''
)


def test_queries_preview_and_a_watch_left_out(cli_for, registry, own_study, eutils, key, tmp_path):
    eutils.add_file(RCC, date(2026, 11, 20))
    registry.put(own_study("study_NCT09000001_v1"))
    watches = OWN_QUERY.replace('digest = "daily"', 'digest = "daily"\npubmed = false', 1)
    cli = cli_for(pubmed=pubmed_config(eutils), watches=watches)
    lines = cli("preview", "RCC CAR-T", "--no-feeds").splitlines()
    assert 'PubMed: 1 records match: "renal cell carcinoma"[tiab] AND CD70[tiab]' in lines
    assert "mindate" not in eutils.of("esearch")[-1].params and eutils.of("esearch")[-1].params["retmax"] == "0"
    assert not (tmp_path / "var" / "trialwatch.db").exists()  # preview stores nothing
    shown = cli("queries")  # (reads the database's web watches too)
    assert "PubMed: not searched (pubmed = false in this watch)" in shown
    assert "term='\"renal cell carcinoma\"[tiab] AND CD70[tiab]'" in shown
    output = cli("poll")
    assert "pubmed RCC CAR-T: baseline" in output and "pubmed RCC bispecifics" not in output
    assert "term='NCT05805501[si] OR NCT05805501[tiab]'" in cli_for(pubmed=pubmed_config(eutils))("queries")


def test_changing_the_words_makes_a_new_baseline(cli_for, registry, own_study, eutils, key, tmp_path):
    cli = baseline(cli_for, registry, own_study, eutils, f"sqlite:///{tmp_path / 'tw.db'}", watches=WATCHES)
    cli.config.write_text(cli.config.read_text().replace('terms = ["CAR-T"]', 'terms = ["CAR-T", "CD70"]'))
    output = cli("poll")
    assert "pubmed RCC CAR-T: baseline: 3 articles found, 1 new stored, no alerts" in output
    assert {c["watch"] for c in cli.changes()} == {"RCC bispecifics"}


def test_the_daemon_polls_pubmed_on_its_own_interval(cli_for, eutils, key):
    cli = cli_for(pubmed=pubmed_config(eutils, extra='poll_interval = "12h"\n'))
    config = load_config(cli.config)
    scheduler = build_scheduler(Runtime(service=make_service(config), clock=lambda: NOW))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"poll", "feeds", "digest", "watches", "pubmed"}
    assert jobs["pubmed"].trigger.interval.total_seconds() == 12 * 3600
    assert (jobs["pubmed"].max_instances, jobs["pubmed"].coalesce) == (1, True)
    assert config.health_interval().total_seconds() == 12 * 3600  # /healthz waits for the slower source


def test_a_reload_that_enables_pubmed_adds_its_job(cli_for, eutils, key):
    cli = cli_for()
    runtime = Runtime(service=make_service(load_config(cli.config)), clock=lambda: NOW)
    scheduler = build_scheduler(runtime)
    assert scheduler.get_job("pubmed") is None
    enabled = cli_for(pubmed=pubmed_config(eutils))
    runtime.reload = lambda: make_service(load_config(enabled.config))
    assert reload_config(runtime, scheduler)
    job = scheduler.get_job("pubmed")
    assert job is not None and job.next_run_time == NOW and runtime.service.pubmed is not None
