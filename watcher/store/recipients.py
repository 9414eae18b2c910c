"""What recipients asked for: opt-outs, their own schedule, pauses; and the changes owed to them
that will never be sent (status "skipped", with the reason, listed by `trialwatch deliveries`).

Rows are keyed by (watch id, recipient in lower case), for config and web watches alike (a new
watch taking an archived watch's name inherits none of its recipients' choices: store.watch_keys);
the functions take the watch's name, that of an active watch. The config file is never edited.
Small keyword-only functions that take the session; no commits here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, update
from sqlmodel import Session, col, select

from watcher.store.models import ChangeRow, Delivery, Notification, RecipientPreference, WatchRow
from watcher.store.watch_keys import active_watch_id, current_name, of_active, unstored

SCHEDULES = ("immediate", "daily", "weekly")
PAUSE_CHANGES = ("deliver", "skip")


@dataclass(frozen=True)
class Owed:
    """One change owed to one recipient, not yet in any message."""

    notification_id: int
    recipient: str
    watch: str
    detected_at: datetime


def preferences(*, session: Session, recipient: str | None = None) -> dict[tuple[str, str], RecipientPreference]:
    """The preferences for the active watches (one recipient's with `recipient`), by (the watch's
    name now, recipient)."""
    query = (
        select(RecipientPreference, current_name(RecipientPreference.watch_id, RecipientPreference.watch))
        .outerjoin(WatchRow, col(WatchRow.id) == col(RecipientPreference.watch_id))
        .where(
            or_(
                and_(col(RecipientPreference.watch_id).is_not(None), col(WatchRow.archived_at).is_(None)),
                and_(col(RecipientPreference.watch_id).is_(None), unstored(RecipientPreference.watch)),
            )
        )
    )
    if recipient is not None:
        query = query.where(RecipientPreference.recipient == recipient.lower())
    return {(name, row.recipient): row for row, name in session.exec(query)}


def preference(*, session: Session, watch: str, recipient: str, now: datetime) -> RecipientPreference:
    """The recipient's row for a watch, created (following the watch, subscribed) if missing."""
    address = recipient.lower()
    watch_id = active_watch_id(session=session, name=watch)
    query = select(RecipientPreference).where(RecipientPreference.recipient == address)
    if watch_id is not None:
        query = query.where(RecipientPreference.watch_id == watch_id)
    else:  # a watch not stored in the watch table: by its name
        query = query.where(col(RecipientPreference.watch_id).is_(None), RecipientPreference.watch == watch)
    row = session.exec(query).first()
    if row is None:
        row = RecipientPreference(watch=watch, watch_id=watch_id, recipient=address, updated_at=now)
        session.add(row)
    return row


def opted_out(*, session: Session, watch: str) -> set[str]:
    """The recipients of a watch who unsubscribed from it."""
    query = select(RecipientPreference.recipient).where(
        of_active(session, RecipientPreference.watch_id, RecipientPreference.watch, [watch]),
        col(RecipientPreference.unsubscribed_at).is_not(None),
    )
    return set(session.exec(query))


def owed(*, session: Session, watches: Sequence[str]) -> list[Owed]:
    """Every change of these watches owed to a recipient and in no message yet, oldest first."""
    name = current_name(ChangeRow.watch_id, ChangeRow.watch)
    query = (
        select(Notification.id, Notification.recipient, name, ChangeRow.detected_at)
        .join(ChangeRow, col(ChangeRow.id) == col(Notification.change_id))
        .outerjoin(WatchRow, col(WatchRow.id) == col(ChangeRow.watch_id))
        .where(
            col(Notification.delivery_id).is_(None), of_active(session, ChangeRow.watch_id, ChangeRow.watch, watches)
        )
        .order_by(col(Notification.id))
    )
    return [Owed(nid, recipient, watch, at) for nid, recipient, watch, at in session.exec(query) if nid is not None]


def skip(*, session: Session, recipient: str, notification_ids: Iterable[int], reason: str, now: datetime) -> int:
    """Never send these changes to the recipient: they go into a message of status "skipped" that
    says why. Only those still in no message, or in one not yet handed to a server (pending),
    are taken. Returns how many."""
    ids = list(notification_ids)
    if not ids:
        return 0
    row = Delivery(
        recipient=recipient.lower(), message_id=f"<skipped.{uuid.uuid4().hex}@trialwatch>", status="skipped",
        created_at=now, skip_reason=reason,
    )  # fmt: skip
    session.add(row)
    session.flush()
    unsent = select(Delivery.id).where(Delivery.status == "pending")
    claim = (
        update(Notification)
        .where(
            col(Notification.id).in_(ids),
            col(Notification.delivery_id).is_(None) | col(Notification.delivery_id).in_(unsent),
        )
        .values(delivery_id=row.id)
        .execution_options(synchronize_session=False)
    )
    taken = int(session.execute(claim).rowcount or 0)  # type: ignore[attr-defined]
    if not taken:
        session.delete(row)
    return taken


def unsubscribe(*, session: Session, recipient: str, watches: Sequence[str], now: datetime) -> list[str]:
    """The recipient leaves these watches: nothing more is sent to them from the next message on,
    and every change already owed to them (unsent) is skipped. Returns the watches they left now."""
    left = []
    for watch in dict.fromkeys(watches):
        row = preference(session=session, watch=watch, recipient=recipient, now=now)
        if row.unsubscribed_at is None:
            row.unsubscribed_at = row.updated_at = now
            left.append(watch)
        session.add(row)
        skip_unsent(session=session, recipient=recipient, watch=watch, reason=unsubscribed_reason(watch, now), now=now)
    return left


def unsubscribed_reason(watch: str, at: datetime) -> str:
    return f"unsubscribed from {watch!r} on {at:%Y-%m-%d %H:%M} UTC"


def skip_unsent(*, session: Session, recipient: str, watch: str, reason: str, now: datetime) -> int:
    """Skip every change of a watch owed to the recipient and not sent: those in no message, and
    those in a message no server has accepted yet (pending), which then loses them (and the
    watch's "nothing new" line); a pending message left with nothing to say is dropped."""
    address = recipient.lower()
    query = (
        select(Notification.id)
        .join(ChangeRow, col(ChangeRow.id) == col(Notification.change_id))
        .outerjoin(Delivery, col(Delivery.id) == col(Notification.delivery_id))
        .where(Notification.recipient == address, of_active(session, ChangeRow.watch_id, ChangeRow.watch, [watch]))
        .where(col(Notification.delivery_id).is_(None) | (col(Delivery.status) == "pending"))
    )
    ids = [nid for nid in session.exec(query) if nid is not None]
    taken = skip(session=session, recipient=address, notification_ids=ids, reason=reason, now=now)
    for message in session.exec(select(Delivery).where(Delivery.recipient == address, Delivery.status == "pending")):
        message.quiet_watches = [name for name in message.quiet_watches if name != watch]
        carries = session.exec(select(Notification.id).where(Notification.delivery_id == message.id)).first()
        if carries is None and not message.quiet_watches:
            session.delete(message)
        else:
            session.add(message)
    return taken


def subscribe(*, session: Session, recipient: str, watch: str, now: datetime) -> bool:
    """The recipient receives the watch again (changes found from now on). True if they had left."""
    row = preference(session=session, watch=watch, recipient=recipient, now=now)
    was_out = row.unsubscribed_at is not None
    row.unsubscribed_at, row.updated_at = None, now
    session.add(row)
    return was_out


def set_schedule(
    *,
    session: Session,
    watch: str,
    recipient: str,
    schedule: str | None,
    paused_until: datetime | None,
    pause_changes: str,
    now: datetime,
) -> RecipientPreference:
    """The recipient's own schedule for a watch (None: the watch's), and a pause until a moment
    (None: no pause) whose changes are delivered after it or skipped (`pause_changes`)."""
    if schedule is not None and schedule not in SCHEDULES:
        raise ValueError(f"schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
    if pause_changes not in PAUSE_CHANGES:
        raise ValueError(f"pause_changes {pause_changes!r}: expected deliver or skip")
    row = preference(session=session, watch=watch, recipient=recipient, now=now)
    if schedule != row.schedule:
        row.schedule, row.last_digest_at = schedule, now  # the new schedule's next slot comes first
    # The pause's window (paused_at, paused_until) is kept after it ends: its changes still owed
    # are skipped or delivered by what the recipient chose, whenever the next message goes.
    running = row.paused_until is not None and row.paused_until > now
    if paused_until is None or paused_until <= now:
        if running:
            row.paused_until = now  # ended early
    elif running:
        row.paused_until = paused_until  # a running pause moved: it started when it started
    else:
        row.paused_at, row.paused_until = now, paused_until
    row.pause_changes, row.updated_at = pause_changes, now
    session.add(row)
    return row


@dataclass(frozen=True)
class Receiving:
    """What one recipient gets from one watch, as `trialwatch recipients` and the pages show it."""

    watch: str
    recipient: str
    watch_schedule: str  # the watch's digest
    own_schedule: str | None
    paused_until: datetime | None  # only while the pause runs
    pause_changes: str
    unsubscribed_at: datetime | None

    @property
    def schedule(self) -> str:
        return self.own_schedule or self.watch_schedule

    def as_json(self) -> dict[str, object]:
        return {
            "watch": self.watch, "recipient": self.recipient, "schedule": self.schedule,
            "own_schedule": self.own_schedule is not None,
            "paused_until": self.paused_until.isoformat() if self.paused_until else None,
            "pause_changes": self.pause_changes,
            "unsubscribed_at": self.unsubscribed_at.isoformat() if self.unsubscribed_at else None,
        }  # fmt: skip


def receiving(
    *, session: Session, watches: Sequence[tuple[str, str, Sequence[str]]], now: datetime, recipient: str | None = None
) -> list[Receiving]:
    """One row per (watch, recipient of it) for `watches` given as (name, digest, recipients), in
    that order; only `recipient`'s rows when given."""
    prefs = preferences(session=session, recipient=recipient)
    rows = []
    for name, digest, addresses in watches:
        for address in dict.fromkeys(a.lower() for a in addresses):
            if recipient is not None and address != recipient.lower():
                continue
            pref = prefs.get((name, address))
            running = pref is not None and pref.paused_until is not None and pref.paused_until > now
            rows.append(
                Receiving(
                    watch=name,
                    recipient=address,
                    watch_schedule=digest,
                    own_schedule=pref.schedule if pref else None,
                    paused_until=pref.paused_until if pref and running else None,
                    pause_changes=pref.pause_changes if pref else "deliver",
                    unsubscribed_at=pref.unsubscribed_at if pref else None,
                )  # fmt: skip
            )
    return rows
