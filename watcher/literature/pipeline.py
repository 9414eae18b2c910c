"""One poll of one journal feed: due? -> fetch (conditional) -> new items -> match every watch ->
store items and changes in one transaction. Reads top to bottom like Miniflux's refresh.

- A feed is due when its own interval (or the feed's `ttl`, whichever is longer) has passed since
  the last poll; after a failure, when its backoff has passed (Retry-After when the server gave
  one, else the interval doubled per consecutive failure, at most a day). `trialwatch poll`
  ignores the schedule of a healthy feed, never a failing feed's backoff nor a 410: a feed that
  answered 410 Gone is not polled again until its URL changes in the config.
- The first successful poll of a feed is a baseline: its items are stored, nothing is alerted
  (feeds carry years of back catalogue).
- A new item (literature.items.item_key, or any of its other keys; a DOI already stored from another
  feed is the same item; one PubMed brought first is told only to the watches it has not been told to)
  that mentions a study a watch holds is a `publication` change on that study for that watch,
  whatever its words; otherwise, if it matches the watch's words (matching.match_text), a
  `new_article` change with why it matched.
- A failed poll changes nothing but the feed's error count, last error and next poll time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy import Engine
from sqlmodel import Session

from watcher.config import Config, FeedConfig, WatchConfig
from watcher.errors import SourceError
from watcher.literature.fetch import FeedRetryLater, FetchResult, fetch_feed
from watcher.literature.fetch import FeedState as FetchState
from watcher.literature.items import FeedItem
from watcher.literature.pubmed_pipeline import PUBMED
from watcher.matching import match_text
from watcher.model import ChangeKind, Source
from watcher.rules import article_rule
from watcher.store import articles, repo
from watcher.store.db import transaction
from watcher.store.models import FeedItemRow, FeedState

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(days=1)


@dataclass
class FeedReport:
    feed: str
    status: str = "ok"  # baseline | ok | not_modified | not_due | gone | failed
    items: int = 0  # new items stored
    changes: int = 0
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        took = f"({self.seconds:.1f}s)"
        if self.error:
            return f"feed {self.feed}: FAILED: {self.error} {took}"
        text = {
            "baseline": f"baseline: {self.items} items stored, no alerts",
            "not_modified": "not modified",
            "not_due": "not due yet",
            "gone": "gone (HTTP 410): no longer polled; change its url to poll it again",
        }.get(self.status, f"{self.items} new items, {self.changes} change{'s' if self.changes != 1 else ''}")
        return f"feed {self.feed}: {text} {took}"


def next_poll(state: FeedState, interval: timedelta, now: datetime) -> datetime:
    """After a successful poll: the configured interval, or the feed's ttl when longer."""
    ttl = timedelta(minutes=state.ttl_minutes or 0)
    return now + max(interval, ttl)


def backoff(interval: timedelta, failures: int, retry_after: float | None) -> timedelta:
    """After `failures` consecutive failures: Retry-After when given, else the interval doubled."""
    if retry_after is not None:
        return min(max(timedelta(seconds=retry_after), timedelta(minutes=1)), MAX_BACKOFF)
    return min(interval * 2 ** max(failures - 1, 0), MAX_BACKOFF)


def poll_feed(
    *, engine: Engine, http: requests.Session, config: Config, feed: FeedConfig, now: datetime, force: bool = False
) -> FeedReport:
    """Poll one feed if it is due (or `force`, unless it is backing off after a failure); never
    raises SourceError (the report carries it)."""
    report = FeedReport(feed=feed.name)
    started = time.monotonic()
    interval = config.feed_interval(feed)
    with transaction(engine) as session:
        state = repo.get_feed_state(session=session, name=feed.name, url=feed.url)
        known = FetchState(url=state.url, etag=state.etag, last_modified=state.last_modified, body_hash=state.body_hash)
        gone, due = state.gone_at is not None, state.next_poll_at is None or state.next_poll_at <= now
        backing_off = state.error_count > 0
    if gone or not (due or (force and not backing_off)):
        report.status = "gone" if gone else "not_due"
        return report
    try:
        result = fetch_feed(
            session=http, state=known, timeout=config.feeds.timeout, max_bytes=config.feeds.max_bytes, now=now
        )
        with transaction(engine) as session:
            _apply(session=session, config=config, feed=feed, result=result, interval=interval, now=now, report=report)
    except SourceError as exc:
        report.status, report.error = "failed", exc.one_line()
        retry_after = exc.retry_after if isinstance(exc, FeedRetryLater) else None
        _record_failure(engine=engine, feed=feed, error=report.error, interval=interval, retry_after=retry_after,
                        now=now)  # fmt: skip
    report.seconds = time.monotonic() - started
    log.log(logging.INFO if report.ok else logging.ERROR, "poll %s", report.line())
    return report


def _apply(
    *, session: Session, config: Config, feed: FeedConfig, result: FetchResult, interval: timedelta,
    now: datetime, report: FeedReport,
) -> None:  # fmt: skip
    state = repo.get_feed_state(session=session, name=feed.name, url=feed.url)
    if result.final_url and result.final_url != state.url:
        log.warning("feed %s moved permanently: %s -> %s (stored)", feed.name, state.url, result.final_url)
        state.url = result.final_url
    state.last_poll_at = state.last_success_at = now
    state.error_count, state.last_error, state.failing_since = 0, None, None
    state.request_count += 1
    if result.status == "gone":
        state.gone_at, state.last_error, report.status = now, "HTTP 410 Gone: no longer polled", "gone"
        log.error("feed %s answered 410 Gone: polling stopped (change its url in the config to resume)", feed.name)
    elif result.status == "ok":
        state.etag, state.last_modified, state.body_hash = result.etag, result.last_modified, result.body_hash
        state.ttl_minutes, state.title = result.ttl_minutes, result.title or state.title
        baseline = state.baseline_at is None
        report.status = "baseline" if baseline else "ok"
        watches = [watch for watch in config.watch if watch.feeds]
        for item in result.items:
            _take_item(session=session, feed=feed, item=item, watches=watches, baseline=baseline, now=now,
                       report=report)  # fmt: skip
        state.baseline_at = state.baseline_at or now
    else:
        report.status = "not_modified"
        state.not_modified_count += 1
        state.etag, state.last_modified = result.etag, result.last_modified
    state.next_poll_at = next_poll(state, interval, now)
    session.add(state)


def _take_item(
    *, session: Session, feed: FeedConfig, item: FeedItem, watches: Sequence[WatchConfig], baseline: bool,
    now: datetime, report: FeedReport,
) -> None:  # fmt: skip
    """Store a new item; owe its changes to each watch it concerns (not on a baseline)."""
    keys = stored_keys(feed.name, item)
    row = repo.known_feed_item(session=session, keys=keys, doi=item.doi)
    if row is not None and (baseline or row.feed != PUBMED):
        return
    if row is None:
        row = FeedItemRow(
            key=keys[0], feed=feed.name, doi=item.doi, title=item.title, link=item.link,
            published=item.published, nct_ids=list(item.nct_ids), first_seen_at=now,
        )  # fmt: skip
        session.add(row)
        session.flush()
        report.items += 1
        if baseline:
            return
    assert row.id is not None
    told_before = articles.watches_that_saw(session=session, item_id=row.id)  # a paper PubMed brought first
    for watch in watches:
        if watch.name in told_before:
            continue
        told = _item_changes(session=session, feed=feed, item=item, watch=watch, now=now)
        if told:  # told once: neither PubMed nor this feed tells this watch again
            articles.mark_seen(session=session, item_id=row.id, watch=watch.name, now=now)
        report.changes += told


def stored_keys(feed: str, item: FeedItem) -> list[str]:
    """The item's keys as stored: a DOI names one paper everywhere; any other key (guid, link,
    title hash) is only unique within its feed, so it is scoped by the feed's name."""
    return [key if key.startswith("doi:") else f"{feed}|{key}" for key in (item.key, *item.other_keys)]


def _item_changes(*, session: Session, feed: FeedConfig, item: FeedItem, watch: WatchConfig, now: datetime) -> int:
    match = match_text(fields=item.text_fields(), conditions=watch.conditions, terms=watch.terms, exclude=watch.exclude)
    details = article_details(feed=feed, item=item, why=match.describe() if match.matched else None)
    studies = repo.watched_studies(session=session, watch=watch.name, nct_ids=list(item.nct_ids))
    for nct_id, study_title in studies.items():
        summary = f"New article on {nct_id} in {feed.name}: {item.title}"
        repo.add_change(
            session=session, watch=watch.name, kind=ChangeKind.PUBLICATION, source=Source.FEEDS, nct_id=nct_id,
            title=study_title, summary=summary, details=details, recipients=watch.audience, now=now,
            suppressed_by=article_rule(watch, ChangeKind.PUBLICATION),
        )  # fmt: skip
    if studies or not match.matched:
        return len(studies)
    repo.add_change(
        session=session, watch=watch.name, kind=ChangeKind.NEW_ARTICLE, source=Source.FEEDS, nct_id="",
        title=item.title, summary=f"New article in {feed.name}: {item.title}", details=details,
        recipients=watch.audience, now=now, suppressed_by=article_rule(watch, ChangeKind.NEW_ARTICLE),
    )  # fmt: skip
    return 1


def article_details(*, feed: FeedConfig, item: FeedItem, why: str | None) -> dict[str, Any]:
    return {
        "feed": feed.name,
        "title": item.title,
        "link": item.link,
        "doi": item.doi,
        "nct_ids": list(item.nct_ids),
        "published": item.published.isoformat() if item.published else None,
        "why": why,
    }


def _record_failure(
    *, engine: Engine, feed: FeedConfig, error: str, interval: timedelta, retry_after: float | None, now: datetime
) -> None:
    with transaction(engine) as session:
        state = repo.get_feed_state(session=session, name=feed.name, url=feed.url)
        state.error_count += 1
        state.request_count += 1
        state.last_poll_at, state.last_error = now, error
        state.failing_since = state.failing_since or now
        state.next_poll_at = now + backoff(interval, state.error_count, retry_after)
        session.add(state)
