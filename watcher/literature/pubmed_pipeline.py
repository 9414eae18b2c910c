"""One PubMed poll of one watch: window -> esearch (its words, its trials) -> efetch what the watch
has not seen -> store articles and changes in one transaction. Reads top to bottom like the
journal-feed pipeline (literature.pipeline) and keeps per-watch state like the registry's.

- Window: entry dates (`edat`) from `overlap_days` before the watch's last successful PubMed poll
  to today. The first poll (or the first after the watch's words or `pubmed_query` changed) is a
  *baseline*: the window ends now and starts `overlap_days` back (what the next poll will see
  again), everything found is stored, nothing is alerted.
- One identity across sources: an article is found by its keys (literature.items: `doi:` first),
  its DOI (compared without regard to case) or its PMID, so a paper already stored from a journal
  feed or from another watch's results is the same row (`feed_item`). `article_watch` remembers
  which watches have had their say on it: each watch is told at most once.
- An article that names a study the watch holds (in its ClinicalTrials.gov DataBankList, its title
  or its abstract) is a `publication` change on that study, whatever its words; otherwise one the
  word query found is a `new_article` change saying why it matched.
- A failed poll (HTTP, an ERROR inside a 200, a cut-off or error document, more ids than asked
  for) stores nothing but the watch's PubMed error; the other sources are not touched.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from watcher.errors import SourceError
from watcher.http import Stopping
from watcher.literature.items import item_keys
from watcher.literature.pubmed import PubmedClient, Window, nct_queries, query_signature, word_query
from watcher.literature.pubmed_xml import PubmedArticle
from watcher.matching import match_text
from watcher.model import ChangeKind, Source
from watcher.rules import article_rule
from watcher.store import articles, repo
from watcher.store.db import transaction
from watcher.store.models import FeedItemRow
from watcher.watch import WatchConfig

log = logging.getLogger(__name__)

PUBMED = "PubMed"  # the `feed` of an article PubMed brought first; the name of the source


@dataclass
class PubmedReport:
    watch: str
    status: str = "ok"  # baseline | ok | failed
    found: int = 0  # PMIDs the searches returned
    fetched: int = 0  # records fetched (those the watch had not seen)
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
            return f"pubmed {self.watch}: FAILED: {self.error} {timing}"
        if self.status == "baseline":
            found = f"{self.found} articles found, {self.items} new stored"
            return f"pubmed {self.watch}: baseline: {found}, no alerts {timing}"
        changes = f"{self.changes} change{'s' if self.changes != 1 else ''}"
        return f"pubmed {self.watch}: {self.found} found, {self.fetched} fetched, {self.items} new, {changes} {timing}"


@dataclass
class Found:
    """What the searches returned: every PMID in order, and those the word query found."""

    order: list[str] = field(default_factory=list)
    by_words: set[str] = field(default_factory=set)


def poll_pubmed(
    *, engine: Engine, client: PubmedClient, watch: WatchConfig, overlap_days: int, now: datetime,
    stopping: threading.Event | None = None,
) -> PubmedReport:  # fmt: skip
    """Poll PubMed for one watch; never raises SourceError (the report carries it)."""
    report = PubmedReport(watch=watch.name)
    started, requests_before = time.monotonic(), client.requests_made
    try:
        with transaction(engine) as session:
            state = articles.get_pubmed_state(session=session, watch=watch.name)
            baseline = state.baseline_at is None or state.query_signature != query_signature(watch)
            anchor = now if baseline else (state.last_success_at or now)
            held = list(dict.fromkeys(watch.nct_ids + articles.held_nct_ids(session=session, watch=watch.name)))
        report.status = "baseline" if baseline else "ok"
        found = search_watch(client, watch, held, ((anchor - timedelta(days=overlap_days)).date(), now.date()))
        report.found = len(found.order)
        with transaction(engine) as session:
            seen = articles.pmids_seen_by(session=session, watch=watch.name, pmids=found.order)
        fetched = client.fetch([pmid for pmid in found.order if pmid not in seen])
        report.fetched = len(fetched)
        if stopping is not None and stopping.is_set():  # asked to stop: store nothing half-way
            raise Stopping
        with transaction(engine) as session:
            _apply(session=session, watch=watch, found=found, fetched=fetched, held=held, baseline=baseline,
                   now=now, report=report)  # fmt: skip
    except SourceError as exc:
        report.status, report.error = "failed", exc.one_line()
        record_failure(engine=engine, watch=watch.name, error=report.error, now=now)
    report.requests = client.requests_made - requests_before
    report.seconds = time.monotonic() - started
    log.log(logging.INFO if report.ok else logging.ERROR, "poll %s", report.line())
    return report


def search_watch(client: PubmedClient, watch: WatchConfig, held: list[str], window: Window) -> Found:
    """Run the watch's word query and its trials' queries over the window."""
    found = Found()
    query = word_query(watch)
    if query:
        found.order = client.search(query, window)
        found.by_words = set(found.order)
    for trial_query in nct_queries(held):
        found.order += [pmid for pmid in client.search(trial_query, window) if pmid not in found.by_words]
    found.order = list(dict.fromkeys(found.order))
    return found


def _apply(
    *, session: Session, watch: WatchConfig, found: Found, fetched: list[PubmedArticle], held: list[str],
    baseline: bool, now: datetime, report: PubmedReport,
) -> None:  # fmt: skip
    titles = articles.study_titles(session=session, nct_ids=held)
    studies = {nct: titles.get(nct, nct) for nct in held}
    for article in fetched:
        row = _store(session=session, article=article, now=now, report=report)
        assert row.id is not None
        if not articles.mark_seen(session=session, item_id=row.id, watch=watch.name, now=now) or baseline:
            continue
        report.changes += _changes(session=session, watch=watch, article=article, studies=studies,
                                   by_words=article.pmid in found.by_words, now=now)  # fmt: skip
    state = articles.get_pubmed_state(session=session, watch=watch.name)
    if baseline:
        state.baseline_at, state.query_signature = now, query_signature(watch)
    state.last_poll_at = state.last_success_at = now
    state.last_error, state.failing_since = None, None
    session.add(state)


def _store(*, session: Session, article: PubmedArticle, now: datetime, report: PubmedReport) -> FeedItemRow:
    """The article's row: the one already stored (by key, DOI or PMID; its PMID noted), or a new one."""
    entry = {"prism_doi": article.doi or "", "id": f"pubmed:{article.pmid}", "link": article.link}
    keys = [key if key.startswith("doi:") else f"{PUBMED}|{key}" for key in item_keys(entry, "")]
    row = articles.find_article(session=session, keys=keys, doi=article.doi, pmid=article.pmid)
    if row is not None:
        if row.pmid is None:
            row.pmid = article.pmid
            session.add(row)
        return row
    row = FeedItemRow(
        key=keys[0], feed=PUBMED, doi=article.doi, title=article.title, link=article.link,
        published=_day(article.published), nct_ids=list(article.nct_ids), first_seen_at=now, pmid=article.pmid,
    )  # fmt: skip
    session.add(row)
    session.flush()
    report.items += 1
    return row


def _changes(
    *, session: Session, watch: WatchConfig, article: PubmedArticle, studies: dict[str, str], by_words: bool,
    now: datetime,
) -> int:  # fmt: skip
    named = [nct for nct in article.nct_ids if nct in studies]
    journal = article.journal or PUBMED
    if named:
        details = article_details(article, why=_why(watch, article) if by_words else None)
        details["named_by"] = {nct: article.named_by(nct) for nct in named}
        for nct in named:
            how = f"via PubMed; named in {article.named_by(nct)}"
            summary = f"New article on {nct} in {journal} ({how}): {article.title}"
            repo.add_change(
                session=session, watch=watch.name, kind=ChangeKind.PUBLICATION, source=Source.PUBMED, nct_id=nct,
                title=studies[nct], summary=summary, details=details, recipients=watch.audience, now=now,
                suppressed_by=article_rule(watch, ChangeKind.PUBLICATION),
            )  # fmt: skip
        return len(named)
    if not by_words:
        return 0
    repo.add_change(
        session=session, watch=watch.name, kind=ChangeKind.NEW_ARTICLE, source=Source.PUBMED, nct_id="",
        title=article.title, summary=f"New article in {journal} (via PubMed): {article.title}",
        details=article_details(article, why=_why(watch, article)), recipients=watch.audience, now=now,
        suppressed_by=article_rule(watch, ChangeKind.NEW_ARTICLE),
    )  # fmt: skip
    return 1


def _why(watch: WatchConfig, article: PubmedArticle) -> str:
    """Where the watch's words occur; PubMed's own search is the judge, so when our matcher finds
    no word (PubMed tokenises differently; a `pubmed_query` of its own) it says so."""
    match = match_text(fields=article.text_fields(), conditions=watch.conditions, terms=watch.terms,
                       exclude=watch.exclude)  # fmt: skip
    if match.matched:
        return match.describe()
    return "the watch's pubmed_query" if watch.pubmed_query else "PubMed's title/abstract search"


def article_details(article: PubmedArticle, *, why: str | None) -> dict[str, Any]:
    return {
        "source": "pubmed",
        "pmid": article.pmid,
        "doi": article.doi,
        "journal": article.journal,
        "title": article.title,
        "link": article.link,
        "nct_ids": list(article.nct_ids),
        "published": article.published,
        "publication_types": list(article.publication_types),
        "why": why,
    }


def _day(published: str | None) -> datetime | None:
    if published and len(published) == 10:
        return datetime.fromisoformat(published).replace(tzinfo=UTC)
    return None


def record_failure(*, engine: Engine, watch: str, error: str, now: datetime) -> None:
    with transaction(engine) as session:
        state = articles.get_pubmed_state(session=session, watch=watch)
        state.last_poll_at, state.last_error = now, error
        state.failing_since = state.failing_since or now
        session.add(state)
