"""What Crossref and Europe PMC share (#20): the plain record of one work (`Readout`), its kind
(meeting abstract, preprint, article) and how it is shown, its JATS abstract as plain text, and
pacing by the server's own rate headers.

- A JATS abstract is parsed as XML with defusedxml (no entity expansion, no DTD): its text, block
  elements (p, title, sec, list-item) apart. A fragment that is not well-formed, or that carries a
  DTD or entities, falls back to tag stripping (a DTD and its entity declarations dropped first,
  entity references left as written). An abstract is cut at MAX_ABSTRACT_CHARS before parsing.
- A work keeps its abstract as sent (`Readout.markup`) and parses it when first asked
  (`Readout.abstract`): a poll reads most abstracts only through `quick_text`, which gives the
  same letters and digits without a parse (tags dropped) when the markup is plain, and the
  parse is kept for the works a watch's words or an NCT id may be in.
- Shown as "Meeting abstract 4068, J Clin Oncol 39 (15_suppl), 2021", "Preprint, medRxiv, 2025" or
  "Article, European Urology, 2025" (`Readout.label`), never "article" for a meeting abstract.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from watcher.http import Pacer
from watcher.matching import extract_nct_ids, strip_html, strip_tags

MEETING_ABSTRACT, PREPRINT, ARTICLE = "meeting_abstract", "preprint", "article"
ITEM_TYPE_WORDS = {MEETING_ABSTRACT: "meeting abstract", PREPRINT: "preprint", ARTICLE: "article"}
MAX_ABSTRACT_CHARS = 100_000  # a 5 MB abstract is cut here, then read
_JATS_ROOT = (
    '<abstract xmlns:jats="http://www.ncbi.nlm.nih.gov/JATS1" xmlns:mml="http://www.w3.org/1998/Math/MathML" '
    'xmlns:xlink="http://www.w3.org/1999/xlink">{}</abstract>'
)
_BLOCKS = frozenset({"p", "title", "sec", "list-item", "label", "abstract", "caption", "td", "th", "tr", "break"})
_DTD = re.compile(r"<!DOCTYPE[^\[>]*(?:\[.*?\])?\s*>", re.IGNORECASE | re.DOTALL)
_ENTITY_DECL = re.compile(r"<!ENTITY[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_XML_ENTITY = re.compile(r"&(?:amp|lt|gt|quot|apos);")
_BLOCK_TAG = re.compile(rf"</?(?:[^\s/<>:]+:)?(?:{'|'.join(sorted(_BLOCKS))})(?=[\s/>])[^<>]*>")
_TAG_THEN_NOT_ASCII = re.compile(r">[^\x00-\x7f]")


@dataclass(frozen=True)
class Readout:
    """One work as Crossref or Europe PMC gives it, in plain texts; `doi` lower-cased."""

    source: str  # "crossref" | "europepmc"
    item_type: str  # MEETING_ABSTRACT | PREPRINT | ARTICLE
    source_id: str  # the DOI (Crossref) or SRC:ID (Europe PMC): unique within the source
    title: str
    doi: str | None = None
    pmid: str | None = None
    markup: str = ""  # the abstract as sent (JATS), cut at MAX_ABSTRACT_CHARS; read when `abstract` is asked
    parsed: str | None = None  # its text, when the source has read it already
    quick: str | None = field(default=None, repr=False, compare=False)  # quick_text(markup), when known
    journal: str = ""  # the journal's (or preprint server's) name
    journal_abbreviation: str = ""  # "J Clin Oncol"
    volume: str = ""
    issue: str = ""
    number: str = ""  # a meeting abstract's number ("4068", "LBA5")
    year: str = ""
    published: str | None = None  # YYYY-MM-DD when known
    link: str = ""
    named_by: dict[str, str] = field(default_factory=dict)  # NCT id -> how the work names it
    published_as: tuple[str, ...] = ()  # a preprint: the DOIs of its published version
    preprints: tuple[str, ...] = ()  # an article: the DOIs of its preprints

    @cached_property
    def abstract(self) -> str:
        """The abstract as plain text (jats_text of the markup, read once)."""
        return self.parsed if self.parsed is not None else jats_text(self.markup)

    @cached_property
    def quick_abstract(self) -> str:
        """Text with the abstract's letters and digits, in order: quick_text of the markup, or the
        abstract itself when the markup is not plain."""
        quick = self.parsed if self.parsed is not None else self.quick or quick_text(self.markup)
        return self.abstract if quick is None else quick

    @property
    def nct_ids(self) -> tuple[str, ...]:
        return tuple(self.named_by)

    def text_fields(self) -> dict[str, str]:
        """What matching reads, by field name (an ESMO abstract has its title alone)."""
        return {"title": self.title, "abstract": self.abstract}

    @property
    def label(self) -> str:
        """'Meeting abstract 4068, J Clin Oncol 39 (15_suppl), 2021'."""
        journal = self.journal_abbreviation or self.journal
        if self.item_type == MEETING_ABSTRACT:
            number = f" {self.number}" if self.number else ""
            where = f"{journal} {self.volume}".strip() + (f" ({self.issue})" if self.issue else "")
            return ", ".join(part for part in (f"Meeting abstract{number}", where, self.year) if part)
        if self.item_type == PREPRINT:
            server = f"{self.journal} preprint" if self.journal else "Preprint"  # "medRxiv preprint"
            return ", ".join(part for part in (server, self.year) if part)
        return ", ".join(part for part in ("Article", journal, self.year) if part)

    def details(self, *, why: str | None) -> dict[str, object]:
        """The change's details: the fields every article change carries, and this source's."""
        return {
            "source": self.source, "item_type": self.item_type, "label": self.label, "pmid": self.pmid,
            "doi": self.doi, "journal": self.journal, "title": self.title, "link": self.link,
            "nct_ids": list(self.nct_ids), "named_by": dict(self.named_by), "published": self.published,
            "volume": self.volume, "issue": self.issue, "number": self.number, "why": why,
        }  # fmt: skip


def jats_text(abstract: str) -> str:
    """A JATS abstract (Crossref's `<jats:p>` fragments) as plain text; see the module docstring."""
    abstract = abstract[:MAX_ABSTRACT_CHARS]
    if "<" not in abstract:
        return strip_html(abstract)
    try:
        root = fromstring(_JATS_ROOT.format(abstract), forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError):
        return strip_html(_ENTITY_DECL.sub(" ", _DTD.sub(" ", abstract)))
    parts: list[str] = []
    _walk(root, parts)
    return " ".join("".join(parts).split())


class Abstract(NamedTuple):
    """A work's abstract as read_abstract leaves it (Readout's markup, parsed, quick)."""

    markup: str  # as sent, cut at MAX_ABSTRACT_CHARS
    trials: list[str]  # the NCT ids its text names
    parsed: str | None  # its text, when finding them took a parse (else read when asked)
    quick: str | None  # quick_text(markup)


def read_abstract(markup: str) -> Abstract:
    """An abstract as sent, and the NCT ids its text names. A plain abstract (quick_text) that
    has "nct" nowhere names none; one that has is read for ids both as the parse and as the
    fallback would give its text (each tag a space or not): when both agree, no parse is needed."""
    markup = markup[:MAX_ABSTRACT_CHARS]
    quick = quick_text(markup)
    if quick is not None and "nct" not in quick.lower():
        return Abstract(markup, [], None, quick)
    trials = _trials_unparsed(markup) if quick is not None else None
    if trials is not None:
        return Abstract(markup, trials, None, quick)
    text = jats_text(markup)
    return Abstract(markup, extract_nct_ids(text), text, quick)


def _trials_unparsed(markup: str) -> list[str] | None:
    """A plain abstract's NCT ids, when its text as the parse would give it (block tags a space,
    others nothing) and as the fallback would (strip_html: inline tags nothing, others a space)
    name the same; None when they do not. The five entities are all punctuation: a space here."""
    parsed = _XML_ENTITY.sub(" ", _TAG.sub("", _BLOCK_TAG.sub(" ", markup)))
    stripped = _XML_ENTITY.sub(" ", strip_tags(markup))
    trials = extract_nct_ids(parsed)
    return trials if parsed == stripped or trials == extract_nct_ids(stripped) else None


def quick_text(markup: str) -> str | None:
    """A JATS abstract's text without an XML parse: tags dropped, the five XML entities made
    spaces. Its letters and digits in order (crossref_pipeline.squash) are those of
    jats_text(markup), parsed or not, when the markup is plain: no comment, CDATA, DTD or
    processing instruction, no '<' or '>' outside a tag, no '&' but those entities, no tag right
    before a non-ASCII character (NFKC could join that to what precedes the tag). None otherwise."""
    markup = markup[:MAX_ABSTRACT_CHARS]
    if "<!" in markup or "<?" in markup or _TAG_THEN_NOT_ASCII.search(markup):
        return None
    text = _TAG.sub("", markup) if "<" in markup else markup
    if "&" in text:
        text = _XML_ENTITY.sub(" ", text)
    if "<" in text or ">" in text or "&" in text:
        return None
    return text


def _walk(element: Element, parts: list[str]) -> None:
    block = element.tag.rpartition("}")[2] in _BLOCKS
    if block:
        parts.append(" ")
    parts.append(element.text or "")
    for child in element:
        _walk(child, parts)
        parts.append(child.tail or "")
    if block:
        parts.append(" ")


def item_type_words(item_type: str) -> str:
    return ITEM_TYPE_WORDS.get(item_type, "article")


class ServerPacer(Pacer):
    """A Pacer that never goes faster than `requests_per_second` nor than the server allows: each
    answer's `x-rate-limit-limit` requests per `x-rate-limit-interval` ("1s", "60s"). Requests go
    one at a time, within any `x-concurrency-limit` (kept in `concurrency` for `check`)."""

    def __init__(self, requests_per_second: float, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(requests_per_second, sleep=sleep)
        self.configured = self.interval
        self.concurrency: int | None = None
        self._headers_lock = threading.Lock()

    def observe(self, headers: Mapping[str, str]) -> None:
        limit = _number(headers.get("x-rate-limit-limit"))
        window = _seconds(headers.get("x-rate-limit-interval"))
        concurrency = _number(headers.get("x-concurrency-limit"))
        with self._headers_lock:
            if limit and window is not None:
                self.interval = max(self.configured, window / limit)
            if concurrency:
                self.concurrency = int(concurrency)


def _number(value: str | None) -> float | None:
    try:
        number = float((value or "").strip())
    except ValueError:
        return None
    return number if number > 0 else None


def _seconds(value: str | None) -> float | None:
    """'1s' -> 1.0, '2m' -> 120.0, '1' -> 1.0; anything else None."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", value or "")
    if not found:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[found.group(2) or "s"]
    return float(found.group(1)) * scale
