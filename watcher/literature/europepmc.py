"""Europe PMC's REST search: a watch's preprints and the works that mention its trials, as
`Readout`s (#20).

Two kinds of query per watch, each AND `FIRST_IDATE:[D TO D']` (first indexed):
- preprints (`preprint_query`): `SRC:PPR AND (the watch's words)`, conditions OR-ed AND terms
  OR-ed, NOT the excluded words; a phrase or a word with marks quoted;
- trial mentions (`trial_queries`): `(ACCESSION_ID:NCT… OR "NCT…" OR …)` over the NCT ids the watch
  holds, NCT_IDS_PER_QUERY at a time (text mining finds an id named only in a methods section).
`resultType=core&format=json&pageSize=1000&cursorMark=*`, then `nextCursorMark` until it is
absent or unchanged or a page is short; a page of nothing new or too many pages fail the poll, and
so does an `errCode` inside an HTTP 200. A `PPR` record is a preprint (its server from
`bookOrReportDetails.publisher`); any other is an article, the same item as the PubMed or feed
item with its PMID or DOI.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from watcher.errors import SourceError
from watcher.http import HttpClient, interruptible_sleep, make_session
from watcher.literature.readouts import (
    ARTICLE,
    PREPRINT,
    Readout,
    ServerPacer,
    read_abstract,
)
from watcher.matching import extract_doi, extract_nct_ids, strip_html
from watcher.readouts_config import EuropepmcConfig
from watcher.watch import WatchConfig

PAGE_SIZE = 1000
NCT_IDS_PER_QUERY = 10  # '(ACCESSION_ID:NCT01234567 OR "NCT01234567")' is 44 characters
FULL_TEXT = "its full text (Europe PMC text mining)"
Window = tuple[date, date]
_PLAIN_WORD = re.compile(r"^[^\W_]+$")


def _term(word: str) -> str:
    cleaned = " ".join(re.sub(r'["()\[\]:]', " ", word).split())
    return cleaned if _PLAIN_WORD.match(cleaned) and cleaned.upper() not in ("AND", "OR", "NOT") else f'"{cleaned}"'


def _any(words: Sequence[str]) -> str:
    parts = list(dict.fromkeys(_term(word) for word in words))
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


def words_query(watch: WatchConfig) -> str | None:
    """The watch's words in Europe PMC syntax; None without words."""
    groups = [_any(words) for words in (watch.conditions, watch.terms) if words]
    if not groups:
        return None
    query = " AND ".join(groups)
    return f"{query} NOT {_any(watch.exclude)}" if watch.exclude else query


def preprint_query(watch: WatchConfig) -> str | None:
    words = words_query(watch)
    return f"SRC:PPR AND ({words})" if words else None


def trial_queries(nct_ids: Sequence[str]) -> list[str]:
    unique = list(dict.fromkeys(nct_ids))
    return [
        "(" + " OR ".join(f'ACCESSION_ID:{nct} OR "{nct}"' for nct in unique[start : start + NCT_IDS_PER_QUERY]) + ")"
        for start in range(0, len(unique), NCT_IDS_PER_QUERY)
    ]


def query_signature(watch: WatchConfig) -> str:
    """Changes when the watch's words change (its next Europe PMC poll is then a baseline)."""
    return hashlib.sha256((preprint_query(watch) or "").encode()).hexdigest()[:16]


def in_window(query: str, window: Window | None) -> str:
    return f"({query}) AND FIRST_IDATE:[{window[0].isoformat()} TO {window[1].isoformat()}]" if window else query


class EuropepmcClient:
    """Europe PMC searches, cursor-paged, paced (and by any rate headers the server sends)."""

    def __init__(
        self, config: EuropepmcConfig, *, stopping: threading.Event | None = None, page_size: int = PAGE_SIZE,
        sleep: Callable[[float], None] | None = None,
    ) -> None:  # fmt: skip
        self.config, self.page_size = config, max(1, min(page_size, PAGE_SIZE))
        sleep = sleep or (interruptible_sleep(stopping) if stopping is not None else time.sleep)
        self.pacer = ServerPacer(config.requests_per_second, sleep=sleep)
        contact = f" (+mailto:{config.email})" if config.email else ""
        self.http = HttpClient(
            session=make_session(f"trialwatch{contact}"), timeout=config.timeout, pacer=self.pacer,
            attempts=config.max_attempts, backoff=config.backoff_seconds, sleep=sleep, on_headers=self.pacer.observe,
        )  # fmt: skip

    @property
    def requests_made(self) -> int:
        return self.http.requests_made

    @property
    def url(self) -> str:
        return f"{self.config.base_url}/search"

    def params(self, query: str, *, cursor: str = "*", page_size: int | None = None) -> dict[str, str]:
        params = {"query": query, "resultType": "core", "format": "json",
                  "pageSize": str(page_size or self.page_size), "cursorMark": cursor}  # fmt: skip
        return params | ({"email": self.config.email} if self.config.email else {})

    def search(self, query: str, window: Window | None) -> list[Readout]:
        """Every record the query finds in the window."""
        cursor, seen, found = "*", set[str](), list[Readout]()
        full = in_window(query, window)
        for number in range(1, self.config.max_pages + 1):
            payload = self._get(full, cursor=cursor)
            records = _results(payload, full)
            fresh = [record for record in records if record.source_id not in seen]
            if records and not fresh:
                raise SourceError(f"Europe PMC {full[:80]!r}: page {number} repeats records already read")
            seen.update(record.source_id for record in fresh)
            found += fresh
            next_cursor = payload.get("nextCursorMark")
            if len(records) < self.page_size or not next_cursor or next_cursor == cursor:
                return found
            cursor = str(next_cursor)
        raise SourceError(f"Europe PMC {full[:80]!r}: more than {self.config.max_pages} pages; poll stopped")

    def count(self, query: str, window: Window | None = None) -> int:
        payload = self._get(in_window(query, window), cursor="*", page_size=1)
        hits = payload.get("hitCount")
        return hits if isinstance(hits, int) else 0

    def _get(self, query: str, *, cursor: str, page_size: int | None = None) -> dict[str, Any]:
        payload = self.http.fetch_json(self.url, params=self.params(query, cursor=cursor, page_size=page_size),
                                       max_bytes=self.config.max_bytes)  # fmt: skip
        where = f"Europe PMC {query[:80]!r}"
        if not isinstance(payload, dict):
            raise SourceError(f"{where}: not a search result: {str(payload)[:200]}")
        if "errCode" in payload:
            raise SourceError(f"{where}: error {payload.get('errCode')}: {str(payload.get('errMsg') or '')[:200]}")
        return payload


def _results(payload: Mapping[str, Any], query: str) -> list[Readout]:
    result_list = payload.get("resultList")
    results = result_list.get("result") if isinstance(result_list, dict) else None
    if not isinstance(results, list):
        raise SourceError(f"Europe PMC {query[:80]!r}: the answer has no resultList")
    return [record for record in (parse_record(item) for item in results if isinstance(item, dict)) if record]


def parse_record(item: Mapping[str, Any]) -> Readout | None:
    """One core record as a Readout; None without a source and id."""
    source, ident = str(item.get("source") or ""), str(item.get("id") or "")
    if not source or not ident:
        return None
    title = strip_html(str(item.get("title") or ""))
    abstract = read_abstract(str(item.get("abstractText") or ""))
    doi = extract_doi(str(item.get("doi") or ""))
    preprint = source == "PPR"
    journal_info, book = _table(item, "journalInfo"), _table(item, "bookOrReportDetails")
    journal = _table(journal_info, "journal")
    abbreviation = str(journal.get("isoabbreviation") or journal.get("medlineAbbreviation") or "")
    pmid = str(item.get("pmid") or "") or (ident if source == "MED" else "")
    named = {nct: "its title" for nct in extract_nct_ids(title)}
    for nct in abstract.trials:
        named.setdefault(nct, "its abstract")
    return Readout(
        source="europepmc", item_type=PREPRINT if preprint else ARTICLE, source_id=f"{source}:{ident}", doi=doi,
        pmid=pmid or None, title=title, markup=abstract.markup, parsed=abstract.parsed, quick=abstract.quick,
        journal=str(book.get("publisher") or "") if preprint else str(journal.get("title") or ""),
        journal_abbreviation="" if preprint else abbreviation,
        volume=str(journal_info.get("volume") or ""), issue=str(journal_info.get("issue") or ""),
        year=str(item.get("pubYear") or ""), published=_day(item.get("firstPublicationDate")),
        link=f"https://europepmc.org/article/{source}/{ident}", named_by=named,
        published_as=tuple(_linked(item, "preprint of")) if preprint else (),
    )  # fmt: skip


def _table(item: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = item.get(key)
    return value if isinstance(value, dict) else {}


def _linked(item: Mapping[str, Any], kind: str) -> list[str]:
    """DOIs of the records Europe PMC links as `kind` (its commentCorrectionList), when it gives DOIs."""
    listed = item.get("commentCorrectionList")
    entries = listed.get("commentCorrection") if isinstance(listed, dict) else None
    found = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and kind in str(entry.get("type") or "").lower():
            doi = extract_doi(str(entry.get("doi") or entry.get("id") or ""))
            if doi:
                found.append(doi)
    return found


def _day(value: Any) -> str | None:
    text = str(value or "")
    return text if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else None
