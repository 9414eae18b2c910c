"""Crossref's REST API: a journal's works created in a window, cursor-paged, as `Readout`s (#20).

`GET {base}/journals/{issn}/works?filter=from-created-date:D,until-created-date:D'&rows=1000&
cursor=*&select=…&mailto=…`, then `next-cursor` until a page has fewer items than asked for
(Crossref may hand back the same cursor string each time: that is normal). A page that brings no
DOI not already read, or paging past `max_pages`, fails the poll. Pacing: at most
`requests_per_second`, and never faster than the `x-rate-limit-*` headers of the last answer allow
(literature.readouts.ServerPacer); 429 and 5xx are retried after their Retry-After (watcher.http).

An item whose `issue` ends in `_suppl` is a meeting abstract (its number in `page`, or an ESMO
title's prefix "1829P", "LBA5"); `posted-content` is a preprint; the rest are articles. NCT ids
come from `clinical-trial-number` (Crossref may give them lower-case) and the abstract and title.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from typing import Any

from watcher.errors import SourceError
from watcher.http import HttpClient, interruptible_sleep, make_session
from watcher.literature.readouts import ARTICLE, MEETING_ABSTRACT, PREPRINT, Readout, ServerPacer, read_abstract
from watcher.matching import extract_nct_ids, strip_html
from watcher.readouts_config import CrossrefConfig

ROWS = 1000  # Crossref's largest page
SELECT = (
    "DOI,title,abstract,container-title,short-container-title,ISSN,issue,volume,page,issued,created,"
    "type,subtype,clinical-trial-number,relation,URL"
)
ABBREVIATIONS = {"1527-7755": "J Clin Oncol", "0732-183X": "J Clin Oncol", "0923-7534": "Ann Oncol",
                 "1569-8041": "Ann Oncol"}  # fmt: skip
_ESMO_NUMBER = re.compile(r"^\s*((?:LBA)?\d{1,5}[A-Z]{0,4})\s+(?=\S)")
_ANNALS_SUPPLEMENT = re.compile(r"^(?:S|Suppl(?:ement)?[ _]?)\d+$", re.IGNORECASE)  # ESMO: Annals' "Supplement_5"
Window = tuple[date, date]


class CrossrefClient:
    """Works of a journal in a created-date window, paged by cursor, paced by the server."""

    def __init__(
        self, config: CrossrefConfig, *, stopping: threading.Event | None = None, rows: int = ROWS,
        sleep: Callable[[float], None] | None = None,
    ) -> None:  # fmt: skip
        self.config, self.rows = config, max(1, min(rows, ROWS))
        sleep = sleep or (interruptible_sleep(stopping) if stopping is not None else time.sleep)
        self.pacer = ServerPacer(config.requests_per_second, sleep=sleep)
        self.http = HttpClient(
            session=make_session(f"trialwatch (+mailto:{config.mailto})"), timeout=config.timeout, pacer=self.pacer,
            attempts=config.max_attempts, backoff=config.backoff_seconds, sleep=sleep, on_headers=self.pacer.observe,
        )  # fmt: skip

    @property
    def requests_made(self) -> int:
        return self.http.requests_made

    def url(self, issn: str) -> str:
        return f"{self.config.base_url}/journals/{issn}/works"

    def params(self, window: Window, *, cursor: str = "*", rows: int | None = None) -> dict[str, str]:
        """The request's parameters (the query `trialwatch queries` prints)."""
        span = f"from-created-date:{window[0].isoformat()},until-created-date:{window[1].isoformat()}"
        rows = self.rows if rows is None else rows
        return {"filter": span, "rows": str(rows), "cursor": cursor, "select": SELECT, "mailto": self.config.mailto}

    def works(self, issn: str, window: Window) -> list[Readout]:
        """Every work of the journal created in the window; a repeating page or too many pages fail."""
        cursor, seen, works = "*", set[str](), list[Readout]()
        for number in range(1, self.config.max_pages + 1):
            items, next_cursor = self._page(issn, window, cursor)
            fresh = [work for work in items if work.source_id not in seen]
            if items and not fresh:
                raise SourceError(f"Crossref {issn}: page {number} repeats works already read: paging stopped")
            seen.update(work.source_id for work in fresh)
            works += fresh
            if len(items) < self.rows or not next_cursor:
                return works
            cursor = next_cursor
        raise SourceError(f"Crossref {issn}: more than {self.config.max_pages} pages of {self.rows}; poll stopped")

    def count(self, issn: str, window: Window) -> int:
        """How many works the journal has in the window (nothing listed)."""
        payload = self.http.fetch_json(self.url(issn), params=self.params(window, rows=0),
                                       max_bytes=self.config.max_bytes)  # fmt: skip
        total = _message(payload, f"Crossref {issn}").get("total-results")
        return total if isinstance(total, int) else 0

    def _page(self, issn: str, window: Window, cursor: str) -> tuple[list[Readout], str | None]:
        payload = self.http.fetch_json(self.url(issn), params=self.params(window, cursor=cursor),
                                       max_bytes=self.config.max_bytes)  # fmt: skip
        message = _message(payload, f"Crossref {issn}")
        items = message.get("items")
        if not isinstance(items, list):
            raise SourceError(f"Crossref {issn}: the answer has no list of items")
        if len(items) > self.rows:
            raise SourceError(f"Crossref {issn}: {len(items)} items where at most {self.rows} were asked for")
        works = [work for work in (parse_work(item) for item in items if isinstance(item, dict)) if work]
        next_cursor = message.get("next-cursor")
        return works, next_cursor if isinstance(next_cursor, str) and next_cursor else None


def _message(payload: Any, where: str) -> dict[str, Any]:
    if not isinstance(payload, dict) or payload.get("status") not in ("ok", None) or "message" not in payload:
        detail = str(payload.get("message") if isinstance(payload, dict) else payload)[:200]
        raise SourceError(f"{where}: not a list of works: {detail}")
    message = payload["message"]
    if not isinstance(message, dict):
        raise SourceError(f"{where}: not a list of works: {str(message)[:200]}")
    return message


def parse_work(item: Mapping[str, Any]) -> Readout | None:
    """One Crossref work as a Readout; None without a DOI."""
    doi = str(item.get("DOI") or "").strip().lower()
    if not doi.startswith("10."):
        return None
    title = strip_html(_first(item.get("title")))
    abstract = read_abstract(str(item.get("abstract") or ""))
    issue = str(item.get("issue") or "")
    item_type = _item_type(item, issue)
    return Readout(
        source="crossref", item_type=item_type, source_id=doi, doi=doi, title=title, markup=abstract.markup,
        parsed=abstract.parsed, quick=abstract.quick,
        journal=strip_html(_first(item.get("container-title"))), journal_abbreviation=_abbreviation(item),
        volume=str(item.get("volume") or ""), issue=issue, number=_number(item, title, item_type),
        year=_year(item), published=_day(item.get("issued")), link=str(item.get("URL") or f"https://doi.org/{doi}"),
        named_by=_named_by(item, title, abstract.trials),
        published_as=tuple(_related(item, "is-preprint-of")), preprints=tuple(_related(item, "has-preprint")),
    )  # fmt: skip


def _item_type(item: Mapping[str, Any], issue: str) -> str:
    if issue.lower().endswith("_suppl") or _ANNALS_SUPPLEMENT.match(issue):
        return MEETING_ABSTRACT
    if item.get("type") == "posted-content" and item.get("subtype", "preprint") == "preprint":
        return PREPRINT
    return ARTICLE


def _number(item: Mapping[str, Any], title: str, item_type: str) -> str:
    """A meeting abstract's number: the first page ("4068-4068"), else an ESMO title's prefix."""
    if item_type != MEETING_ABSTRACT:
        return ""
    page = str(item.get("page") or "").split("-")[0].strip()
    if page:
        return page
    found = _ESMO_NUMBER.match(title)
    return found.group(1) if found else ""


def _named_by(item: Mapping[str, Any], title: str, abstract_ids: list[str]) -> dict[str, str]:
    named: dict[str, str] = {}
    for entry in item.get("clinical-trial-number") or []:
        if isinstance(entry, dict):
            for nct in extract_nct_ids(str(entry.get("clinical-trial-number") or "")):
                named.setdefault(nct, "its clinical-trial-number")
    for nct in abstract_ids:
        named.setdefault(nct, "its abstract")
    for nct in extract_nct_ids(title):
        named.setdefault(nct, "its title")
    return named


def _related(item: Mapping[str, Any], relation: str) -> Iterator[str]:
    relations = item.get("relation")
    entries = relations.get(relation) if isinstance(relations, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and str(entry.get("id-type", "doi")).lower() == "doi" and entry.get("id"):
            yield str(entry["id"]).strip().lower().removeprefix("https://doi.org/")


def _abbreviation(item: Mapping[str, Any]) -> str:
    for issn in item.get("ISSN") or []:
        if str(issn).upper() in ABBREVIATIONS:
            return ABBREVIATIONS[str(issn).upper()]
    return strip_html(_first(item.get("short-container-title")))


def _first(value: Any) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value or "")


def _date_parts(value: Any) -> list[int]:
    parts = value.get("date-parts") if isinstance(value, dict) else None
    first = parts[0] if isinstance(parts, list) and parts and isinstance(parts[0], list) else []
    return [part for part in first if isinstance(part, int)]


def _year(item: Mapping[str, Any]) -> str:
    parts = _date_parts(item.get("issued")) or _date_parts(item.get("created"))
    return str(parts[0]) if parts else ""


def _day(value: Any) -> str | None:
    parts = _date_parts(value)
    return f"{parts[0]:04d}-{parts[1]:02d}-{parts[2]:02d}" if len(parts) >= 3 else None
