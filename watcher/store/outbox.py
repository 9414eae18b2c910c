"""The outbox's queries: notifications not yet in a message, the messages (deliveries) created,
claimed, listed and retried, and the changes a message carries. Keyword-only functions that
take the session; no commits here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlmodel import Session, col, select

from watcher.model import ChangeRecord
from watcher.store.models import ChangeRow, Delivery, Notification, StudyRow, WatchRow
from watcher.store.repo import to_record
from watcher.store.watch_keys import current_name, of_active


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


def count_pending_notifications(*, session: Session) -> int:
    query = select(func.count()).select_from(Notification).where(col(Notification.delivery_id).is_(None))
    return int(session.exec(query).one())
