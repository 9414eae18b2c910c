"""The backfill's queue and progress (`history_backfill`), and the writes of one study's backfill.

A study is queued when a watch first holds it: any study in `watch_study` without a row here is
pending (so a poll writes nothing for it: the queue costs the poll path nothing), as is a row
`pending` (`trialwatch backfill` re-queues a watch's studies); a `failing` row is due again once
its backoff has passed. Keyword-only functions taking the session; no commits here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, update
from sqlmodel import Session, col, select

from watcher.store.models import ChangeRow, HistoryBackfill, StudyRow, StudyVersion, WatchStudy
from watcher.store.watch_keys import active_watch_id

FIRST_RETRY = timedelta(hours=1)
LAST_RETRY = timedelta(days=7)


@dataclass(frozen=True)
class BackfillProgress:
    done: int
    pending: int
    failing: int
    last_error: str | None
    last_error_at: datetime | None

    def line(self) -> str:
        text = f"registry history: {self.done} studies done, {self.pending} pending, {self.failing} failing"
        return text + (f"; last error: {self.last_error}" if self.last_error else "")


def _unqueued() -> Any:
    """Ids of studies some watch holds that have no backfill row (queued by being held)."""
    return (
        select(WatchStudy.nct_id)
        .join(HistoryBackfill, col(HistoryBackfill.nct_id) == col(WatchStudy.nct_id), isouter=True)
        .where(col(HistoryBackfill.nct_id).is_(None))
        .distinct()
    )


def due_studies(*, session: Session, now: datetime, limit: int) -> list[str]:
    """Up to `limit` studies to backfill now: queued ones first (oldest first), then failing ones
    whose backoff has passed."""
    if limit <= 0:
        return []
    queued = list(session.exec(_unqueued().order_by(col(WatchStudy.nct_id)).limit(limit)))
    if len(queued) < limit:
        pending = or_(
            col(HistoryBackfill.status) == "pending",
            (col(HistoryBackfill.status) == "failing") & (col(HistoryBackfill.next_attempt_at) <= now),
        )
        query = (
            select(HistoryBackfill.nct_id)
            .where(pending)
            .order_by(col(HistoryBackfill.status).desc(), col(HistoryBackfill.queued_at), col(HistoryBackfill.nct_id))
            .limit(limit - len(queued))
        )
        queued += [nct_id for nct_id in session.exec(query) if nct_id not in queued]
    return queued


def queue_studies(*, session: Session, nct_ids: Sequence[str], now: datetime) -> int:
    """Queue these studies (again): their next backfill asks the version list anew. Returns how many."""
    wanted = list(dict.fromkeys(nct_ids))
    known = set(session.exec(select(HistoryBackfill.nct_id).where(col(HistoryBackfill.nct_id).in_(wanted))))
    if known:
        session.execute(
            update(HistoryBackfill)
            .where(col(HistoryBackfill.nct_id).in_(list(known)))
            .values(status="pending", queued_at=now, next_attempt_at=None)
        )
    fresh = [{"nct_id": nct_id, "status": "pending", "queued_at": now} for nct_id in wanted if nct_id not in known]
    if fresh:
        session.execute(insert(HistoryBackfill), fresh)
    return len(wanted)


def _row(session: Session, nct_id: str, now: datetime) -> HistoryBackfill:
    row = session.get(HistoryBackfill, nct_id)
    if row is None:
        row = HistoryBackfill(nct_id=nct_id, queued_at=now)
        session.add(row)
    return row


def mark_done(*, session: Session, nct_id: str, now: datetime, newest: int, versions: int | None = None) -> None:
    """The study's backfill done; `versions`: how many of its stored versions have a registry
    number (counted here when the caller does not know)."""
    row = _row(session, nct_id, now)
    if versions is None:
        count = select(func.count()).where(
            StudyVersion.nct_id == nct_id, col(StudyVersion.registry_version).isnot(None)
        )
        versions = int(session.exec(count).one())
    row.status, row.attempts, row.next_attempt_at, row.last_error = "done", 0, None, None
    row.done_at, row.newest, row.versions = now, newest, versions
    session.add(row)


def mark_failed(*, session: Session, nct_id: str, now: datetime, error: str) -> datetime:
    """A failed try: retried after a backoff that doubles each time (an hour, up to a week)."""
    row = _row(session, nct_id, now)
    row.attempts += 1
    wait = min(FIRST_RETRY * 2 ** (row.attempts - 1), LAST_RETRY)
    row.status, row.last_error, row.next_attempt_at = "failing", error[:500], now + wait
    session.add(row)
    return now + wait


def backfill_state(*, session: Session, nct_id: str) -> HistoryBackfill | None:
    return session.get(HistoryBackfill, nct_id)


def progress(*, session: Session) -> BackfillProgress:
    """Studies done, pending (queued or re-queued), failing, and the latest error."""
    grouped = select(HistoryBackfill.status, func.count()).group_by(col(HistoryBackfill.status))
    counts = {status: int(count) for status, count in session.exec(grouped).all()}
    unqueued = int(session.exec(select(func.count()).select_from(_unqueued().subquery())).one())
    latest = session.exec(
        select(HistoryBackfill.last_error, HistoryBackfill.next_attempt_at)
        .where(col(HistoryBackfill.status) == "failing")
        .order_by(col(HistoryBackfill.next_attempt_at).desc())
        .limit(1)
    ).first()
    return BackfillProgress(
        done=int(counts.get("done", 0)), pending=int(counts.get("pending", 0)) + unqueued,
        failing=int(counts.get("failing", 0)), last_error=latest[0] if latest else None,
        last_error_at=latest[1] if latest else None,
    )  # fmt: skip


def stored_versions(*, session: Session, nct_id: str) -> list[StudyVersion]:
    """A study's stored versions with their records (a backfill reads trialwatch's own)."""
    return list(session.exec(select(StudyVersion).where(StudyVersion.nct_id == nct_id)))


def holding_watches(*, session: Session, nct_id: str) -> list[str]:
    return list(
        session.exec(select(WatchStudy.watch).where(WatchStudy.nct_id == nct_id).order_by(col(WatchStudy.watch)))
    )


def is_stored(*, session: Session, nct_id: str) -> bool:
    return session.get(StudyRow, nct_id) is not None


def mark_registry_version(*, session: Session, version_id: int, number: int, day: str) -> None:
    """A stored version is this registry version (trialwatch saw it itself)."""
    statement = update(StudyVersion).where(col(StudyVersion.id) == version_id)
    session.execute(statement.values(registry_version=number, registry_date=day))


def add_historical_changes(*, session: Session, changes: Sequence[dict[str, Any]]) -> None:
    """Changes read from the history (ChangeRow columns): alerted false, historical, owed to nobody,
    keyed by their watch's id like every change (store.watch_keys)."""
    ids = {name: active_watch_id(session=session, name=name) for name in {c["watch"] for c in changes}}
    if changes:
        rows = [{**c, "watch_id": ids[c["watch"]], "alerted": False, "historical": True} for c in changes]
        session.execute(insert(ChangeRow), rows)


def cite_changes(*, session: Session, nct_id: str, detected_at: datetime, pair: tuple[int, int]) -> int:
    """The registry version pair on the changes of this study detected by one poll. Returns how many."""
    query = select(ChangeRow).where(
        ChangeRow.nct_id == nct_id, col(ChangeRow.detected_at) == detected_at, col(ChangeRow.historical).is_(False)
    )
    cited = 0
    for row in session.exec(query):
        if row.kind in ("new_study", "no_longer_matching"):
            continue
        row.details = {**row.details, "registry_versions": list(pair)}
        session.add(row)
        cited += 1
    return cited
