"""PubMed as NCBI serves it: real efetch and esearch answers (../shared/fixtures/pubmed) and our
own RCC-shaped records (tests/data/pubmed_rcc.xml) parse to articles with the right identity;
a watch's queries; the E-utilities client against a local server (tests/eutils_server.py):
paging, POST for long id lists and whenever an API key is sent, retries honouring Retry-After,
every fault a one-line SourceError, and pacing counted at the server."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer

from tests.eutils_server import EutilsFault, EutilsServer, Held, _fold, _matches
from watcher.config import WatchConfig
from watcher.errors import SourceError
from watcher.literature.pubmed import PubmedClient, nct_queries, query_signature, tiab, word_query
from watcher.literature.pubmed_xml import parse_efetch, parse_esearch
from watcher.pubmed_config import PubmedConfig

DATA = Path(__file__).parent / "data"
RCC = DATA / "pubmed_rcc.xml"
REAL_PMIDS = {
    "pubmed1.xml": ["12091962", "9997"],
    "pubmed2.xml": ["11748933", "11700088"],
    "pubmed4.xml": ["27797938"],
    "pubmed5.xml": ["28775130"],
    "pubmed6.xml": ["30108519"],
    "pubmed7.xml": ["29963580"],
}
WINDOW = (date(2026, 11, 18), date(2026, 11, 22))


@pytest.fixture
def pubmed_dir(real_fixtures_dir: Path) -> Path:
    path = real_fixtures_dir / "pubmed"
    if not path.is_dir():
        pytest.skip(f"real PubMed fixtures not found at {path}")
    return path


@pytest.fixture
def eutils(httpserver: HTTPServer) -> EutilsServer:
    return EutilsServer(httpserver)


def client_for(eutils: EutilsServer, *, key: str | None = None, rate: float = 0.0, **kwargs) -> PubmedClient:
    settings = PubmedConfig(
        enabled=True, base_url=eutils.base_url, email="tests@example.org", backoff_seconds=0.01, max_attempts=3
    )
    settings = settings.model_copy(update={"requests_per_second": rate})  # 0: no pacing (not a config value)
    return PubmedClient(settings, api_key=key, **kwargs)


def watch(**words) -> WatchConfig:
    return WatchConfig(name="w", recipients=["a@example.org"], **words)


# --- real NCBI answers ----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "pmids"), REAL_PMIDS.items())
def test_every_real_efetch_answer_parses(pubmed_dir: Path, name: str, pmids: list[str]) -> None:
    articles = parse_efetch((pubmed_dir / name).read_bytes(), where=name)
    assert [a.pmid for a in articles] == pmids
    assert all(a.title and a.journal and a.entered and a.link.endswith(f"/{a.pmid}/") for a in articles)
    assert all(a.nct_ids == () for a in articles)  # none of them reports a trial


def test_real_records_give_their_own_doi_never_a_cited_one(pubmed_dir: Path) -> None:
    (imaging,) = parse_efetch((pubmed_dir / "pubmed7.xml").read_bytes(), where="pubmed7")
    body = (pubmed_dir / "pubmed7.xml").read_text()
    assert body.count("<Reference>") == 49  # cited papers, with their own ids
    assert imaging.doi == "10.1117/1.jmi.5.2.026002"  # its own, lower-cased as DOIs compare
    aids, _ = parse_efetch((pubmed_dir / "pubmed1.xml").read_bytes(), where="pubmed1")
    assert aids.doi is None and aids.abstract == "" and aids.published == "1990"
    assert aids.publication_types == ("Journal Article", "Review")


def test_labelled_abstracts_are_joined_and_inline_markup_dropped(pubmed_dir: Path) -> None:
    (gut,) = parse_efetch((pubmed_dir / "pubmed4.xml").read_bytes(), where="pubmed4")
    assert gut.title.startswith("Leucocyte telomere length, genetic variants at the TERT gene region")
    assert gut.abstract.startswith("OBJECTIVE: Telomere shortening")
    assert [part in gut.abstract for part in ("DESIGN: ", "RESULTS: ", "CONCLUSIONS: ")] == [True] * 3
    assert gut.journal == "Gut" and gut.published == "2016-10-21" and gut.entered.isoformat().startswith("2016-11-01")


def test_real_esearch_answers(pubmed_dir: Path) -> None:
    counts = {
        name: parse_esearch((pubmed_dir / name).read_bytes(), where=name)
        for name in ("esearch1.xml", "esearch2.xml", "esearch3.xml", "esearch5.xml", "esearch8.xml")
    }
    assert {name: (page.count, len(page.ids)) for name, page in counts.items()} == {
        "esearch1.xml": (63, 20),
        "esearch2.xml": (42249, 100),
        "esearch3.xml": (2651, 6),
        "esearch5.xml": (5, 5),
        "esearch8.xml": (0, 0),  # PhraseNotFound and "No items found.": nothing, not an error
    }
    assert counts["esearch1.xml"].ids[0] == "41282813"


def test_esearch_json_and_its_error_inside_a_200() -> None:
    page = parse_esearch(b'{"header":{},"esearchresult":{"count":"63","retmax":"2","idlist":["1","2"]}}', where="q")
    assert (page.count, page.ids) == (63, ["1", "2"])
    with pytest.raises(SourceError, match=r"^q: NCBI answered ERROR: Invalid query$"):
        parse_esearch(b'{"esearchresult":{"ERROR":"Invalid query"}}', where="q")
    with pytest.raises(SourceError, match="NCBI answered ERROR: bad term"):
        parse_esearch(b"<eSearchResult><ERROR>bad term</ERROR></eSearchResult>", where="q")


def test_cut_off_and_error_documents_fail(pubmed_dir: Path) -> None:
    body = (pubmed_dir / "pubmed2.xml").read_bytes()
    with pytest.raises(SourceError, match=r"^efetch: answer cut off or not XML \(\d+ bytes\): "):
        parse_efetch(body[: len(body) // 2], where="efetch")
    for document in (b"<eFetchResult><ERROR>Empty id list - nothing todo</ERROR></eFetchResult>", b"<ERROR>x</ERROR>"):
        with pytest.raises(SourceError, match="NCBI answered an error document"):
            parse_efetch(document, where="efetch")
    with pytest.raises(SourceError, match="not a PubmedArticleSet"):
        parse_efetch(b"<html><body>busy</body></html>", where="efetch")


# --- our own RCC-shaped records -------------------------------------------------------------


def test_rcc_records_name_their_trials_by_data_bank_or_text_only() -> None:
    articles = {a.pmid: a for a in parse_efetch(RCC.read_bytes(), where="rcc")}
    assert articles["99000001"].doi == "10.5555/jfco.2026.44.6_suppl.412"
    assert articles["99000001"].abstract.startswith("BACKGROUND: Dual PD-1 and CTLA-4 blockade")
    assert articles["99000001"].title.startswith("FX-101, a PD-1/CTLA-4 bispecific antibody")
    assert articles["99000002"].doi == "10.5555/juo.1003"
    assert articles["99000003"].databank_nct_ids == ("NCT09000001",) and articles["99000003"].text_nct_ids == ()
    assert articles["99000003"].named_by("NCT09000001") == "its ClinicalTrials.gov data bank entry"
    assert articles["99000004"].text_nct_ids == ("NCT09000001",) and articles["99000004"].doi is None
    assert articles["99000004"].named_by("NCT09000001") == "its abstract"
    review = articles["99000005"]  # GEO bank, CommentsCorrections and ReferenceList belong to others
    assert review.nct_ids == () and review.doi == "10.5555/frv.2026.1"


# --- queries --------------------------------------------------------------------------------


def test_the_query_built_from_a_watchs_words() -> None:
    built = word_query(
        watch(conditions=["renal cell carcinoma", "RCC"], terms=["CAR-T", "bispecific"], exclude=["mouse", "in vitro"])
    )
    assert built == (
        '("renal cell carcinoma"[tiab] OR RCC[tiab]) AND ("CAR-T"[tiab] OR bispecific[tiab]) '
        'NOT (mouse[tiab] OR "in vitro"[tiab])'
    )
    assert word_query(watch(terms=["tobemstomig"])) == "tobemstomig[tiab]"
    assert word_query(watch(nct_ids=["NCT05805501"])) is None
    own = watch(conditions=["RCC"], pubmed_query='"Carcinoma, Renal Cell"[mh] AND bispecific[tiab]')
    assert word_query(own) == '"Carcinoma, Renal Cell"[mh] AND bispecific[tiab]'
    assert query_signature(own) != query_signature(watch(conditions=["RCC"]))
    assert tiab('say "no" [x]') == '"say no x"[tiab]'


WORD = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 \-/]{0,14}", fullmatch=True).map(lambda w: " ".join(w.split()))


@settings(max_examples=200, deadline=None)
@given(conditions=st.lists(WORD, min_size=1, max_size=4), terms=st.lists(WORD, max_size=4))
def test_a_built_query_is_well_formed_and_finds_a_text_with_its_words(conditions: list[str], terms: list[str]):
    query = word_query(watch(conditions=conditions, terms=terms))
    assert query is not None and query.count("(") == query.count(")") and query.count('"') % 2 == 0
    assert query.count("[tiab]") == len(dict.fromkeys(conditions)) + len(dict.fromkeys(terms))
    text = " ".join([conditions[-1], *terms[:1]])
    held = Held("1", "", date(2026, 11, 20), _fold(text), frozenset())
    assert _matches(query, held)  # PubMed's Boolean reading (left to right) of our query


def test_trial_queries_are_batched_to_keep_urls_short() -> None:
    ids = [f"NCT{n:08d}" for n in range(1, 46)]
    queries = nct_queries(ids + ids[:3])
    assert len(queries) == 3 and all(len(query) < 800 for query in queries)
    assert queries[0].startswith("NCT00000001[si] OR NCT00000001[tiab] OR NCT00000002[si]")
    assert sum(query.count("[si]") for query in queries) == 45


# --- the client against the local server ----------------------------------------------------


def test_search_pages_past_retmax_in_json_and_xml(eutils: EutilsServer, pubmed_dir: Path) -> None:
    for name in REAL_PMIDS:
        eutils.add_file(pubmed_dir / name, date(2026, 11, 20))
    client = client_for(eutils, page_size=3)
    found = client.search("the[tiab] OR of[tiab]", WINDOW)
    assert len(found) == 8 and len(set(found)) == 8
    searches = eutils.of("esearch")
    assert [r.params["retstart"] for r in searches] == ["0", "3", "6"]
    assert {r.params["retmax"] for r in searches} == {"3"}
    first = searches[0].params
    assert (first["db"], first["datetype"], first["mindate"], first["maxdate"]) == (
        "pubmed", "edat", "2026/11/18", "2026/11/22",
    )  # fmt: skip
    assert (first["tool"], first["email"], first["retmode"]) == ("trialwatch", "tests@example.org", "json")
    assert client.search("the[tiab]", (date(2026, 11, 21), date(2026, 11, 22))) == []  # outside the window
    assert client.count("the[tiab] OR of[tiab]") == 8
    articles = client.fetch(found)
    assert sorted(a.pmid for a in articles) == sorted(found)
    assert eutils.of("efetch")[-1].method == "GET"


def test_a_long_id_list_is_posted_in_batches_of_200(eutils: EutilsServer) -> None:
    eutils.add_file(RCC, date(2026, 11, 20))
    client = client_for(eutils)
    asked = [str(40000000 + n) for n in range(397)] + ["99000001", "99000003"]
    articles = client.fetch(asked)
    assert [a.pmid for a in articles] == ["99000001", "99000003"]
    fetches = eutils.of("efetch")
    assert [len(r.params["id"].split(",")) for r in fetches] == [200, 199]
    assert [r.method for r in fetches] == ["POST", "POST"] and all("id=" not in r.url for r in fetches)


def test_the_api_key_is_sent_in_a_form_never_in_a_url(eutils: EutilsServer) -> None:
    eutils.add_file(RCC, date(2026, 11, 20))
    client = client_for(eutils, key="k3y-in-the-body")
    assert client.search("bispecific[tiab]", WINDOW) == ["99000001"]
    client.fetch(["99000001"])
    assert [(r.method, r.params["api_key"]) for r in eutils.requests] == [("POST", "k3y-in-the-body")] * 2
    assert all("k3y" not in r.url for r in eutils.requests)


def test_429_and_5xx_are_retried_honouring_retry_after(eutils: EutilsServer) -> None:
    eutils.add_file(RCC, date(2026, 11, 20))
    waits: list[float] = []
    client = client_for(eutils, sleep=waits.append)
    eutils.fail_next(EutilsFault("esearch", "status", 429, retry_after="7"), EutilsFault("efetch", "status", 503))
    assert client.search("bispecific[tiab]", WINDOW) == ["99000001"]
    assert [a.pmid for a in client.fetch(["99000001"])] == ["99000001"]
    assert len(eutils.of("esearch")) == 2 and len(eutils.of("efetch")) == 2
    assert waits[0] >= 7 and waits[1] < 1  # Retry-After honoured; else the short backoff
    eutils.fail_next(*[EutilsFault("esearch", "status", 429)] * 3)
    with pytest.raises(SourceError, match=r"^POST .*esearch\.fcgi\?.*: HTTP 429") as failure:
        client_for(eutils, key="secret-k", sleep=waits.append).search("bispecific[tiab]", WINDOW)
    assert "secret-k" not in failure.value.one_line()


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (EutilsFault("esearch", "error_in_200"), "NCBI answered ERROR: Invalid query syntax"),
        (EutilsFault("esearch", "extra_ids"), "NCBI returned 10001 ids where at most 10000 were asked for"),
        (EutilsFault("efetch", "cut_xml"), "answer cut off or not XML"),
        (EutilsFault("efetch", "error_document"), "NCBI answered an error document: Empty id list"),
        (EutilsFault("efetch", "extra_ids"), "NCBI returned 2 records for 1 ids (99000002)"),
    ],
)
def test_each_fault_is_one_line(eutils: EutilsServer, fault: EutilsFault, message: str) -> None:
    eutils.add_file(RCC, date(2026, 11, 20))
    client = client_for(eutils)
    eutils.fail_next(fault)
    with pytest.raises(SourceError) as failure:
        client.fetch(client.search("bispecific[tiab]", WINDOW))
    assert message in failure.value.one_line() and "\n" not in failure.value.one_line()


def test_esearch_answered_in_xml_is_read_alike(eutils: EutilsServer) -> None:
    eutils.add_file(RCC, date(2026, 11, 22))
    eutils.esearch_xml_only = True  # as NCBI answers without retmode=json
    client = client_for(eutils)
    assert client.search("NCT09000001[si] OR NCT09000001[tiab]", WINDOW) == ["99000004", "99000003"]
    assert client.count("kidney[tiab]") == 2
    eutils.fail_next(EutilsFault("esearch", "error_in_200"))
    with pytest.raises(SourceError, match="NCBI answered ERROR: Invalid query syntax"):
        client.search("kidney[tiab]", WINDOW)


# --- pacing, counted at the server ----------------------------------------------------------


def busiest_second(times: list[float]) -> int:
    """The most requests that arrived within any one second."""
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


@pytest.mark.parametrize(("key", "rate", "pages"), [(None, 3.0, 6), ("a-key", 10.0, 20)])
def test_pacing_never_exceeds_requests_per_second(eutils: EutilsServer, key: str | None, rate: float, pages: int):
    eutils.add_file(RCC, date(2026, 11, 22))
    review = eutils.articles["99000005"]
    for n in range(pages):  # as many more articles on "sequencing", fetched one id a page
        eutils.articles[str(98000000 + n)] = replace(review, pmid=str(98000000 + n))
    client = client_for(eutils, key=key, rate=rate, page_size=1)
    assert len(client.search("sequencing[tiab]", WINDOW)) == pages + 1
    times = [r.at for r in eutils.requests]
    assert len(times) == pages + 1
    assert busiest_second(times) <= rate
    assert min(later - earlier for earlier, later in zip(times, times[1:], strict=False)) >= 1 / rate
