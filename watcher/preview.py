"""`trialwatch preview`: what a watch would match right now, and why; stores nothing.

Registry: the watch's own queries with pageSize 20 and countTotal, so the user sees the total,
the first twenty studies with status and phase, and the exact request. Feeds: every configured
feed fetched now (no conditional GET, nothing stored), its items run through the same matcher
the poller uses, each match shown with the words that made it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import requests

from watcher.config import Config, WatchConfig
from watcher.errors import SourceError
from watcher.matching import match_text, why_study_matches
from watcher.model import Study
from watcher.sources.ctgov import CtgovClient
from watcher.sources.feeds import FeedState, fetch_feed

SHOWN = 20


def registry_lines(client: CtgovClient, watch: WatchConfig) -> Iterator[str]:
    for url, page in client.preview(watch, limit=SHOWN):
        total = page.total if page.total is not None else len(page.studies)
        yield f"{total} studies match: GET {url}"
        for record in page.studies:
            study = Study.from_record(record)
            yield f"  {study.nct_id}  {study.status_label} · {study.phase_label} · {study.title}"
            why = why_study_matches(record, study.nct_id, watch)
            if why:
                yield f"      matched {why}"
        if total > len(page.studies):
            yield f"  … and {total - len(page.studies)} more"


def feed_lines(http: requests.Session, config: Config, watch: WatchConfig, now: datetime) -> Iterator[str]:
    for feed in config.feed:
        try:
            result = fetch_feed(
                session=http, state=FeedState(url=feed.url), timeout=config.feeds.timeout,
                max_bytes=config.feeds.max_bytes, now=now,
            )  # fmt: skip
        except SourceError as exc:
            yield f"feed {feed.name}: cannot be read now: {exc.one_line()}"
            continue
        matches = []
        for item in result.items:
            match = match_text(
                fields=item.text_fields(), conditions=watch.conditions, terms=watch.terms, exclude=watch.exclude
            )
            if match.matched:
                matches.append((item, match.describe()))
        yield f"feed {feed.name}: {len(matches)} of {len(result.items)} items match"
        for item, why in matches[:SHOWN]:
            trials = f" [{', '.join(item.nct_ids)}]" if item.nct_ids else ""
            yield f"  {item.title}{trials}"
            yield f"      matched {why}; {item.link}"
