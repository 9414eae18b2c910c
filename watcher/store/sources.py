"""The sources table: the registry (one row per watch, for each watch polls it on its own), every
configured feed, Crossref's journals and each watch's Europe PMC searches (#20), with their health
and counters as stored by the pipelines."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from watcher.config import Config
from watcher.store import articles, repo
from watcher.store.models import Delivery


@dataclass(frozen=True)
class SourceRow:
    kind: str  # "registry" | "feed" | "crossref" | "europepmc" | "channel"
    name: str  # the watch (registry), the feed, the readout source's key or the channel (its URL masked)
    url: str
    last_success_at: datetime | None
    last_poll_at: datetime | None
    failing_since: datetime | None
    last_error: str | None
    next_poll_at: datetime | None
    requests: int
    not_modified: int  # feeds: 304 or an identical body; registry: polls that ended at /version
    note: str = ""
    label: str = ""  # the source's name when it is not the row's name ("Crossref")
    detail: str = ""  # what the row is of it ("journal 1527-7755")


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
    return rows + readout_rows(session=session, config=config, watches=watches)


def readout_rows(*, session: Session, config: Config, watches: list[str]) -> list[SourceRow]:
    """Crossref (a row per journal) and Europe PMC (a row per watch that takes part), when enabled."""
    states = articles.readout_states(session=session)
    wanted: list[tuple[str, str, str, str, timedelta]] = []
    if config.crossref.enabled:
        url, every = config.crossref.base_url, config.crossref.poll_interval
        wanted += [(f"crossref:{issn}", "Crossref", f"journal {issn}", url, every) for issn in config.crossref.journals]
    if config.europepmc.enabled:
        url, every = config.europepmc.base_url, config.europepmc.poll_interval
        chosen = [watch.name for watch in config.europepmc_watches() if watch.name in watches]
        wanted += [(f"europepmc:{name}", "Europe PMC", f"watch {name}", url, every) for name in chosen]
    rows = []
    for key, label, detail, url, every in wanted:
        state = states.get(key)
        last = state.last_poll_at if state else None
        rows.append(
            SourceRow(
                kind=key.partition(":")[0], name=key, url=url, label=label, detail=detail,
                last_success_at=state.last_success_at if state else None, last_poll_at=last,
                failing_since=state.failing_since if state else None, last_error=state.last_error if state else None,
                next_poll_at=last + every if last else None, requests=state.request_count if state else 0,
                not_modified=0, note="" if state and state.baseline_at else "no baseline yet",
            )
        )  # fmt: skip
    return rows


def channel_rows(*, session: Session, channels: dict[str, tuple[str, list[str]]]) -> list[SourceRow]:
    """One row per chat channel or webhook (outbox address -> (masked URL, its watches)): its last
    accepted message, its last attempt, and the failure its oldest unsent message is stuck on."""
    if not channels:
        return []
    addresses = list(channels)
    sent = dict(
        session.exec(  # type: ignore[call-overload]
            select(Delivery.recipient, func.max(Delivery.sent_at))
            .where(col(Delivery.recipient).in_(addresses), Delivery.status == "sent")
            .group_by(col(Delivery.recipient))
        ).all()
    )
    totals = {
        recipient: (int(attempts or 0), last)
        for recipient, attempts, last in session.exec(  # type: ignore[call-overload]
            select(Delivery.recipient, func.sum(Delivery.attempts), func.max(Delivery.created_at))
            .where(col(Delivery.recipient).in_(addresses))
            .group_by(col(Delivery.recipient))
        ).all()
    }
    stuck = {
        row.recipient: row
        for row in session.exec(
            select(Delivery)
            .where(col(Delivery.recipient).in_(addresses), col(Delivery.status).in_(["pending", "failed"]))
            .where(col(Delivery.last_error).is_not(None))
            .order_by(col(Delivery.created_at).desc())
        )
    }  # the oldest one wins: later rows overwrite earlier ones in this order
    rows = []
    for address, (shown, watches) in channels.items():
        attempts, last_attempt = totals.get(address, (0, None))
        failing = stuck.get(address)
        rows.append(
            SourceRow(
                kind="channel", name=address, url=shown, label="Channel", detail=f"for {', '.join(watches)}",
                last_success_at=sent.get(address),
                last_poll_at=last_attempt, failing_since=failing.created_at if failing else None,
                last_error=failing.last_error if failing else None,
                next_poll_at=failing.next_attempt_at if failing else None,
                requests=attempts, not_modified=0, note="" if attempts else "nothing sent yet",
            )
        )  # fmt: skip
    return rows
