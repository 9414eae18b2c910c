"""What a Crossref poll and a Europe PMC poll do alike once the works are in hand (#20): store a
work as the one article row it is (literature.items identity: `doi:` lower-cased, else the
source's own id; found again by DOI without regard to case or by PMID, whichever source saw it
first), tell a watch of it at most once (`article_watch`), and record health in `readout_state`.

- A work that names a study the watch holds (its clinical-trial-number, abstract, title, or a
  Europe PMC full-text mention) is a `publication` on that study saying what it is and how it
  named it ("meeting abstract names NCT03530397 in its abstract"); otherwise one that matched the
  watch is a `new_article`. Both carry `item_type` (meeting_abstract, preprint, article).
- An article that is the published version of a preprint the watch was told of says so
  ("now published in European Urology"), and is told even when its words do not match.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from watcher.literature.readouts import ARTICLE, PREPRINT, Readout, item_type_words
from watcher.model import ChangeKind, Source
from watcher.rules import article_rule
from watcher.store import articles
from watcher.store.db import transaction
from watcher.store.models import FeedItemRow
from watcher.store.page_writes import insert_changes
from watcher.store.recipients import opted_out
from watcher.store.watch_keys import active_watch_id
from watcher.watch import WatchConfig

log = logging.getLogger(__name__)

SOURCE_NAMES = {"crossref": "Crossref", "europepmc": "Europe PMC"}  # an article's `feed` when it came first


@dataclass
class ReadoutReport:
    """One poll of one Crossref journal (`crossref:<ISSN>`) or one watch's Europe PMC searches."""

    name: str
    status: str = "ok"  # baseline | ok | failed
    found: int = 0  # works the source returned
    items: int = 0  # new articles stored
    changes: int = 0
    requests: int = 0
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        timing = f"({self.requests} request{'s' if self.requests != 1 else ''}, {self.seconds:.1f}s)"
        if self.error:
            return f"{self.name}: FAILED: {self.error} {timing}"
        if self.status == "baseline":
            return f"{self.name}: baseline: {self.found} works found, {self.items} new stored, no alerts {timing}"
        changes = f"{self.changes} change{'s' if self.changes != 1 else ''}"
        return f"{self.name}: {self.found} found, {self.items} new, {changes} {timing}"


def store_work(*, session: Session, work: Readout, now: datetime) -> tuple[FeedItemRow, bool]:
    """The work's row (the one already stored, its PMID and DOI filled in) and whether it is new."""
    keys = _keys(work)
    row = articles.find_article(session=session, keys=keys, doi=work.doi, pmid=work.pmid)
    if row is not None:
        _complete(session=session, row=row, work=work)
        return row, False
    row = FeedItemRow(**_new_row(work, keys, now))
    session.add(row)
    session.flush()
    return row, True


@dataclass(frozen=True, slots=True)
class Stored:
    """A work's article row as store_works left it: its id, the source that stored it first, and
    whether that was this poll."""

    id: int
    feed: str
    new: bool


def store_works(*, session: Session, works: Sequence[Readout], now: datetime) -> list[Stored]:
    """store_work for a whole poll's works: looked up a few hundred at a time, the new ones
    inserted a few hundred a statement (the works are distinct: the clients drop repeats)."""
    keyed = [(work, _keys(work)) for work in works]
    by_key, by_doi, by_pmid = articles.find_articles(
        session=session, keys=[key for _, keys in keyed for key in keys],
        dois=[work.doi for work in works if work.doi], pmids=[work.pmid for work in works if work.pmid],
    )  # fmt: skip
    found: list[FeedItemRow | None] = []
    for work, keys in keyed:
        row = next((by_key[key] for key in keys if key in by_key), None)
        row = row or (by_doi.get(work.doi) if work.doi else None) or (by_pmid.get(work.pmid) if work.pmid else None)
        if row is not None:
            _complete(session=session, row=row, work=work)
        found.append(row)
    fresh = [_new_row(work, keys, now) for (work, keys), row in zip(keyed, found, strict=True) if row is None]
    inserted = articles.insert_articles(session=session, rows=fresh)
    return [
        Stored(int(row.id or 0), row.feed, False)
        if row is not None
        else Stored(inserted[keys[0]], SOURCE_NAMES[work.source], True)
        for (work, keys), row in zip(keyed, found, strict=True)
    ]


def _keys(work: Readout) -> list[str]:
    return ([f"doi:{work.doi}"] if work.doi else []) + [f"{SOURCE_NAMES[work.source]}|{work.source_id}"]


def _new_row(work: Readout, keys: list[str], now: datetime) -> dict[str, Any]:
    """A new article's columns (FeedItemRow's)."""
    return {
        "key": keys[0], "feed": SOURCE_NAMES[work.source], "doi": work.doi,
        "title": work.title[:2000] or work.source_id, "link": work.link, "published": _day(work.published),
        "nct_ids": list(work.nct_ids), "first_seen_at": now, "pmid": work.pmid, "item_type": work.item_type,
    }  # fmt: skip


def _complete(*, session: Session, row: FeedItemRow, work: Readout) -> None:
    """A stored article learns what this source knows and it did not: PMID, DOI, trials named."""
    named = [nct for nct in work.nct_ids if nct not in row.nct_ids]  # e.g. a full-text mention
    if (row.pmid is None and work.pmid) or (row.doi is None and work.doi) or named:
        row.pmid, row.doi = row.pmid or work.pmid, row.doi or work.doi
        row.nct_ids = [*row.nct_ids, *named]
        session.add(row)


@dataclass
class ChangeBatch:
    """A poll's changes, written together (`write`, page_writes.insert_changes) in the order they
    were told, each alerted one owed to its watch's audience but those who opted out (read once
    per watch): what repo.add_change does one at a time, a flush and a query each."""

    session: Session
    now: datetime
    pending: list[tuple[dict[str, Any], list[str]]] = field(default_factory=list)
    owed: dict[str, list[str]] = field(default_factory=dict)
    ids: dict[str, int | None] = field(default_factory=dict)  # each watch's id, its changes' key

    def add(self, *, watch: WatchConfig, kind: ChangeKind, source: Source, nct_id: str, title: str, summary: str,
            details: dict[str, Any], item_type: str) -> None:  # fmt: skip
        suppressed_by = article_rule(watch, kind)
        if suppressed_by is None and watch.name not in self.owed:
            left = opted_out(session=self.session, watch=watch.name)
            self.owed[watch.name] = [address for address in dict.fromkeys(r.lower() for r in watch.audience)
                                     if address not in left]  # fmt: skip
        if watch.name not in self.ids:
            self.ids[watch.name] = active_watch_id(session=self.session, name=watch.name)
        columns = {
            "watch": watch.name, "watch_id": self.ids[watch.name], "kind": str(kind), "source": str(source),
            "nct_id": nct_id, "title": title,
            "summary": summary, "details": details, "detected_at": self.now, "alerted": suppressed_by is None,
            "suppressed_by": suppressed_by, "item_type": item_type,
        }  # fmt: skip
        self.pending.append((columns, self.owed.get(watch.name, []) if suppressed_by is None else []))

    def write(self) -> None:
        insert_changes(session=self.session, changes=self.pending)
        self.pending = []


def tell_watch(
    *,
    batch: ChangeBatch,
    watch: WatchConfig,
    work: Readout,
    studies: dict[str, str],
    why: str | None,
    version: str | None = "ask",
) -> int:
    """The watch's changes for this work, added to the batch (publication on each held study it
    names, else a new_article when `why` says it matched, or when it is a told preprint's published
    version: `version`, that preprint's DOI, looked up here unless the caller did)."""
    source = Source.CROSSREF if work.source == "crossref" else Source.EUROPEPMC
    details: dict[str, Any] = work.details(why=why)
    if version == "ask":
        version = _published_version_of(session=batch.session, watch=watch.name, work=work)
    note = ""
    if version is not None:
        details["preprint_doi"] = version
        note = f"; now published in {work.journal or 'a journal'}"
    words, item_type = item_type_words(work.item_type), work.item_type or "article"
    named = [nct for nct in work.nct_ids if nct in studies]
    for nct in named:
        summary = f"{words.capitalize()} names {nct} in {work.named_by[nct]}{note}: {work.title} ({work.label})"
        batch.add(watch=watch, kind=ChangeKind.PUBLICATION, source=source, nct_id=nct, title=studies[nct],
                  summary=summary, details=details, item_type=item_type)  # fmt: skip
    if named or (why is None and version is None):
        return len(named)
    batch.add(watch=watch, kind=ChangeKind.NEW_ARTICLE, source=source, nct_id="", title=work.title,
              summary=f"New {words}{note}: {work.title} ({work.label})", details=details,
              item_type=item_type)  # fmt: skip
    return 1


def _published_version_of(*, session: Session, watch: str, work: Readout) -> str | None:
    """The DOI of a preprint the watch was told of, when this article is its published version."""
    if work.item_type != ARTICLE or not work.preprints:
        return None
    for row in articles.articles_by_dois(session=session, dois=work.preprints):
        told = row.id is not None and watch in articles.watches_that_saw(session=session, item_id=row.id)
        if row.item_type == PREPRINT and told:
            return row.doi
    return None


def told_preprints(*, session: Session, works: Sequence[Readout]) -> dict[str, set[str]]:
    """For the preprints these articles are versions of: the watches told of each (by DOI)."""
    dois = [doi for work in works if work.item_type == ARTICLE for doi in work.preprints]
    rows = [row for row in articles.articles_by_dois(session=session, dois=dois) if row.item_type == PREPRINT]
    seen = articles.watches_that_saw_each(session=session, item_ids=[row.id for row in rows if row.id is not None])
    return {(row.doi or "").lower(): seen.get(row.id, set()) for row in rows if row.id is not None}


def held_studies(*, session: Session, watch: WatchConfig) -> dict[str, str]:
    """The studies the watch holds (and its named NCT ids), with their titles."""
    held = list(dict.fromkeys(watch.nct_ids + articles.held_nct_ids(session=session, watch=watch.name)))
    titles = articles.study_titles(session=session, nct_ids=held)
    return {nct: titles.get(nct, nct) for nct in held}


def record_success(*, session: Session, name: str, baseline: bool, signature: str, now: datetime,
                   requests: int) -> None:  # fmt: skip
    state = articles.get_readout_state(session=session, name=name)
    if baseline:
        state.baseline_at, state.query_signature = now, signature
    state.last_poll_at = state.last_success_at = now
    state.last_error, state.failing_since = None, None
    state.request_count += requests
    session.add(state)


def record_failure(*, engine: Engine, name: str, error: str, now: datetime, requests: int) -> None:
    """A failed poll stores nothing but this: the error, since when, the requests it made."""
    with transaction(engine) as session:
        state = articles.get_readout_state(session=session, name=name)
        state.last_poll_at, state.last_error = now, error
        state.failing_since = state.failing_since or now
        state.request_count += requests
        session.add(state)


def _day(published: str | None) -> datetime | None:
    if published and len(published) == 10:
        try:
            return datetime.fromisoformat(published).replace(tzinfo=UTC)
        except ValueError:
            return None
    return None
