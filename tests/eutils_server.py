"""A real HTTP server on loopback that answers like NCBI's E-utilities (pytest-httpserver):
esearch (JSON with retmode=json, else XML, as NCBI returns them) over the articles it holds, with
an entry-date window and paging; efetch (PubmedArticleSet XML) by GET or POST. Articles are the
PubmedArticle elements of real efetch answers (../shared/fixtures/pubmed) or of our own
tests/data/pubmed_rcc.xml, each with the entry date a test gives it. On demand: an HTTP status
(429 with NCBI's JSON error and Retry-After, 5xx), an ERROR inside a 200 esearch answer, an efetch
answer cut off mid-XML, an XML error document, more ids than asked for. Every request is
recorded with its method, its parameters (query and form) and its arrival time."""

from __future__ import annotations

import json
import re
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

BASE = "/entrez/eutils"
HEAD = (
    '<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
    '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n<PubmedArticleSet>\n'
)
ESEARCH_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch 20060628//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">\n'
)
_TOKEN = re.compile(r'\s*(\(|\)|"[^"]*"\[\w+\]|[^\s()]+\[\w+\]|AND\b|OR\b|NOT\b|[^\s()]+)')


@dataclass(frozen=True)
class Held:
    pmid: str
    xml: str
    entered: date
    text: str  # title and abstract, folded for [tiab]
    accessions: frozenset[str]  # ClinicalTrials.gov data bank entries, for [si]


@dataclass(frozen=True)
class EutilsFault:
    """One misbehaviour, consumed by the next request to its endpoint ('esearch' or 'efetch')."""

    endpoint: str
    kind: str  # status | error_in_200 | cut_xml | error_document | extra_ids
    code: int = 200
    retry_after: str | None = None


@dataclass(frozen=True)
class SeenRequest:
    endpoint: str
    method: str
    params: dict[str, str]
    at: float  # time.monotonic() on arrival
    url: str


class EutilsServer:
    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.articles: dict[str, Held] = {}
        self.requests: list[SeenRequest] = []
        self.esearch_xml_only = False  # True: XML whatever retmode asks (NCBI's default format)
        self._faults: list[EutilsFault] = []
        self._lock = threading.Lock()
        server.expect_request(re.compile(r".*")).respond_with_handler(self._handle)

    @property
    def base_url(self) -> str:
        return self.server.url_for(BASE).rstrip("/")

    def add_file(self, path: Path, entered: date, pmids: set[str] | None = None) -> list[str]:
        """Hold the PubmedArticles of an efetch answer (only `pmids`, when given), entered on `entered`."""
        added = []
        for node in ET.parse(path).getroot().findall("PubmedArticle"):
            pmid = node.findtext("MedlineCitation/PMID", "")
            if pmids is None or pmid in pmids:
                self.add(node, entered)
                added.append(pmid)
        return added

    def add(self, node: ET.Element, entered: date) -> None:
        article = node.find("MedlineCitation/Article")
        assert article is not None
        parts = [article.find("ArticleTitle"), *article.findall("Abstract/AbstractText")]
        text = " ".join("".join(part.itertext()) for part in parts if part is not None)
        accessions = {
            number.text or ""
            for bank in article.findall("DataBankList/DataBank")
            if bank.findtext("DataBankName") == "ClinicalTrials.gov"
            for number in bank.findall("AccessionNumberList/AccessionNumber")
        }
        pmid = node.findtext("MedlineCitation/PMID", "")
        held = Held(pmid, ET.tostring(node, encoding="unicode"), entered, _fold(text), frozenset(accessions))
        with self._lock:
            self.articles[pmid] = held

    def fail_next(self, *faults: EutilsFault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def of(self, endpoint: str) -> list[SeenRequest]:
        return [r for r in self.requests if r.endpoint == endpoint]

    # --- handling ---------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        endpoint = request.path.removeprefix(BASE + "/").removesuffix(".fcgi")
        params = {**request.args.to_dict(), **request.form.to_dict()}
        with self._lock:
            self.requests.append(SeenRequest(endpoint, request.method, params, time.monotonic(), request.url))
            fault = next((f for f in self._faults if f.endpoint == endpoint), None)
            if fault is not None:
                self._faults.remove(fault)
        if fault is not None and fault.kind == "status":
            return _status(fault)
        if endpoint == "esearch":
            return self._esearch(params, fault)
        if endpoint == "efetch":
            return self._efetch(params, fault)
        return Response("<html><body>Not Found</body></html>", status=404, content_type="text/html")

    def _esearch(self, params: dict[str, str], fault: EutilsFault | None) -> Response:
        as_json = params.get("retmode") == "json" and not self.esearch_xml_only
        if fault is not None and fault.kind == "error_in_200":
            message = "Invalid query syntax near 'NOT'"
            if as_json:
                return _json({"header": {"type": "esearch", "version": "0.3"}, "esearchresult": {"ERROR": message}})
            return Response(f"{ESEARCH_HEAD}<eSearchResult><ERROR>{message}</ERROR></eSearchResult>",
                            content_type="text/xml")  # fmt: skip
        with self._lock:
            held = list(self.articles.values())
        found = sorted((a.pmid for a in held if _in_window(a, params) and _matches(params["term"], a)), reverse=True)
        start, size = int(params.get("retstart", "0")), int(params.get("retmax", "20"))
        page = found[start : start + size]
        if fault is not None and fault.kind == "extra_ids":
            page = found[start : start + size + 1] or ["99999999"]
            page += ["99999998"] * (size + 1 - len(page))
        if as_json:
            result = {"count": str(len(found)), "retmax": str(len(page)), "retstart": str(start), "idlist": page,
                      "translationset": [], "querytranslation": params["term"]}  # fmt: skip
            return _json({"header": {"type": "esearch", "version": "0.3"}, "esearchresult": result})
        ids = "".join(f"<Id>{pmid}</Id>\n" for pmid in page)
        body = (
            f"{ESEARCH_HEAD}<eSearchResult><Count>{len(found)}</Count><RetMax>{len(page)}</RetMax>"
            f"<RetStart>{start}</RetStart><IdList>\n{ids}</IdList><TranslationSet/>"
            f"<QueryTranslation>{_escape(params['term'])}</QueryTranslation></eSearchResult>\n"
        )
        return Response(body, content_type="text/xml")

    def _efetch(self, params: dict[str, str], fault: EutilsFault | None) -> Response:
        if fault is not None and fault.kind == "error_document":
            body = (
                '<?xml version="1.0" encoding="UTF-8" ?>\n'
                "<eFetchResult>\n\t<ERROR>Empty id list - nothing todo</ERROR>\n</eFetchResult>\n"
            )
            return Response(body, content_type="text/xml")
        ids = [pmid for pmid in params.get("id", "").split(",") if pmid]
        with self._lock:
            chosen = [self.articles[pmid] for pmid in ids if pmid in self.articles]
            if fault is not None and fault.kind == "extra_ids":
                chosen += [a for a in self.articles.values() if a.pmid not in ids][:1]
        body = HEAD + "\n".join(article.xml for article in chosen) + "\n</PubmedArticleSet>\n"
        if fault is not None and fault.kind == "cut_xml":
            body = body[: len(body) // 2]  # a complete HTTP answer holding half a document
        return Response(body, content_type="text/xml; charset=UTF-8")


def _in_window(article: Held, params: dict[str, str]) -> bool:
    if "mindate" not in params:
        return True
    low, high = (date(*map(int, params[k].split("/"))) for k in ("mindate", "maxdate"))
    return params.get("datetype") == "edat" and low <= article.entered <= high


def _matches(term: str, article: Held) -> bool:
    """PubMed's Boolean operators, evaluated left to right as PubMed does; `[si]` looks in the
    ClinicalTrials.gov data bank list, any other field in the title and abstract."""
    tokens = [t.strip() for t in _TOKEN.findall(term)]
    value, rest = _expression(tokens, article)
    assert not rest, f"unparsed query tail {rest!r} in {term!r}"
    return value


def _expression(tokens: list[str], article: Held) -> tuple[bool, list[str]]:
    value, tokens = _operand(tokens, article)
    while tokens and tokens[0] in ("AND", "OR", "NOT"):
        operator = tokens[0]
        right, tokens = _operand(tokens[1:], article)
        value = {"AND": value and right, "OR": value or right, "NOT": value and not right}[operator]
    return value, tokens


def _operand(tokens: list[str], article: Held) -> tuple[bool, list[str]]:
    head, rest = tokens[0], tokens[1:]
    if head == "(":
        value, rest = _expression(rest, article)
        assert rest and rest[0] == ")", "unbalanced parentheses"
        return value, rest[1:]
    word, _, field = head.rstrip("]").rpartition("[")
    if not word:
        word, field = head, "all"
    word = word.strip('"')
    if field == "si":
        return word.upper() in article.accessions, rest
    return f" {_fold(word)} " in f" {article.text} ", rest


def _fold(text: str) -> str:
    return " ".join(re.sub(r"[\W_]+", " ", text.lower()).split())


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _json(body: object) -> Response:
    return Response(json.dumps(body), content_type="application/json; charset=UTF-8")


def _status(fault: EutilsFault) -> Response:
    headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
    if fault.code == 429:
        body = json.dumps({"error": "API rate limit exceeded", "api-key": "127.0.0.1", "count": "4", "limit": "3"})
        return Response(body, status=429, headers=headers, content_type="application/json")
    return Response("<html><body>Service unavailable</body></html>", status=fault.code, headers=headers,
                    content_type="text/html")  # fmt: skip
