"""Pure: does this text match a watch, and why. One engine for registry records and feed items.

A watch has `conditions`, `terms` and `exclude` words. A text (a mapping of field name -> text)
matches when it mentions any condition (if conditions are given) AND any term (if terms are given)
AND none of the excluded words. With neither conditions nor terms it matches nothing.

How a word is found in a text:
- HTML tags are removed and entities unescaped first (`strip_html`); text and word are put in
  Unicode NFKC form, and the comparison ignores case.
- Only letters and digits count. Any run of other characters (spaces, non-breaking spaces,
  hyphens, unicode dashes ‐ – —, slashes, punctuation) between two letters or digits is an
  optional break, in the word and in the text alike. So `CAR-T` = `CAR T` = `CART`,
  `bi-specific` = `bispecific`, `PD-1` = `PD1` = `PD 1`, `PD-1/PD-L1` = `PD-1 / PD-L1`, and
  the watch word `CART` also finds `CAR-T` in the text.
- Whole words only: a match must start and end at a break, so `RCC` does not match `PRCCX`,
  `CART` does not match `cartilage` and `PD-1` does not match `PD-L1` or `PD-10`.
In other words: a word matches when a run of consecutive text tokens (maximal runs of letters and
digits), glued together, spells the word's tokens glued together.
Known limits: a break may be any punctuation, so a phrase can span a sentence end ("renal. Cell
carcinoma"); `ccRCC` is its own word (watch it too); `tumour` and `tumor` are different words.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from watcher.config import WatchConfig
from watcher.model import get_path

EXCERPT_CHARS = 80

_INLINE_TAGS = "a|abbr|b|bdi|bdo|cite|code|dfn|em|font|i|kbd|mark|q|s|samp|small|span|strike|strong|sub|sup|tt|u|var"
# Each begins with "<" (the case-blind part scoped), which the regex engine scans for fast.
_INLINE_TAG = re.compile(rf"<(?i:/?(?:{_INLINE_TAGS})(?:\s[^<>]*)?/?>)")
_OTHER_TAG = re.compile(r"<(?:!--.*?-->|!\[CDATA\[|/?[A-Za-z][^<>]*>|![^<>]*>|\?[^<>]*>)|\]\]>", re.DOTALL)
_NCT_ID = re.compile(r"(?<![A-Za-z0-9])NCT(\d{8})(?!\d)", re.IGNORECASE)
_DOI = re.compile(r"(?<![0-9A-Za-z])10\.\d{4,9}/[^\s\"'<>?#]+")
_DOI_TRAILING = ".,;:'\"]}>"
_BREAK = r"[\W_]*"
_ALNUM = r"[^\W_]"


@dataclass(frozen=True)
class Reason:
    """One hit: the watch word, the field it was found in, and the text around it."""

    word: str
    field: str
    text: str

    def describe(self) -> str:
        return f'"{self.word}" in {self.field}'


@dataclass(frozen=True)
class Match:
    """Whether a text matches a watch; `reasons` are the condition and term hits (one per word, in
    the first field that has it), `excluded_by` the exclude words found (a reason not to match)."""

    matched: bool
    reasons: tuple[Reason, ...] = ()
    excluded_by: tuple[Reason, ...] = ()

    def describe(self) -> str:
        """'"CAR-T" in title; "renal cell carcinoma" in summary' (and what excluded it, if anything)."""
        parts = [reason.describe() for reason in self.reasons]
        parts += [f"excluded by {reason.describe()}" for reason in self.excluded_by]
        return "; ".join(parts) if parts else "no watch word found"


def strip_html(text: str) -> str:
    """Plain text: tags removed (inline ones such as <em>, <sub> without a space, block ones with a
    space), entities unescaped, whitespace (also non-breaking spaces) folded to single spaces."""
    return " ".join(html.unescape(strip_tags(text)).split())


def strip_tags(text: str) -> str:
    """strip_html's first step: tags removed (inline ones without a space), entities and spaces
    left as they are."""
    return _OTHER_TAG.sub(" ", _INLINE_TAG.sub("", text)) if "<" in text else text


def word_tokens(word: str) -> list[str]:
    """The letter-and-digit runs of a word, case-folded: 'CAR-T' -> ['car', 't']."""
    return re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", word).casefold())


@lru_cache(maxsize=4096)
def word_pattern(word: str) -> re.Pattern[str] | None:
    """The compiled search for one watch word (see the module docstring); None for a word without
    a single letter or digit (it can match nothing)."""
    letters = "".join(word_tokens(word))
    if not letters:
        return None
    body = _BREAK.join(re.escape(char) for char in letters)
    return re.compile(rf"(?<!{_ALNUM}){body}(?!{_ALNUM})", re.IGNORECASE)


def find_word(word: str, text: str) -> str | None:
    """An excerpt of about 80 characters around the first place `text` mentions `word`, or None.
    `text` must already be plain (see `prepare_text`)."""
    pattern = word_pattern(word)
    found = pattern.search(text) if pattern else None
    return _excerpt(text, found.start(), found.end()) if found else None


def prepare_text(text: str) -> str:
    """What matching reads: HTML stripped, entities unescaped, NFKC, whitespace folded."""
    return unicodedata.normalize("NFKC", strip_html(text))


def match_text(
    *,
    fields: Mapping[str, str],
    conditions: Sequence[str],
    terms: Sequence[str],
    exclude: Sequence[str],
) -> Match:
    """Does this record match the watch words, and why (see the module docstring for the rule)."""
    if not conditions and not terms:
        return Match(matched=False)
    plain = {name: prepare_text(text) for name, text in fields.items() if text}
    condition_hits = _hits(conditions, plain)
    term_hits = _hits(terms, plain)
    excluded_by = _hits(exclude, plain)
    matched = (not conditions or bool(condition_hits)) and (not terms or bool(term_hits)) and not excluded_by
    return Match(matched=matched, reasons=tuple(condition_hits + term_hits), excluded_by=tuple(excluded_by))


def _hits(words: Sequence[str], plain: Mapping[str, str]) -> list[Reason]:
    """One reason per word found, naming the first field (in the mapping's order) that has it."""
    hits: list[Reason] = []
    for word in dict.fromkeys(words):
        for name, text in plain.items():
            excerpt = find_word(word, text)
            if excerpt is not None:
                hits.append(Reason(word=word, field=name, text=excerpt))
                break
    return hits


def _excerpt(text: str, start: int, end: int, width: int = EXCERPT_CHARS) -> str:
    """About `width` characters centred on text[start:end], cut at spaces, with '…' where cut."""
    if len(text) <= width:
        return text
    room = max(0, width - (end - start)) // 2
    left, right = max(0, start - room), min(len(text), end + room)
    if left > 0:
        space = text.find(" ", left, start)
        left = space + 1 if space != -1 else left
    if right < len(text):
        space = text.rfind(" ", end, right)
        right = space if space != -1 else right
    return ("…" if left > 0 else "") + text[left:right].strip() + ("…" if right < len(text) else "")


def extract_nct_ids(*texts: str) -> list[str]:
    """Every ClinicalTrials.gov id (NCT + 8 digits, any case) in the texts, upper-cased, in order of
    first appearance, without repeats: extract_nct_ids('see nct05805501', 'NCT05805501') ->
    ['NCT05805501']."""
    found: dict[str, None] = {}
    for text in texts:
        for digits in _nct_digits(text or ""):
            found.setdefault(f"NCT{digits}", None)
    return list(found)


def _nct_digits(text: str) -> list[str]:
    """_NCT_ID.findall(text), its pattern tried only where "nct" is (in any case): a search of the
    whole text case-blind is five times slower. (When lower() changes the text's length, as 'İ'
    does, the positions would not hold: findall then.)"""
    lowered = text.lower()
    if len(lowered) != len(text):
        return _NCT_ID.findall(text)
    found, start = [], lowered.find("nct")
    while start != -1:
        match = _NCT_ID.match(text, start)  # its look-behind sees the text before `start`
        if match:
            found.append(match.group(1))
        start = lowered.find("nct", start + 3)
    return found


def extract_doi(text: str) -> str | None:
    """The first DOI in `text`, lower-cased, without a `doi:` or `https://doi.org/` prefix, a query
    string or trailing punctuation: 'https://doi.org/10.1038/S41586-024-07811-4.' ->
    '10.1038/s41586-024-07811-4'."""
    found = _DOI.search(text or "")
    if not found:
        return None
    doi = found.group(0)
    while doi and (doi[-1] in _DOI_TRAILING or (doi[-1] == ")" and doi.count("(") < doi.count(")"))):
        doi = doi[:-1]
    return doi.lower() if "/" in doi and not doi.endswith("/") else None


# --- registry records ---------------------------------------------------------------------------


def why_study_matches(record: Mapping[str, Any], nct_id: str, watch: WatchConfig) -> str:
    """Why a study the registry returned for a watch matches it: its NCT id, or where the watch's
    words occur ("" when only the registry's own search, with its synonyms, found it)."""
    if nct_id in watch.nct_ids:
        return "by its NCT id"
    match = match_text(fields=study_fields(record), conditions=watch.conditions, terms=watch.terms, exclude=())
    return match.describe() if match.reasons else ""


def study_fields(record: Mapping[str, Any]) -> dict[str, str]:
    """The texts of a registry record the matcher reads, by field name."""
    protocol = record.get("protocolSection") or {}

    def joined(path: str, key: str | None = None) -> str:
        value = get_path(protocol, path) or []
        items = [item.get(key, "") if key and isinstance(item, dict) else item for item in value]
        return "; ".join(str(item) for item in items if item)

    titles = (
        get_path(protocol, "identificationModule.briefTitle"),
        get_path(protocol, "identificationModule.officialTitle"),
    )
    return {
        "title": " / ".join(str(title) for title in titles if title),
        "conditions": joined("conditionsModule.conditions"),
        "keywords": joined("conditionsModule.keywords"),
        "interventions": joined("armsInterventionsModule.interventions", "name"),
        "summary": str(get_path(protocol, "descriptionModule.briefSummary") or ""),
    }
