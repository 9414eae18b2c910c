"""The sources table: the registry (one row per watch, for each watch polls it on its own) and every
configured feed, with their health and counters as stored by the pipelines."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from watcher.config import Config
from watcher.store import repo


@dataclass(frozen=True)
class SourceRow:
    kind: str  # "registry" | "feed"
    name: str  # the watch (registry) or the feed
    url: str
    last_success_at: datetime | None
    last_poll_at: datetime | None
    failing_since: datetime | None
    last_error: str | None
    next_poll_at: datetime | None
    requests: int
    not_modified: int  # feeds: 304 or an identical body; registry: polls that ended at /version
    note: str = ""


def source_rows(*, session: Session, config: Config, watches: list[str]) -> list[SourceRow]:
    """The registry's rows for these watches, then every configured feed, in config order."""
    states = repo.watch_states(session=session)
    rows = []
    interval = config.clinicaltrials.poll_interval
    for name in watches:
        state = states.get(name)
        last = state.last_poll_at if state else None
        rows.append(
            SourceRow(
                kind="registry", name=name, url=config.clinicaltrials.base_url,
                last_success_at=state.last_success_at if state else None, last_poll_at=last,
                failing_since=state.failing_since if state else None, last_error=state.last_error if state else None,
                next_poll_at=last + interval if last else None, requests=state.request_count if state else 0,
                not_modified=state.unchanged_count if state else 0,
                note="" if state and state.baseline_at else "no baseline yet",
            )
        )  # fmt: skip
    feeds = repo.feed_states(session=session)
    for feed in config.feed:
        fs = feeds.get(feed.name)
        note = "gone (HTTP 410): not polled" if fs and fs.gone_at else ("" if fs else "never polled")
        rows.append(
            SourceRow(
                kind="feed", name=feed.name, url=fs.url if fs else feed.url,
                last_success_at=fs.last_success_at if fs else None, last_poll_at=fs.last_poll_at if fs else None,
                failing_since=fs.failing_since if fs else None, last_error=fs.last_error if fs else None,
                next_poll_at=fs.next_poll_at if fs else None, requests=fs.request_count if fs else 0,
                not_modified=fs.not_modified_count if fs else 0, note=note,
            )
        )  # fmt: skip
    return rows
