"""NCBI E-utilities answers -> plain records. No network and no database here.

- `parse_esearch`: an esearch answer, JSON (`retmode=json`) or XML (the default), -> `SearchPage`
  (count, ids). An `ERROR` inside a 200 answer is a SourceError: NCBI reports a bad query that way.
- `parse_efetch`: a PubmedArticleSet -> `PubmedArticle`s. A document cut off mid-XML, an error
  document (`<eFetchResult><ERROR>`, `<ERROR>`) or anything that is not a PubmedArticleSet is a
  SourceError: the poll fails and stores nothing.

XML is parsed with the standard library: expat resolves no external entities and refuses the
"billion laughs" expansion; the client caps the body's size before it gets here. Only the
article's own ids are read (`PubmedData/ArticleIdList`): the ids inside `ReferenceList` and
`CommentsCorrectionsList` belong to other papers.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from watcher.errors import SourceError
from watcher.jsontext import parse_json
from watcher.matching import extract_doi, extract_nct_ids

PUBMED_ARTICLE_URL = "https://pubmed.ncbi.nlm.nih.gov/{pmid}/"
CTGOV_BANK = "clinicaltrials.gov"
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, start=1)}


@dataclass(frozen=True)
class SearchPage:
    count: int
    ids: list[str]


@dataclass(frozen=True)
class PubmedArticle:
    """One PubmedArticle, normalised: plain-text title and abstract (labelled sections joined)."""

    pmid: str
    title: str
    abstract: str
    journal: str
    published: str | None  # 'YYYY-MM-DD', 'YYYY-MM' or 'YYYY' (electronic date first, else the issue's)
    entered: datetime | None  # the Entrez date: when PubMed got it
    doi: str | None
    publication_types: tuple[str, ...]
    databank_nct_ids: tuple[str, ...]  # DataBankList, ClinicalTrials.gov
    text_nct_ids: tuple[str, ...]  # NCT ids written in the title or the abstract

    @property
    def link(self) -> str:
        return PUBMED_ARTICLE_URL.format(pmid=self.pmid)

    @property
    def nct_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.databank_nct_ids + self.text_nct_ids))

    def named_by(self, nct_id: str) -> str:
        """How the article names a trial: 'its ClinicalTrials.gov data bank entry', 'its title' or
        'its abstract'."""
        if nct_id in self.databank_nct_ids:
            return "its ClinicalTrials.gov data bank entry"
        return "its title" if nct_id in extract_nct_ids(self.title) else "its abstract"

    def text_fields(self) -> dict[str, str]:
        """What matching reads, by field name."""
        return {"title": self.title, "abstract": self.abstract}


# --- esearch --------------------------------------------------------------------------------


def parse_esearch(body: bytes, *, where: str) -> SearchPage:
    """An esearch answer in JSON or XML (told apart by its first character)."""
    text = body.lstrip()
    if text.startswith(b"{"):
        return _esearch_json(text, where)
    return _esearch_xml(_parse_xml(text, where), where)


def _esearch_json(body: bytes, where: str) -> SearchPage:
    try:
        document = parse_json(body)
    except ValueError as exc:
        raise SourceError(f"{where}: esearch answer is not complete JSON ({len(body)} bytes)") from exc
    result = document.get("esearchresult") if isinstance(document, dict) else None
    if not isinstance(result, dict):
        error = document.get("error") if isinstance(document, dict) else None
        raise SourceError(f"{where}: esearch answer without esearchresult{f': {error}' if error else ''}")
    if result.get("ERROR"):
        raise SourceError(f"{where}: NCBI answered ERROR: {_one_line(str(result['ERROR']))}")
    ids = result.get("idlist")
    if not isinstance(ids, list):
        raise SourceError(f"{where}: esearch answer without idlist")
    return SearchPage(count=_count(result.get("count"), where), ids=[_pmid(str(i), where) for i in ids])


def _esearch_xml(root: ET.Element, where: str) -> SearchPage:
    if root.tag != "eSearchResult":
        raise SourceError(f"{where}: not an esearch answer (<{root.tag}>)")
    error = root.findtext("ERROR")
    if error:
        raise SourceError(f"{where}: NCBI answered ERROR: {_one_line(error)}")
    ids = [_pmid(node.text or "", where) for node in root.findall("IdList/Id")]
    return SearchPage(count=_count(root.findtext("Count"), where), ids=ids)


def _count(value: Any, where: str) -> int:
    text = str(value if value is not None else "").strip()
    if not text.isdigit():
        raise SourceError(f"{where}: esearch answer without a Count")
    return int(text)


def _pmid(value: str, where: str) -> str:
    value = value.strip()
    if not value.isdigit():
        raise SourceError(f"{where}: {value[:30]!r} is not a PMID")
    return value


# --- efetch ---------------------------------------------------------------------------------


def parse_efetch(body: bytes, *, where: str) -> list[PubmedArticle]:
    """Every PubmedArticle of a PubmedArticleSet (book records, PubmedBookArticle, are skipped)."""
    root = _parse_xml(body, where)
    error = root.findtext("ERROR") if root.tag != "ERROR" else (root.text or "")
    if root.tag in ("eFetchResult", "ERROR") or error:
        raise SourceError(f"{where}: NCBI answered an error document: {_one_line(error or root.tag)}")
    if root.tag != "PubmedArticleSet":
        raise SourceError(f"{where}: not a PubmedArticleSet (<{root.tag}>)")
    return [parse_article(node, where) for node in root.findall("PubmedArticle")]


def parse_article(node: ET.Element, where: str = "efetch") -> PubmedArticle:
    citation = node.find("MedlineCitation")
    article = citation.find("Article") if citation is not None else None
    pmid = citation.findtext("PMID", "").strip() if citation is not None else ""
    if citation is None or article is None or not pmid.isdigit():
        raise SourceError(f"{where}: a PubmedArticle without MedlineCitation/PMID and Article")
    title = _text(article.find("ArticleTitle")) or _text(article.find("VernacularTitle"))
    abstract = _abstract(article)
    return PubmedArticle(
        pmid=pmid,
        title=title,
        abstract=abstract,
        journal=_journal(article),
        published=_published(article),
        entered=_entered(node),
        doi=_doi(node, article),
        publication_types=tuple(_text(t) for t in article.findall("PublicationTypeList/PublicationType")),
        databank_nct_ids=tuple(_databank_nct_ids(article)),
        text_nct_ids=tuple(extract_nct_ids(title, abstract)),
    )


def _abstract(article: ET.Element) -> str:
    """The abstract's sections joined, each labelled one as 'LABEL: text'."""
    parts = []
    for section in article.findall("Abstract/AbstractText"):
        text, label = _text(section), (section.get("Label") or "").strip()
        if text:
            parts.append(f"{label}: {text}" if label else text)
    return " ".join(parts)


def _journal(article: ET.Element) -> str:
    journal = article.find("Journal")
    if journal is None:
        return ""
    return _text(journal.find("ISOAbbreviation")) or _text(journal.find("Title"))


def _published(article: ET.Element) -> str | None:
    """The electronic publication date when given (a full day), else the issue's date."""
    electronic = article.find("ArticleDate")
    for node in (electronic, article.find("Journal/JournalIssue/PubDate")):
        if node is None:
            continue
        year = (node.findtext("Year") or "").strip()
        if not year and node.findtext("MedlineDate"):
            year = (node.findtext("MedlineDate") or "")[:4]
        if not re.fullmatch(r"\d{4}", year):
            continue
        month = _month(node.findtext("Month"))
        day = (node.findtext("Day") or "").strip()
        if month and day.isdigit():
            return f"{year}-{month:02d}-{int(day):02d}"
        return f"{year}-{month:02d}" if month else year
    return None


def _month(value: str | None) -> int | None:
    text = (value or "").strip().lower()
    if text.isdigit() and 1 <= int(text) <= 12:
        return int(text)
    return _MONTHS.get(text[:3])


def _entered(node: ET.Element) -> datetime | None:
    for when in node.findall("PubmedData/History/PubMedPubDate"):
        if when.get("PubStatus") == "entrez":
            try:
                year, month, day, hour, minute = (
                    int(when.findtext(name) or default)
                    for name, default in (("Year", ""), ("Month", "1"), ("Day", "1"), ("Hour", "0"), ("Minute", "0"))
                )
                return datetime(year, month, day, hour, minute, tzinfo=UTC)
            except ValueError:
                return None
    return None


def _doi(node: ET.Element, article: ET.Element) -> str | None:
    """The article's own DOI: its ArticleIdList (never the cited papers' in ReferenceList), else
    its ELocationID."""
    for article_id in node.findall("PubmedData/ArticleIdList/ArticleId"):
        if article_id.get("IdType") == "doi":
            doi = extract_doi(_text(article_id))
            if doi:
                return doi
    for location in article.findall("ELocationID"):
        if location.get("EIdType") == "doi":
            doi = extract_doi(_text(location))
            if doi:
                return doi
    return None


def _databank_nct_ids(article: ET.Element) -> list[str]:
    found: list[str] = []
    for bank in article.findall("DataBankList/DataBank"):
        if (bank.findtext("DataBankName") or "").strip().lower() != CTGOV_BANK:
            continue
        for number in bank.findall("AccessionNumberList/AccessionNumber"):
            found += extract_nct_ids(_text(number))
    return list(dict.fromkeys(found))


# --- shared ---------------------------------------------------------------------------------


def _parse_xml(body: bytes, where: str) -> ET.Element:
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise SourceError(f"{where}: answer cut off or not XML ({len(body)} bytes): {exc}") from exc


def _text(node: ET.Element | None) -> str:
    """An element's text with inline markup (<i>, <sup>, <b>) dropped, whitespace folded."""
    return " ".join("".join(node.itertext()).split()) if node is not None else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
