"""What the web app's dashboard and API read: each watch with its health and counts, and changes
a page at a time (keyset pagination on (detected_at, id), never OFFSET).

Keyword-only functions that take the session; they only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select

from watcher.model import ChangeRecord
from watcher.store.models import ChangeRow, StudyRow, WatchRow, WatchState, WatchStudy
from watcher.store.repo import to_record
from watcher.store.watch_keys import of_named
from watcher.store.watches import get_watch_row, watch_rows

RECENT = timedelta(days=7)


@dataclass(frozen=True)
class WatchSummary:
    """A watch as the dashboard and the API show it."""

    name: str
    source: str
    owner: str | None
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    last_poll_at: datetime | None
    last_success_at: datetime | None
    failing_since: datetime | None
    last_error: str | None
    studies: int
    changes_7d: int


def watch_summaries(*, session: Session, now: datetime) -> list[WatchSummary]:
    """Every active watch, by name, with its state and counts (three grouped queries in all)."""
    rows = watch_rows(session=session)
    names = [row.name for row in rows]
    return _summaries(session, rows, names, now)


def watch_summary(*, session: Session, name: str, now: datetime) -> WatchSummary | None:
    row = get_watch_row(session=session, name=name)
    if row is None or row.archived_at is not None:
        return None
    return _summaries(session, [row], [name], now)[0]


def _summaries(session: Session, rows: list[WatchRow], names: list[str], now: datetime) -> list[WatchSummary]:
    if not rows:
        return []
    states = {s.name: s for s in session.exec(select(WatchState).where(col(WatchState.name).in_(names)))}
    studies = dict(
        session.exec(
            select(WatchStudy.watch, func.count())
            .where(col(WatchStudy.watch).in_(names))
            .group_by(col(WatchStudy.watch))
        ).all()
    )
    recent = dict(
        session.exec(
            select(ChangeRow.watch_id, func.count())
            .where(col(ChangeRow.watch_id).in_([row.id for row in rows]), col(ChangeRow.detected_at) >= now - RECENT)
            .group_by(col(ChangeRow.watch_id))
        ).all()
    )
    return [_summary(row, states.get(row.name), studies.get(row.name, 0), recent.get(row.id, 0)) for row in rows]


def _summary(row: WatchRow, state: WatchState | None, studies: int, recent: int) -> WatchSummary:
    return WatchSummary(
        name=row.name,
        source=row.source,
        owner=row.owner,
        definition=dict(row.definition),
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_poll_at=state.last_poll_at if state else None,
        last_success_at=state.last_success_at if state else None,
        failing_since=state.failing_since if state else None,
        last_error=state.last_error if state else None,
        studies=int(studies),
        changes_7d=int(recent),
    )


@dataclass(frozen=True)
class ChangeFilter:
    watch: str | None = None
    kind: str | None = None
    nct_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    held_back: bool = False  # also the changes a watch rule held back (`changes --all`)


def changes_page(
    *, session: Session, filters: ChangeFilter, limit: int, after: tuple[datetime, int] | None = None
) -> tuple[list[ChangeRecord], tuple[datetime, int] | None]:
    """Up to `limit` changes, newest first, strictly after the cursor `after` (detected_at, id);
    and the cursor of the next page (None on the last one)."""
    query = select(ChangeRow, StudyRow).join(StudyRow, col(StudyRow.nct_id) == col(ChangeRow.nct_id), isouter=True)
    if not filters.held_back:
        query = query.where(col(ChangeRow.alerted).is_(True))
    if filters.watch is not None:
        query = query.where(of_named(session, ChangeRow.watch_id, ChangeRow.watch, filters.watch))
    if filters.kind is not None:
        query = query.where(ChangeRow.kind == filters.kind)
    if filters.nct_id is not None:
        query = query.where(ChangeRow.nct_id == filters.nct_id)
    if filters.since is not None:
        query = query.where(col(ChangeRow.detected_at) >= filters.since)
    if filters.until is not None:
        query = query.where(col(ChangeRow.detected_at) < filters.until)
    if after is not None:
        at, change_id = after
        detected = col(ChangeRow.detected_at)
        query = query.where(or_(detected < at, and_(detected == at, col(ChangeRow.id) < change_id)))
    query = query.order_by(col(ChangeRow.detected_at).desc(), col(ChangeRow.id).desc()).limit(limit + 1)
    found = list(session.exec(query))
    records = [to_record(change, study) for change, study in found[:limit]]
    more = len(found) > limit and records
    return records, ((records[-1].detected_at, records[-1].id) if more else None)
