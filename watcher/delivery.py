"""The outbox: decide which digests are due, promise changes to messages, send, record.

Exactly once per change and recipient: every change is owed to each subscribed recipient as a
`Notification` row. Delivering first creates a `Delivery` row (status pending, stable Message-ID)
and ties the notifications to it in one transaction; then the message is sent; then the delivery
is marked sent. A failure keeps it pending with the server's answer and the next run sends the
same message again, with the same Message-ID. The window: a crash after the server accepted the
message and before `sent` is committed makes the next run send it again (same Message-ID, so
most mail clients show it once).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from watcher.config import WEEKDAYS, Config, DigestConfig, WatchConfig
from watcher.digest import Digest, build_digest
from watcher.notify.email import DeliveryFailed, Transport, build_message, new_message_id
from watcher.store import repo
from watcher.store.db import transaction
from watcher.store.models import Delivery

log = logging.getLogger(__name__)


def last_slot(schedule: str, digest: DigestConfig, now: datetime) -> datetime | None:
    """The most recent scheduled digest time at or before `now` (None for immediate)."""
    if schedule == "immediate":
        return None
    local_now = now.astimezone(digest.zone)
    slot = datetime.combine(local_now.date(), digest.time, tzinfo=digest.zone)
    if schedule == "daily":
        return slot if slot <= local_now else slot - timedelta(days=1)
    back = (local_now.weekday() - WEEKDAYS.index(digest.weekday)) % 7
    slot -= timedelta(days=back)
    return slot if slot <= local_now else slot - timedelta(days=7)


def due_watches(config: Config, engine: Engine, now: datetime, *, everything: bool = False) -> list[str]:
    """Names of watches whose digest is due now (all of them with `everything`)."""
    if everything:
        return [watch.name for watch in config.watch]
    with transaction(engine) as session:
        states = repo.watch_states(session=session)
    due = []
    for watch in config.watch:
        state = states.get(watch.name)
        slot = last_slot(watch.digest, config.digest, now)
        reference = (state.last_digest_at or state.baseline_at) if state else None
        if slot is None or (reference is not None and slot > reference):
            due.append(watch.name)
    return due


@dataclass
class DeliveryReport:
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def deliver(
    *, engine: Engine, config: Config, transport: Transport, watches: Iterable[str], now: datetime
) -> DeliveryReport:
    """Send every pending change of `watches` (plus any message left pending before)."""
    watch_names = list(watches)
    schedules = {watch.name: watch for watch in config.watch}
    with transaction(engine) as session:
        for recipient, ids in repo.undelivered(session=session, watches=watch_names).items():
            message_id = new_message_id(config.email.sender, uuid.uuid4().hex)
            repo.create_delivery(
                session=session, recipient=recipient, notification_ids=ids, message_id=message_id, now=now
            )
        for name in watch_names:
            if name in schedules and schedules[name].digest != "immediate":
                repo.get_watch_state(session=session, name=name).last_digest_at = now
        pending = repo.pending_deliveries(session=session)
    report = DeliveryReport()
    for delivery in pending:
        _send_one(engine=engine, config=config, transport=transport, delivery=delivery, report=report, now=now)
    return report


def _send_one(
    *,
    engine: Engine,
    config: Config,
    transport: Transport,
    delivery: Delivery,
    report: DeliveryReport,
    now: datetime,
) -> None:
    assert delivery.id is not None
    with transaction(engine) as session:
        changes = repo.delivery_changes(session=session, delivery_id=delivery.id)
    order = [watch.name for watch in config.watch]
    digest = build_digest(delivery.recipient, changes, delivery.created_at, order)
    message = build_message(
        digest=digest, sender=config.email.sender, message_id=delivery.message_id, date=delivery.created_at
    )
    try:
        transport.send(message)
    except DeliveryFailed as exc:
        error = exc.one_line()
        log.error("delivery to %s failed: %s", delivery.recipient, error)
        _mark(engine=engine, delivery_id=delivery.id, now=now, error=error, permanent=exc.permanent)
        report.failed.append(f"{delivery.recipient}: {error}")
        return
    _mark(engine=engine, delivery_id=delivery.id, now=now, error=None, subject=digest.subject())
    log.info(
        "delivered %d change(s) to %s via %s (%s)",
        digest.change_count,
        delivery.recipient,
        transport.description,
        delivery.message_id,
    )
    report.sent.append(delivery.recipient)


def _mark(
    *, engine: Engine, delivery_id: int, now: datetime, error: str | None, subject: str = "", permanent: bool = False
) -> None:
    """Record the attempt: sent; or still pending (temporary failure); or failed for good (5xx)."""
    with transaction(engine) as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        row.attempts += 1
        if error is None:
            row.status, row.sent_at, row.subject, row.last_error = "sent", now, subject, None
        else:
            row.last_error = error
            row.status = "failed" if permanent else "pending"
        session.add(row)


def preview_digests(*, engine: Engine, watches: list[str], now: datetime) -> list[Digest]:
    """The digests that would go out now, built without writing anything."""
    with transaction(engine) as session:
        pending = repo.undelivered(session=session, watches=watches)
        return [
            build_digest(recipient, repo.notification_changes(session=session, notification_ids=ids), now, watches)
            for recipient, ids in sorted(pending.items())
        ]


def immediate_watches(watches: Iterable[WatchConfig]) -> list[str]:
    return [watch.name for watch in watches if watch.digest == "immediate"]
