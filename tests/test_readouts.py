"""Crossref's meeting abstracts and Europe PMC's preprints and trial mentions end to end (#20):
`trialwatch poll` against a local stand-in server (tests/readouts_server.py) and the local
registry, on SQLite and PostgreSQL: baselines, a meeting abstract that names a held trial, one that
matches a watch's words, an ESMO title-only abstract with a lower-case clinical-trial-number, a
preprint, a full-text trial mention, a preprint's published version, one item per paper whatever
the DOI's case; every fault a failed poll that stores nothing and leaves the other sources alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlmodel import select

from tests.readouts_server import SAME_CURSOR, Fault, ReadoutsServer
from watcher.config import load_config
from watcher.literature.crossref import CrossrefClient
from watcher.literature.crossref_pipeline import poll_crossref
from watcher.store import db
from watcher.store.models import ChangeRow, FeedItemRow, ReadoutState

DATA = json.loads((Path(__file__).parent / "data" / "readouts_rcc.json").read_text())
WORKS, RECORDS = DATA["crossref"], DATA["europepmc"]
JCO, ANNALS = "1527-7755", "0923-7534"
LABEL_512 = "Meeting abstract 512, J Clin Oncol 44 (6_suppl), 2026"


@pytest.fixture
def readouts() -> Iterator[ReadoutsServer]:
    server = HTTPServer(host="127.0.0.1", port=0)  # its own server: the registry answers every path of the default
    server.start()
    yield ReadoutsServer(server)
    server.clear()
    server.stop()


def sections(server: ReadoutsServer, *, crossref: bool = True, europepmc: bool = True) -> str:
    common = "backoff_seconds = 0.01\nmax_attempts = 3\n"
    return (
        f'[crossref]\nenabled = {str(crossref).lower()}\nmailto = "tests@example.org"\n'
        f'base_url = "{server.crossref_url}"\nrequests_per_second = 50\n{common}\n'
        f'[europepmc]\nenabled = {str(europepmc).lower()}\nemail = "tests@example.org"\n'
        f'base_url = "{server.europepmc_url}"\nrequests_per_second = 10\n{common}'
    )


def stored(database_url: str, model: Any) -> list[Any]:
    engine = db.make_engine(database_url)
    with db.transaction(engine) as session:
        rows = list(session.exec(select(model)))
        session.expunge_all()
    return rows


def baseline(cli_for, registry, own_study, readouts, database_url, smtp=None, **kwargs) -> Any:
    """Registry study NCT09000001 (both watches hold it); one work per journal before the baseline."""
    registry.put(own_study("study_NCT09000001_v1"))
    readouts.add_work(JCO, date(2026, 11, 20), WORKS["jco_article_not_matching"])
    cli = cli_for(database_url=database_url, smtp=smtp, pubmed=sections(readouts, **kwargs))
    cli.last_poll = cli("poll")
    cli.now = "2026-11-22T10:00:00+00:00"
    return cli


def test_meeting_abstracts_are_publications_and_new_articles_labelled_as_such(
    cli_for, registry, own_study, readouts, database_url, smtp
):
    cli = baseline(cli_for, registry, own_study, readouts, database_url, smtp=smtp, europepmc=False)
    assert "crossref:1527-7755: baseline: 1 works found, 1 new stored, no alerts" in cli.last_poll
    assert "crossref:0923-7534: baseline: 0 works found, 0 new stored, no alerts" in cli.last_poll
    assert cli.changes() == []
    for name in ("asco_gu_names_trial", "asco_car_t_words"):
        readouts.add_work(JCO, date(2026, 11, 22), WORKS[name])
    readouts.add_work(ANNALS, date(2026, 11, 21), WORKS["esmo_title_only"])

    output = cli("poll")
    assert "crossref:1527-7755: 3 found, 2 new, 3 changes" in output  # the baseline's work again: 7 days' overlap
    assert "crossref:0923-7534: 1 found, 1 new, 1 change " in output
    (request, *_) = [seen.params for seen in readouts.of("crossref") if "2026-11-22" in seen.params["filter"]]
    assert request["filter"] == "from-created-date:2026-11-14,until-created-date:2026-11-22"
    assert (request["rows"], request["cursor"], request["mailto"]) == ("1000", "*", "tests@example.org")
    assert "clinical-trial-number" in request["select"] and "abstract" in request["select"]

    changes = {(c["kind"], c["watch"], c["doi"]): c for c in cli.changes()}
    abstract_doi = "10.1200/jco.2026.44.6_suppl.512"  # upper case at Crossref, stored lower
    assert set(changes) == {
        ("publication", "RCC bispecifics", abstract_doi),
        ("publication", "RCC CAR-T", abstract_doi),
        ("new_article", "RCC CAR-T", "10.1200/jco.2026.44.6_suppl.4068"),
        ("publication", "RCC bispecifics", "10.1016/j.annonc.2026.08.1829"),
    }
    named = changes[("publication", "RCC bispecifics", abstract_doi)]
    assert named["item_type"] == "meeting_abstract" and named["source"] == "crossref"
    assert named["nct_id"] == "NCT09000001" and named["journal"] == "Journal of Clinical Oncology"
    assert named["summary"] == (
        "Meeting abstract names NCT09000001 in its abstract: FX-101, a PD-1/CTLA-4 bispecific antibody, in "
        f"IO-refractory renal cell carcinoma: phase 1b expansion. ({LABEL_512})"
    )
    words = changes[("new_article", "RCC CAR-T", "10.1200/jco.2026.44.6_suppl.4068")]
    assert words["summary"].startswith("New meeting abstract: CD70-directed CAR-T")
    assert "Meeting abstract 4068, J Clin Oncol 44 (6_suppl), 2026" in words["summary"]
    assert '"CAR-T" in title' in words["why"] and words["item_type"] == "meeting_abstract"
    esmo = changes[("publication", "RCC bispecifics", "10.1016/j.annonc.2026.08.1829")]
    assert esmo["nct_id"] == "NCT05805501" and "in its clinical-trial-number" in esmo["summary"]
    assert "Meeting abstract 1829P, Ann Oncol 37 (Supplement_2), 2026" in esmo["summary"]
    items = {row.doi: row for row in stored(database_url, FeedItemRow)}
    assert items[abstract_doi].item_type == "meeting_abstract" and items[abstract_doi].feed == "Crossref"
    assert {row.item_type for row in stored(database_url, ChangeRow)} == {"meeting_abstract"}

    cli.now = "2026-11-22T12:00:00+00:00"
    assert "crossref:1527-7755: 3 found, 0 new, 0 changes" in cli("poll")  # told once, whatever the overlap
    cli("digest", "--now")
    text = {r.rcpt_tos[0]: r.message for r in smtp.wait_for(2)}["onc@example.org"].get_body(("plain",)).get_content()
    assert LABEL_512 in text and "Meeting abstract names NCT09000001" in text
    assert "  Meeting abstract 4068, J Clin Oncol 44 (6_suppl), 2026, doi:10.1200/jco.2026.44.6_suppl.4068" in text
    assert "(found in Crossref)" in text


def test_preprints_trial_mentions_and_a_published_version_one_item_whatever_the_case(
    cli_for, registry, own_study, readouts, database_url
):
    cli = baseline(cli_for, registry, own_study, readouts, database_url)
    assert "europepmc:RCC CAR-T: baseline: 0 works found, 0 new stored, no alerts" in cli.last_poll
    readouts.add_record(date(2026, 11, 22), RECORDS["medrxiv_preprint_car_t"], by_words='"CAR-T"')
    readouts.add_record(date(2026, 11, 22), RECORDS["med_mentions_trial_in_full_text"], mentions=("NCT09000001",))
    output = cli("poll")
    assert "europepmc:RCC CAR-T: 2 found, 1 new, 2 changes" in output
    assert "europepmc:RCC bispecifics: 1 found, 1 new, 1 change " in output
    queries = [seen.params["query"] for seen in readouts.of("europepmc") if "2026-11-22]" in seen.params["query"]]
    window = "FIRST_IDATE:[2026-11-18 TO 2026-11-22]"
    assert f'(SRC:PPR AND ("renal cell carcinoma" AND "CAR-T")) AND {window}' in queries
    both = '(ACCESSION_ID:NCT05805501 OR "NCT05805501" OR ACCESSION_ID:NCT09000001 OR "NCT09000001")'
    assert f"({both}) AND {window}" in queries  # then each id alone: which one does the full text name?
    assert f'((ACCESSION_ID:NCT09000001 OR "NCT09000001")) AND {window}' in queries
    params = readouts.of("europepmc")[-1].params
    assert (params["resultType"], params["format"], params["pageSize"], params["cursorMark"]) == (
        "core", "json", "1000", "*")  # fmt: skip
    changes = {(c["kind"], c["watch"], c["title"]): c for c in cli.changes()}
    preprint = next(c for c in changes.values() if c["kind"] == "new_article")
    assert preprint["item_type"] == "preprint" and preprint["source"] == "europepmc"
    assert preprint["summary"].endswith("(medRxiv preprint, 2026)") and preprint["summary"].startswith("New preprint")
    mentions = [c for c in changes.values() if c["kind"] == "publication"]
    assert {c["watch"] for c in mentions} == {"RCC bispecifics", "RCC CAR-T"}
    assert all("Article names NCT09000001 in its full text (Europe PMC text mining)" in c["summary"] for c in mentions)
    assert all(c["item_type"] == "article" and c["pmid"] == "99100001" for c in mentions)

    readouts.add_work(JCO, date(2026, 11, 23), WORKS["jco_article_published_preprint"])
    title = "CD70 CAR T cells for renal cell carcinoma: a phase 1 trial."
    lower = dict(RECORDS["med_mentions_trial_in_full_text"], id="99100002", pmid="99100002",
                 doi="10.1200/jco.26.00777", title=title)  # fmt: skip
    readouts.add_record(date(2026, 11, 23), lower, mentions=("NCT09000001",))
    cli.now = "2026-11-23T10:00:00+00:00"
    output = cli("poll")
    published = [c for c in cli.changes() if c["doi"] == "10.1200/jco.26.00777"]
    assert sorted((c["watch"], c["source"], c["kind"]) for c in published) == [
        ("RCC CAR-T", "crossref", "new_article"),  # told once: Europe PMC's copy is the same item
        ("RCC bispecifics", "europepmc", "publication"),
    ]
    told = next(c for c in published if c["watch"] == "RCC CAR-T")
    assert "now published in Journal of Clinical Oncology" in told["summary"]
    assert told["details"]["preprint_doi"] == "10.1101/2026.10.01.26300001"
    assert len([row for row in stored(database_url, FeedItemRow) if row.doi.lower() == "10.1200/jco.26.00777"]) == 1
    assert "europepmc:RCC CAR-T: 3 found, 0 new, 0 changes" in output


FAULTS = [
    ((Fault("crossref", "status", 429, "0"),) * 3, "HTTP 429"),
    ((Fault("crossref", "status", 503),) * 3, "HTTP 503"),
    ((Fault("crossref", "cut_json"),) * 3, "response is not complete JSON"),
]


@pytest.mark.parametrize(("faults", "message"), FAULTS, ids=["429", "503", "cut-json"])
def test_a_failed_crossref_poll_stores_nothing_and_leaves_the_other_sources_alone(
    cli_for, registry, own_study, readouts, database_url, faults, message
):
    cli = baseline(cli_for, registry, own_study, readouts, database_url)
    readouts.add_work(JCO, date(2026, 11, 22), WORKS["asco_gu_names_trial"])
    readouts.add_work(ANNALS, date(2026, 11, 22), WORKS["esmo_title_only"])
    readouts.add_record(date(2026, 11, 22), RECORDS["medrxiv_preprint_car_t"], by_words='"CAR-T"')
    before = len(stored(database_url, FeedItemRow))
    readouts.fail_next(*faults)
    output = cli("poll", code=1)
    (line,) = [line for line in output.splitlines() if line.startswith("crossref:1527-7755:")]
    assert "FAILED" in line and message in line
    assert "crossref:0923-7534: 1 found, 1 new, 1 change " in output  # the other journal
    assert "europepmc:RCC CAR-T: 1 found, 1 new, 1 change " in output  # and the other source
    assert "RCC bispecifics: registry data unchanged" in output
    assert not any(c["doi"] == "10.1200/jco.2026.44.6_suppl.512" for c in cli.changes())
    assert len(stored(database_url, FeedItemRow)) == before + 2  # the ESMO abstract and the preprint only
    state = {row.name: row for row in stored(database_url, ReadoutState)}[f"crossref:{JCO}"]
    assert message in (state.last_error or "") and state.failing_since is not None
    assert f"! Crossref ({JCO}): " in cli("digest", "--now", "--dry-run")  # the footer says so
    cli.now = "2026-11-22T11:00:00+00:00"
    assert "crossref:1527-7755: 2 found, 1 new, 2 changes" in cli("poll")  # nothing was lost
    assert "! Crossref" not in cli("digest", "--now", "--dry-run")


def test_an_err_code_inside_a_200_fails_that_watch_only(cli_for, registry, own_study, readouts, database_url):
    cli = baseline(cli_for, registry, own_study, readouts, database_url)
    readouts.add_record(date(2026, 11, 22), RECORDS["medrxiv_preprint_car_t"], by_words='"CAR-T"')
    readouts.fail_next(Fault("europepmc", "err_code"))  # the first request: RCC bispecifics's (no preprint query hit)
    output = cli("poll", code=1)
    (line,) = [line for line in output.splitlines() if line.startswith("europepmc:RCC bispecifics:")]
    assert "FAILED" in line and "error 404: Invalid page size provided" in line
    assert "europepmc:RCC CAR-T: 1 found, 1 new, 1 change " in output


def crossref_client(config_path: Path, *, rows: int, sleeps: list[float]) -> tuple[Any, CrossrefClient]:
    config = load_config(config_path)
    return config, CrossrefClient(config.crossref, rows=rows, sleep=sleeps.append)


def test_paging_follows_a_repeated_cursor_string_and_a_repeating_page_fails(
    cli_for, registry, own_study, readouts, tmp_path
):
    database_url = f"sqlite:///{tmp_path / 'tw.db'}"
    cli = baseline(cli_for, registry, own_study, readouts, database_url, europepmc=False)
    for name in ("asco_gu_names_trial", "asco_car_t_words", "jco_article_published_preprint"):
        readouts.add_work(JCO, date(2026, 11, 22), WORKS[name])
    config, client = crossref_client(cli.config, rows=2, sleeps=[])
    engine, now = db.make_engine(database_url), datetime(2026, 11, 22, 10, tzinfo=UTC)
    report = poll_crossref(engine=engine, client=client, config=config, issn=JCO, now=now)
    assert (report.ok, report.found, report.items) == (True, 4, 3)
    assert [seen.params["cursor"] for seen in readouts.of("crossref")[-3:]] == ["*", SAME_CURSOR, SAME_CURSOR]
    before = (len(stored(database_url, FeedItemRow)), len(stored(database_url, ChangeRow)))
    readouts.add_work(JCO, date(2026, 11, 23), WORKS["esmo_title_only"])
    readouts.fail_next(Fault("crossref", "ok"), Fault("crossref", "repeat_page"))
    failed = poll_crossref(engine=engine, client=client, config=config, issn=JCO, now=now.replace(day=23))
    assert not failed.ok and "page 2 repeats works already read" in (failed.error or "")
    assert (len(stored(database_url, FeedItemRow)), len(stored(database_url, ChangeRow))) == before


def test_retry_after_and_the_servers_rate_headers_set_the_pace(cli_for, registry, own_study, readouts, tmp_path):
    cli = baseline(cli_for, registry, own_study, readouts, f"sqlite:///{tmp_path / 'tw.db'}", europepmc=False)
    sleeps: list[float] = []
    _, client = crossref_client(cli.config, rows=1000, sleeps=sleeps)
    assert client.pacer.interval == pytest.approx(1 / 50)
    readouts.fail_next(Fault("crossref", "status", 429, "7"))
    works = client.works(JCO, (date(2026, 11, 15), date(2026, 11, 22)))
    assert [work.doi for work in works] == ["10.1200/jco.26.00001"]
    assert any(seconds >= 7 for seconds in sleeps)  # waited as long as Retry-After said
    assert client.pacer.interval == pytest.approx(1 / 5) and client.pacer.concurrency == 1  # 5 per 1s


def test_bad_xml_an_entity_bomb_and_a_5_mb_abstract_are_read_safely(
    cli_for, registry, own_study, readouts, database_url
):
    cli = baseline(cli_for, registry, own_study, readouts, database_url, europepmc=False)
    bomb = (
        '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        "<jats:p>&lol3; renal cell carcinoma CAR-T NCT07000001</jats:p>"
    )
    broken = "<jats:p>CAR-T in <jats:italic>renal cell carcinoma</jats:p> and NCT09000001"
    huge = "<jats:p>NCT09000001 renal cell carcinoma CAR-T " + "x " * 2_600_000 + "</jats:p>"
    for number, abstract in enumerate((bomb, broken, huge), start=1):
        work = dict(WORKS["asco_car_t_words"], DOI=f"10.1200/jco.2026.44.6_suppl.90{number}", abstract=abstract,
                    page=f"90{number}", title=f"Abstract {number}")  # fmt: skip
        readouts.add_work(JCO, date(2026, 11, 22), work)
    output = cli("poll")
    assert "crossref:1527-7755: 4 found, 3 new, 5 changes" in output  # two name a trial both watches hold
    changes = {c["doi"]: c for c in cli.changes()}
    assert changes["10.1200/jco.2026.44.6_suppl.901"]["kind"] == "new_article"  # words still read, nothing expanded
    assert "lollol" not in json.dumps(changes["10.1200/jco.2026.44.6_suppl.901"])
    for number in (2, 3):  # not well-formed: tags stripped; too long: cut, then read
        change = changes[f"10.1200/jco.2026.44.6_suppl.90{number}"]
        assert change["kind"] == "publication" and change["nct_id"] == "NCT09000001"


def test_config_requires_mailto_and_takes_the_per_watch_switches(cli_for, readouts, tmp_path):
    text = sections(readouts).replace('mailto = "tests@example.org"\n', "")
    cli = cli_for(database_url=f"sqlite:///{tmp_path / 'tw.db'}", pubmed=text)
    output = cli("check", code=2)
    assert "[crossref]" in output and "mailto is required when enabled = true" in output
    watches = '[[watch]]\nname = "X"\nconditions = ["RCC"]\nrecipients = ["a@example.org"]\ncrossref = false\n'
    cli = cli_for(database_url=f"sqlite:///{tmp_path / 'tw.db'}", pubmed=sections(readouts),
                  watches=watches + "europepmc = false\n")  # fmt: skip
    config = load_config(cli.config)
    assert config.crossref_watches() == [] and config.europepmc_watches() == []
    assert config.crossref.journals == [JCO, ANNALS] and config.crossref.overlap_days == 7
    assert config.europepmc.overlap_days == 3 and config.europepmc.base_url == readouts.europepmc_url
    defaults = load_config(cli_for(database_url=f"sqlite:///{tmp_path / 'tw.db'}").config)
    assert (defaults.crossref.enabled, defaults.crossref.requests_per_second, defaults.crossref.base_url) == (
        False, 1, "https://api.crossref.org")  # fmt: skip
    assert (defaults.europepmc.requests_per_second, defaults.europepmc.poll_interval.total_seconds()) == (2, 6 * 3600)


def test_queries_preview_and_check_speak_of_both_sources(cli_for, registry, own_study, readouts, tmp_path):
    registry.put(own_study("study_NCT09000001_v1"))
    cli = cli_for(database_url=f"sqlite:///{tmp_path / 'tw.db'}", pubmed=sections(readouts))
    queries = cli("queries", "RCC bispecifics")
    assert (
        f"GET {readouts.crossref_url}/journals/{JCO}/works filter='from-created-date:D,until-created-date:D'" in queries
    )
    assert f"/journals/{ANNALS}/works" in queries and "mailto='tests@example.org'" in queries
    assert f"GET {readouts.europepmc_url}/search resultType=core format=json pageSize=1000" in queries
    assert """query='SRC:PPR AND ("renal cell carcinoma" AND (bispecific OR tobemstomig))""" in queries
    assert """query='(ACCESSION_ID:NCT05805501 OR "NCT05805501") AND FIRST_IDATE:[D TO D]'""" in queries
    readouts.add_work(JCO, date(2026, 11, 20), WORKS["asco_car_t_words"])
    readouts.add_work(JCO, date(2026, 11, 20), WORKS["jco_article_not_matching"])
    readouts.add_record(date(2026, 11, 20), RECORDS["medrxiv_preprint_car_t"], by_words='"CAR-T"')
    preview = cli("preview", "RCC CAR-T", "--no-feeds")
    assert f"Crossref {JCO}: 1 of 2 works created since 2026-11-14 match, 0 name its trials" in preview
    assert f"Crossref {ANNALS}: 0 of 0 works" in preview
    assert 'Europe PMC: 1 preprints match: SRC:PPR AND ("renal cell carcinoma" AND "CAR-T")' in preview
    assert readouts.of("europepmc")[-1].params["pageSize"] == "1"  # a count, nothing listed
    check = cli("check")
    assert f"crossref: journals {JCO}, {ANNALS} every 6:00:00, 50 requests/s at most" in check
    assert "europepmc: 2 watch(es) every 6:00:00, 10 requests/s, email tests@example.org" in check
    off = cli_for(database_url=f"sqlite:///{tmp_path / 'tw.db'}")("queries", "RCC CAR-T")
    assert "Crossref: not asked ([crossref] enabled = false)" in off
    assert "Europe PMC: not searched ([europepmc] enabled = false)" in off


def test_the_daemon_polls_each_source_on_its_own_interval_and_a_reload_adds_them(cli_for, readouts, tmp_path):
    from watcher.cli.shared import make_service
    from watcher.daemon.scheduler import Runtime, build_scheduler, reload_config

    now = datetime(2026, 11, 21, 10, tzinfo=UTC)
    database_url = f"sqlite:///{tmp_path / 'tw.db'}"
    plain = cli_for(database_url=database_url)
    runtime = Runtime(service=make_service(load_config(plain.config)), clock=lambda: now)
    scheduler = build_scheduler(runtime)
    assert scheduler.get_job("crossref") is None and scheduler.get_job("europepmc") is None
    text = sections(readouts).replace("[europepmc]\n", '[europepmc]\npoll_interval = "12h"\n')
    enabled = cli_for(database_url=database_url, pubmed=text)
    runtime.reload = lambda: make_service(load_config(enabled.config))
    assert reload_config(runtime, scheduler)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert jobs["crossref"].next_run_time == now and jobs["crossref"].trigger.interval.total_seconds() == 6 * 3600
    assert jobs["europepmc"].trigger.interval.total_seconds() == 12 * 3600
    assert runtime.service.crossref is not None and runtime.service.europepmc is not None
    assert set(job.id for job in build_scheduler(runtime).get_jobs()) >= {"poll", "crossref", "europepmc"}
    assert runtime.service.config.health_interval().total_seconds() == 12 * 3600


def test_europe_pmc_pages_by_cursor_mark_and_fails_on_a_repeat_or_a_cut_body(cli_for, readouts, tmp_path):
    from watcher.errors import SourceError
    from watcher.literature.europepmc import EuropepmcClient

    cli = cli_for(database_url=f"sqlite:///{tmp_path / 'tw.db'}", pubmed=sections(readouts))
    client = EuropepmcClient(load_config(cli.config).europepmc, page_size=1, sleep=lambda seconds: None)
    for number in range(3):
        record = dict(RECORDS["medrxiv_preprint_car_t"], id=f"PPR99000{number}", doi=f"10.1101/2026.10.0{number}")
        readouts.add_record(date(2026, 11, 22), record, by_words='"CAR-T"')
    window = (date(2026, 11, 20), date(2026, 11, 22))
    found = client.search('SRC:PPR AND ("CAR-T")', window)
    assert [work.source_id for work in found] == ["PPR:PPR990000", "PPR:PPR990001", "PPR:PPR990002"]
    assert [seen.params["cursorMark"] for seen in readouts.of("europepmc")] == ["*", "AoI1", "AoI2"]
    assert found[0].label == "medRxiv preprint, 2026" and found[0].item_type == "preprint"
    readouts.fail_next(Fault("europepmc", "ok"), Fault("europepmc", "repeat_page"))
    with pytest.raises(SourceError, match="page 2 repeats records already read"):
        client.search('SRC:PPR AND ("CAR-T")', window)
    readouts.fail_next(*[Fault("europepmc", "cut_json")] * 3)
    with pytest.raises(SourceError, match="response is not complete JSON"):
        client.search('SRC:PPR AND ("CAR-T")', window)
    readouts.fail_next(*[Fault("europepmc", "status", 503, "0")] * 3)
    with pytest.raises(SourceError, match="HTTP 503"):
        client.count('SRC:PPR AND ("CAR-T")')
