"""Queries. Small keyword-only functions that take the session explicitly; no commits here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlmodel import Session, col, select

from watcher.model import ChangeKind, ChangeRecord, FieldChange, Source, Study
from watcher.store.models import (
    ChangeRow,
    Delivery,
    FeedItemRow,
    FeedState,
    Notification,
    StudyRow,
    StudyVersion,
    WatchRow,
    WatchState,
    WatchStudy,
)
from watcher.store.packing import pack_record, unpack_record
from watcher.store.recipients import opted_out
from watcher.store.watch_keys import active_watch_id, current_name, of_active, of_named


def get_watch_state(*, session: Session, name: str) -> WatchState:
    state = session.get(WatchState, name)
    if state is None:
        state = WatchState(name=name)
        session.add(state)
    return state


def watch_states(*, session: Session) -> dict[str, WatchState]:
    return {state.name: state for state in session.exec(select(WatchState))}


def save_study_version(
    *,
    session: Session,
    record: dict[str, Any],
    study: Study,
    fingerprint: str,
    now: datetime,
    summary: dict[str, Any] | None = None,
) -> int:
    """Store the study; add a version only when its tracked fields changed (with `summary`, the
    study page's cache, when known). Returns the version id."""
    row = session.get(StudyRow, study.nct_id)
    if row is not None and row.fingerprint == fingerprint and row.version_id is not None:
        return row.version_id
    if row is None:
        row = StudyRow(nct_id=study.nct_id, first_seen_at=now, title="", status="", fingerprint="")
        session.add(row)
    row.title, row.status, row.phase = study.title, study.status, study.phase_label
    row.last_update_posted, row.fingerprint, row.changed_at = study.last_update_posted, fingerprint, now
    session.flush()
    version = StudyVersion(
        nct_id=study.nct_id,
        fingerprint=fingerprint,
        record=pack_record(record),
        last_update_posted=study.last_update_posted,
        seen_at=now,
        summary=summary,
    )
    session.add(version)
    session.flush()
    assert version.id is not None
    row.version_id = version.id
    return version.id


def load_version(*, session: Session, version_id: int) -> dict[str, Any]:
    version = session.get(StudyVersion, version_id)
    if version is None:
        raise LookupError(f"study version {version_id} is missing")
    return unpack_record(version.record)


def get_watch_study(*, session: Session, watch: str, nct_id: str) -> WatchStudy | None:
    return session.get(WatchStudy, (watch, nct_id))


def watch_study_ids(*, session: Session, watch: str) -> set[str]:
    """The ids of every study a watch holds."""
    return set(session.exec(select(WatchStudy.nct_id).where(WatchStudy.watch == watch)))


def watch_links(*, session: Session, watch: str) -> list[tuple[WatchStudy, str]]:
    """Every study a watch holds, with its stored title."""
    query = (
        select(WatchStudy, StudyRow.title)
        .join(StudyRow, col(StudyRow.nct_id) == col(WatchStudy.nct_id), isouter=True)
        .where(WatchStudy.watch == watch)
        .order_by(col(WatchStudy.nct_id))
    )
    return [(link, title or link.nct_id) for link, title in session.exec(query)]


def study_versions(*, session: Session, nct_id: str) -> list[StudyVersion]:
    """A study's stored versions, oldest first."""
    query = select(StudyVersion).where(StudyVersion.nct_id == nct_id).order_by(col(StudyVersion.id))
    return list(session.exec(query))


def record_change(
    *,
    session: Session,
    watch: str,
    study: Study,
    change: FieldChange,
    recipients: Iterable[str],
    now: datetime,
) -> ChangeRow:
    """Store a registry change and owe it to each recipient subscribed now (unless a rule held it back)."""
    return add_change(
        session=session, watch=watch, kind=change.kind, source=Source.CLINICALTRIALS, nct_id=study.nct_id,
        title=study.title, summary=change.summary, details=change.details, recipients=recipients, now=now,
        suppressed_by=change.suppressed_by,
    )  # fmt: skip


def add_change(
    *,
    session: Session,
    watch: str,
    kind: ChangeKind,
    source: Source,
    nct_id: str,
    title: str,
    summary: str,
    details: dict[str, Any],
    recipients: Iterable[str],
    now: datetime,
    suppressed_by: str | None = None,
) -> ChangeRow:
    """Store a change (any source) and owe it to each recipient subscribed now (not opted out). A
    change a watch rule held back (`suppressed_by`) is stored with alerted false and owed to nobody:
    no notification row exists, so nothing can ever mail it."""
    row = ChangeRow(
        watch=watch, watch_id=active_watch_id(session=session, name=watch), kind=str(kind),
        source=str(source), nct_id=nct_id, title=title, summary=summary,
        details=details, detected_at=now, alerted=suppressed_by is None, suppressed_by=suppressed_by,
    )  # fmt: skip
    session.add(row)
    session.flush()
    assert row.id is not None
    if suppressed_by is not None:
        return row
    left = opted_out(session=session, watch=watch)
    for recipient in dict.fromkeys(r.lower() for r in recipients):
        if recipient not in left:
            session.add(Notification(change_id=row.id, recipient=recipient))
    return row


def get_feed_state(*, session: Session, name: str, url: str) -> FeedState:
    """A feed's stored state; a new one (or one whose configured URL changed) starts over."""
    state = session.get(FeedState, name)
    if state is None:
        state = FeedState(name=name, configured_url=url, url=url)
        session.add(state)
    elif state.configured_url != url:
        state.configured_url = state.url = url
        state.etag = state.last_modified = state.body_hash = None
        state.baseline_at = state.gone_at = state.next_poll_at = None
        state.error_count, state.last_error, state.failing_since = 0, None, None
        session.add(state)
    return state


def feed_states(*, session: Session) -> dict[str, FeedState]:
    return {state.name: state for state in session.exec(select(FeedState))}


def known_feed_item(*, session: Session, keys: Sequence[str], doi: str | None) -> FeedItemRow | None:
    """The stored article with any of these keys, or with this DOI (the same paper elsewhere)."""
    found = session.exec(select(FeedItemRow).where(col(FeedItemRow.key).in_(list(keys)))).first()
    if found is None and doi:
        found = session.exec(select(FeedItemRow).where(FeedItemRow.doi == doi)).first()
    return found


def watched_studies(*, session: Session, watch: str, nct_ids: Sequence[str]) -> dict[str, str]:
    """Of these NCT ids, those the watch holds, with their titles."""
    if not nct_ids:
        return {}
    query = (
        select(WatchStudy.nct_id, StudyRow.title)
        .join(StudyRow, col(StudyRow.nct_id) == col(WatchStudy.nct_id))
        .where(WatchStudy.watch == watch, col(WatchStudy.nct_id).in_(list(nct_ids)))
    )
    return {nct_id: title for nct_id, title in session.exec(query)}


def list_changes(
    *,
    session: Session,
    since: datetime | None = None,
    watch: str | None = None,
    limit: int | None = None,
    include_held_back: bool = False,
) -> list[ChangeRecord]:
    """Stored changes, newest first: alerted ones, and with `include_held_back` those a watch
    rule held back too (the timeline's "show held back", `changes --all`)."""
    query = select(ChangeRow, StudyRow).join(StudyRow, col(StudyRow.nct_id) == col(ChangeRow.nct_id), isouter=True)
    if not include_held_back:
        query = query.where(col(ChangeRow.alerted).is_(True))
    if since is not None:
        query = query.where(col(ChangeRow.detected_at) >= since)
    if watch is not None:
        query = query.where(of_named(session, ChangeRow.watch_id, ChangeRow.watch, watch))
    query = query.order_by(col(ChangeRow.detected_at).desc(), col(ChangeRow.id).desc())
    if limit:
        query = query.limit(limit)
    return [to_record(change, study) for change, study in session.exec(query)]


def to_record(change: ChangeRow, study: StudyRow | None) -> ChangeRecord:
    assert change.id is not None
    return ChangeRecord(
        id=change.id,
        watch=change.watch,
        kind=ChangeKind(change.kind),
        source=Source(change.source),
        nct_id=change.nct_id,
        title=change.title,
        summary=change.summary,
        details=change.details,
        detected_at=change.detected_at,
        study_status=study.status if study else "",
        study_phase=study.phase if study else "",
        alerted=change.alerted,
        suppressed_by=change.suppressed_by,
    )


def undelivered(*, session: Session, watches: Sequence[str]) -> dict[str, list[int]]:
    """Notification ids not yet in any message, per recipient, for the given watches."""
    query = (
        select(Notification.recipient, Notification.id)
        .join(ChangeRow, col(ChangeRow.id) == col(Notification.change_id))
        .where(
            col(Notification.delivery_id).is_(None),
            of_active(session, ChangeRow.watch_id, ChangeRow.watch, watches),
            col(ChangeRow.alerted).is_(True),  # held-back changes have no notification; never mailed either way
        )
        .order_by(col(Notification.id))
    )
    pending: dict[str, list[int]] = {}
    for recipient, notification_id in session.exec(query):
        if notification_id is not None:
            pending.setdefault(recipient, []).append(notification_id)
    return pending


def create_delivery(
    *, session: Session, recipient: str, notification_ids: list[int], message_id: str, now: datetime
) -> tuple[Delivery, int]:
    """An outbox row, created before sending; the notifications still unpromised are now promised
    to it, atomically (a concurrent run cannot take them too). Returns it and how many it got."""
    delivery = Delivery(recipient=recipient, message_id=message_id, created_at=now)
    session.add(delivery)
    session.flush()
    claimed = 0
    if notification_ids:
        claim = (
            update(Notification)
            .where(col(Notification.id).in_(notification_ids), col(Notification.delivery_id).is_(None))
            .values(delivery_id=delivery.id)
            .execution_options(synchronize_session=False)
        )
        claimed = int(session.execute(claim).rowcount or 0)  # type: ignore[attr-defined]
    return delivery, claimed


def pending_deliveries(
    *, session: Session, now: datetime | None = None, stale_before: datetime | None = None
) -> list[Delivery]:
    """Messages to send: pending ones (with `now`, only those whose retry backoff has passed), and
    ones left "sending" by a process that died (claimed before `stale_before`; all of them
    without `now`, for the caller holds the leader lock)."""
    pending = col(Delivery.status) == "pending"
    if now is not None:
        pending = and_(pending, or_(col(Delivery.next_attempt_at).is_(None), col(Delivery.next_attempt_at) <= now))
    abandoned = col(Delivery.status) == "sending"
    if now is not None:
        abandoned = and_(abandoned, col(Delivery.claimed_at) < (stale_before or now))
    return list(session.exec(select(Delivery).where(or_(pending, abandoned)).order_by(col(Delivery.id))))


def claim_delivery(*, session: Session, delivery: Delivery, now: datetime) -> bool:
    """Mark a message "sending", atomically: False when another process claimed it first."""
    claim = (
        update(Delivery)
        .where(
            col(Delivery.id) == delivery.id,
            col(Delivery.status) == delivery.status,
            or_(col(Delivery.claimed_at).is_(None), col(Delivery.claimed_at) == delivery.claimed_at),
        )
        .values(status="sending", claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(claim).rowcount == 1)  # type: ignore[attr-defined]


def requeue_failed(*, session: Session) -> int:
    """Failed messages become pending again, due at once. Returns how many."""
    rows = list(session.exec(select(Delivery).where(Delivery.status == "failed")))
    for row in rows:
        row.status, row.next_attempt_at = "pending", None
        session.add(row)
    return len(rows)


def list_deliveries(*, session: Session, status: str | None = None, limit: int = 100) -> list[Delivery]:
    """Messages, newest first."""
    query = select(Delivery)
    if status is not None:
        query = query.where(Delivery.status == status)
    return list(session.exec(query.order_by(col(Delivery.id).desc()).limit(limit)))


def delivery_change_counts(*, session: Session, delivery_ids: list[int]) -> dict[int, int]:
    """How many changes each of these messages carries (one query)."""
    query = (
        select(Notification.delivery_id, func.count())
        .where(col(Notification.delivery_id).in_(delivery_ids))
        .group_by(col(Notification.delivery_id))
    )
    return {delivery_id: int(count) for delivery_id, count in session.exec(query) if delivery_id is not None}


def watches_owing(*, session: Session, watches: Sequence[str]) -> set[str]:
    """Which of these watches have at least one change not yet in a message."""
    query = (
        select(current_name(ChangeRow.watch_id, ChangeRow.watch))
        .select_from(ChangeRow)
        .join(Notification, col(Notification.change_id) == col(ChangeRow.id))
        .outerjoin(WatchRow, col(WatchRow.id) == col(ChangeRow.watch_id))
        .where(
            col(Notification.delivery_id).is_(None),
            of_active(session, ChangeRow.watch_id, ChangeRow.watch, watches),
            col(ChangeRow.alerted).is_(True),
        )
        .distinct()
    )
    return set(session.exec(query))


def delivery_changes(*, session: Session, delivery_id: int) -> list[ChangeRecord]:
    return _notified_changes(session, col(Notification.delivery_id) == delivery_id)


def notification_changes(*, session: Session, notification_ids: list[int]) -> list[ChangeRecord]:
    return _notified_changes(session, col(Notification.id).in_(notification_ids))


def _notified_changes(session: Session, condition: Any) -> list[ChangeRecord]:
    query = (
        select(ChangeRow, StudyRow)
        .join(Notification, col(Notification.change_id) == col(ChangeRow.id))
        .join(StudyRow, col(StudyRow.nct_id) == col(ChangeRow.nct_id), isouter=True)
        .where(condition, col(ChangeRow.alerted).is_(True))
        .order_by(col(ChangeRow.id))
    )
    return [to_record(change, study) for change, study in session.exec(query)]


def count_studies(*, session: Session, watch: str) -> int:
    query = select(func.count()).select_from(WatchStudy).where(WatchStudy.watch == watch)
    return int(session.exec(query).one())


def count_pending_notifications(*, session: Session) -> int:
    query = select(func.count()).select_from(Notification).where(col(Notification.delivery_id).is_(None))
    return int(session.exec(query).one())
