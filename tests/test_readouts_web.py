"""Meeting abstracts and preprints in the web app (#20): `/articles` filters by type and labels each,
the study page lists its meeting abstracts and preprints beside its articles (and its JSON twin
says what each is), `/sources` lists Crossref's journals and each watch's Europe PMC searches with
their health; the changes API carries `item_type`. Over HTTP on both databases, and in Chromium at
1280 and 360 px."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.test_web_timeline import HOSTILE
from tests.timeline_data import T0, store_versions
from tests.web_support import FILE_WATCH
from watcher.literature.crossref import parse_work
from watcher.literature.europepmc import parse_record
from watcher.literature.readout_pipeline import ChangeBatch, store_work, tell_watch
from watcher.readouts_config import CrossrefConfig, EuropepmcConfig
from watcher.store import articles, db

DATA = json.loads((Path(__file__).parent / "data" / "readouts_rcc.json").read_text())


def seed_readouts(site: Any, own_study: Any) -> None:
    """NCT09000001 stored and held by the file watch; a meeting abstract naming it, a preprint
    matching the watch's words, an article naming it; Crossref failing for JCO."""
    site.provision(FILE_WATCH)
    store_versions(site.engine, own_study("study_NCT09000001_v1"), 1)
    abstract = parse_work(DATA["crossref"]["asco_gu_names_trial"])
    preprint = parse_record(dict(DATA["europepmc"]["medrxiv_preprint_car_t"], title=f"CAR-T {HOSTILE}"))
    article = parse_record(dict(DATA["europepmc"]["med_mentions_trial_in_full_text"],
                                abstractText="It names NCT09000001."))  # fmt: skip
    assert abstract and preprint and article
    with db.transaction(site.engine) as session:
        studies = {"NCT09000001": "FX-101 in RCC"}
        for hours, work, why in ((1, abstract, None), (2, preprint, '"CAR-T" in title'), (3, article, None)):
            row, _ = store_work(session=session, work=work, now=T0 + timedelta(hours=hours))
            batch = ChangeBatch(session=session, now=T0 + timedelta(hours=hours))
            tell_watch(batch=batch, watch=FILE_WATCH, work=work, studies=studies, why=why)
            batch.write()
        state = articles.get_readout_state(session=session, name="crossref:1527-7755")
        state.last_poll_at, state.failing_since, state.last_error = T0, T0, f"HTTP 503 {HOSTILE}"
        state.baseline_at = T0
        epmc = articles.get_readout_state(session=session, name=f"europepmc:{FILE_WATCH.name}")
        epmc.last_poll_at = epmc.last_success_at = epmc.baseline_at = T0
        epmc.request_count = 7
    config = site.config.model_copy(update={
        "crossref": CrossrefConfig(enabled=True, mailto="ops@example.org"),
        "europepmc": EuropepmcConfig(enabled=True, email="ops@example.org"),
    })  # fmt: skip
    site.app.state.context.config = lambda: config


def test_articles_filter_by_type_and_say_what_each_is(web_server, own_study):
    seed_readouts(web_server, own_study)
    client = web_server.signed_in("reader@example.org")
    page = client.get("/articles").text
    assert "Meeting abstract 512, J Clin Oncol 44 (6_suppl), 2026" in page and "medRxiv preprint, 2026" in page
    assert '<span class="badge item-type">meeting abstract</span>' in page and "<img" not in page
    only = client.get("/articles", params={"type": "meeting_abstract"}).text
    assert "Meeting abstract names NCT09000001" in only and "medRxiv" not in only and "European Urology" not in only
    two = client.get("/articles?type=preprint&type=article").text
    assert "medRxiv preprint" in two and "Meeting abstract 512" not in two and 'value="preprint" checked' in two
    bad = client.get("/articles", params={"type": "x" * 5000})
    assert bad.status_code == 400 and "unknown type" in bad.text and "x" * 100 not in bad.text
    api = web_server.api(web_server.token("api@example.org")).get("/api/v1/changes").json()
    assert {c["item_type"] for c in api["changes"]} == {"meeting_abstract", "preprint", "article"}


def test_the_study_page_lists_meeting_abstracts_and_preprints_beside_articles(web_server, own_study):
    seed_readouts(web_server, own_study)
    client = web_server.signed_in("reader@example.org")
    page = client.get("/studies/NCT09000001").text
    meeting, articles_at = page.index(">Meeting abstracts</h3>"), page.index(">Articles</h3>")
    assert meeting < page.index("FX-101, a PD-1/CTLA-4 bispecific antibody") < articles_at
    assert page.index("Dual checkpoint blockade") > articles_at
    body = web_server.api(web_server.token("api@example.org")).get("/api/v1/studies/NCT09000001").json()
    assert {(a["item_type"], a["first_found_in"]) for a in body["articles"]} == {
        ("meeting_abstract", "Crossref"), ("article", "Europe PMC")}  # fmt: skip


def test_sources_lists_crossref_journals_and_europe_pmc_searches(web_server, own_study):
    seed_readouts(web_server, own_study)
    page = web_server.signed_in("reader@example.org").get("/sources").text
    assert "<strong>Crossref</strong>" in page and "journal 1527-7755" in page and "journal 0923-7534" in page
    assert "<strong>Europe PMC</strong>" in page and f"watch {FILE_WATCH.name}" in page
    assert "HTTP 503 &lt;img" in page and "no baseline yet" in page  # Annals: never polled


def test_readouts_in_the_browser_at_1280_and_360(signed_in_browser, browser_site, own_study):
    browser = signed_in_browser
    seed_readouts(browser_site, own_study)
    browser.open("/articles")
    browser.find("input[name=type][value=meeting_abstract]").click()
    browser.find("form.filters button[type=submit]").click()
    browser.wait_for(lambda d: "type=meeting_abstract" in browser.path)
    rows = browser.find_all("li.change")
    assert rows and all("Meeting abstract" in row.text for row in rows)
    browser.screenshot("articles-meeting-abstracts")
    browser.open("/studies/NCT09000001")
    assert browser.find("h3.article-group").text == "Meeting abstracts"
    browser.screenshot("study-readouts")
    browser.open("/sources")
    assert "Europe PMC" in browser.find("table.sources").text
    browser.screenshot("sources-readouts")
