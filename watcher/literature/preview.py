"""`trialwatch preview`, the journal-feed part: every configured feed fetched now (no conditional
GET, nothing stored), its items run through the same matcher the poller uses, each match shown
with the words that made it. (The registry part is watcher.registry.preview.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import requests

from watcher.config import Config, WatchConfig
from watcher.errors import SourceError
from watcher.literature.fetch import FeedState, fetch_feed
from watcher.matching import match_text

SHOWN = 20


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
