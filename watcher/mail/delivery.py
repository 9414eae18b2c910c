"""The outbox: decide which digests are due, promise changes to messages, send, record.

Exactly once per change and recipient: every change is owed to each subscribed recipient as a
`Notification` row. Delivering first creates a `Delivery` row (status pending, stable Message-ID)
and ties the notifications to it in one transaction; then the delivery is claimed ("sending",
atomically, so two processes never both send it); then the message is sent; then the delivery
is marked sent. A failure keeps it pending with the server's answer and the next run sends the
same message again, with the same Message-ID. The window: a crash after the server accepted the
message and before `sent` is committed makes the next run send it again (same Message-ID, so
most mail clients show it once).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from watcher import channels
from watcher.channels import is_channel
from watcher.config import WEEKDAYS, Config, DigestConfig, WatchConfig
from watcher.mail.audience import RunContext, plan_run
from watcher.mail.channel import ChannelSender, render_chat
from watcher.mail.coming_up import coming_up_for
from watcher.mail.digest import Digest, build_digest
from watcher.mail.links import LinkSigner
from watcher.mail.problems import source_problems
from watcher.mail.transport import DeliveryFailed, Transport, build_message, new_message_id
from watcher.store import outbox, recipients, repo
from watcher.store.db import transaction
from watcher.store.models import Delivery
from watcher.store.watch_keys import active_ids_of

log = logging.getLogger(__name__)

_ONE_RUN_AT_A_TIME = threading.Lock()
RETRY_FIRST = timedelta(minutes=5)
RETRY_MAX = timedelta(hours=6)
# A message "sending" for longer belongs to a process that died mid-send; it is sent again (same
# Message-ID). `digest --now` does not wait: it holds the leader lock, nobody else is sending.
SENDING_STALE_AFTER = timedelta(minutes=15)
CHANNEL_MAX_ATTEMPTS = 10  # a channel still failing after these (about a day of backoff) is failed for good
CHANNEL_SENDER = ChannelSender()  # chat channels and webhooks (Apprise), beside the mail transport


def last_slot(schedule: str, digest: DigestConfig, now: datetime) -> datetime | None:
    """The most recent scheduled digest time at or before `now`, in UTC (None for immediate).

    The slot is the configured local time on a local day, turned into UTC before any comparison
    (Python compares two times of one zone by their wall clocks). A time that does not exist on
    the day clocks go forward (02:30 in Paris) falls an hour later; one that exists twice on the
    day they go back counts once, the first time.
    """
    if schedule == "immediate":
        return None
    today = now.astimezone(digest.zone).date()
    if schedule == "daily":
        candidates = [today, today - timedelta(days=1)]
    else:
        back = (today.weekday() - WEEKDAYS.index(digest.weekday)) % 7
        candidates = [today - timedelta(days=back), today - timedelta(days=back + 7)]
    for day in candidates:
        slot = datetime.combine(day, digest.time, tzinfo=digest.zone).astimezone(UTC)
        if slot <= now:
            return slot
    return None


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
    storage_error: str | None = None  # the outbox folder could not be written (full, read-only)

    @property
    def ok(self) -> bool:
        return not self.failed


def deliver(
    *,
    engine: Engine,
    config: Config,
    transport: Transport,
    watches: Iterable[str],
    now: datetime,
    retry_now: bool = False,
    scheduled: Iterable[str] = (),
    stopping: threading.Event | None = None,
    everything: bool = False,
    links: LinkSigner | None = None,
) -> DeliveryReport:
    """Send every pending change of `watches` in one message per recipient, plus messages left
    pending by earlier runs whose backoff has passed (all of them with `retry_now`). Watches in
    `scheduled` that have `send_empty` and nothing new get a short "nothing new" note. Recipients
    with their own schedule get their changes when it is due (every one of them with
    `everything`); paused and unsubscribed ones get nothing (see audience.plan_run). With `links`
    each message carries its recipient's unsubscribe and manage links. Once `stopping` is set no
    further message is sent (the rest stay pending)."""
    with _ONE_RUN_AT_A_TIME:  # the poll job's immediate sends and the digest job are threads
        pending = _promise(engine=engine, config=config, watches=list(watches), now=now, scheduled=scheduled,
                           retry_now=retry_now, everything=everything)  # fmt: skip
        report = DeliveryReport()
        down: DeliveryFailed | None = None  # the server cannot be reached or does not answer
        for delivery in pending:
            if stopping is not None and stopping.is_set():
                log.info(
                    "stopping: %d message(s) left for the next run", len(pending) - len(report.sent + report.failed)
                )
                break
            if down is not None:  # one unanswered connection per run, not one per recipient
                _defer(engine=engine, delivery=delivery, report=report, now=now, failure=down)
                continue
            failure = _send_one(engine=engine, config=config, transport=transport, delivery=delivery, report=report,
                                now=now, links=links)  # fmt: skip
            down = failure if failure is not None and failure.unreachable else None
    return report


def _defer(
    *, engine: Engine, delivery: Delivery, report: DeliveryReport, now: datetime, failure: DeliveryFailed
) -> None:
    """Leave a message pending untried, with why: the server failed the run's previous message."""
    assert delivery.id is not None
    with transaction(engine) as session:
        if not outbox.claim_delivery(session=session, delivery=delivery, now=now):
            return
    error = f"not tried: {failure.one_line()}"
    _mark(engine=engine, delivery_id=delivery.id, now=now, error=error)
    log.error("delivery %s to %s left pending: %s", delivery.message_id, delivery.recipient, error)
    report.failed.append(f"{delivery.recipient}: {error}")


def _promise(
    *,
    engine: Engine,
    config: Config,
    watches: list[str],
    now: datetime,
    scheduled: Iterable[str],
    retry_now: bool,
    everything: bool,
) -> list[Delivery]:
    """Create this run's messages (one per recipient, by what each asked for: audience.plan_run),
    mark for good the changes they will never get, and return every message due to be sent."""
    schedules = {watch.name: watch for watch in config.watch}
    context = RunContext(
        watches=config.watch, due=set(watches), scheduled=set(scheduled), everything=everything,
        slot_of=lambda schedule: last_slot(schedule, config.digest, now), now=now,
    )  # fmt: skip
    with transaction(engine) as session:
        owed = recipients.owed(session=session, watches=list(schedules))
        plan = plan_run(context=context, prefs=recipients.preferences(session=session), owed=owed)
        for (recipient, reason), ids in plan.skip.items():
            recipients.skip(session=session, recipient=recipient, notification_ids=ids, reason=reason, now=now)
        for recipient in sorted(set(plan.send) | set(plan.quiet)):
            message_id = new_message_id(config.email.sender, uuid.uuid4().hex)
            delivery, claimed = outbox.create_delivery(
                session=session,
                recipient=recipient,
                notification_ids=plan.send.get(recipient, []),
                message_id=message_id,
                now=now,
            )
            delivery.quiet_watches = plan.quiet.get(recipient, [])
            if not claimed and not delivery.quiet_watches:
                session.delete(delivery)  # another run promised them first
        for name in watches:
            if name in schedules and schedules[name].digest != "immediate":
                repo.get_watch_state(session=session, name=name).last_digest_at = now
        for pref in plan.own_slots:
            pref.last_digest_at = now
            session.add(pref)
        return outbox.pending_deliveries(
            session=session, now=None if retry_now else now, stale_before=now - SENDING_STALE_AFTER
        )


def retry_delay(attempts: int) -> timedelta:
    """Backoff after a temporary failure: 5 minutes, doubling, at most 6 hours."""
    return min(RETRY_FIRST * 2 ** max(attempts - 1, 0), RETRY_MAX)


def _send_one(
    *,
    engine: Engine,
    config: Config,
    transport: Transport,
    delivery: Delivery,
    report: DeliveryReport,
    now: datetime,
    links: LinkSigner | None,
) -> DeliveryFailed | None:
    """Send one stored message and record the outcome; the failure, if it failed."""
    assert delivery.id is not None
    with transaction(engine) as session:
        if not outbox.claim_delivery(session=session, delivery=delivery, now=now):
            log.info("delivery %s: claimed by another process, skipped", delivery.message_id)
            return None
    digest = _digest_for(engine=engine, config=config, delivery=delivery)
    started = time.monotonic()
    try:
        if is_channel(delivery.recipient):
            via = _send_to_channel(config=config, recipient=delivery.recipient, digest=digest)
        else:
            via = _send_mail(
                engine=engine, config=config, transport=transport, delivery=delivery, digest=digest, links=links
            )
    except DeliveryFailed as exc:
        error = exc.one_line()
        gave_up = is_channel(delivery.recipient) and delivery.attempts + 1 >= CHANNEL_MAX_ATTEMPTS
        _mark(engine=engine, delivery_id=delivery.id, now=now, error=error, permanent=exc.permanent or gave_up)
        outcome = "permanent" if exc.permanent else "will retry"
        log.error("delivery %s to %s failed (%s): %s", delivery.message_id, delivery.recipient, outcome, error)
        report.failed.append(f"{delivery.recipient}: {error}")
        report.storage_error = error if exc.storage else report.storage_error
        return exc
    _mark(engine=engine, delivery_id=delivery.id, now=now, error=None, subject=digest.subject())
    log.info(
        "delivered %d change(s) to %s via %s in %.2fs (%s)", digest.change_count, delivery.recipient,
        via, time.monotonic() - started, delivery.message_id,
    )  # fmt: skip
    report.sent.append(delivery.recipient)
    return None


def _send_mail(
    *, engine: Engine, config: Config, transport: Transport, delivery: Delivery, digest: Digest,
    links: LinkSigner | None,
) -> str:  # fmt: skip
    if links is not None:  # the same message sent again carries the same links (the token is deterministic)
        with transaction(engine) as session:
            watch_ids = active_ids_of(session=session, names=digest.watch_names)
        digest.links = links.links(delivery.recipient, watch_ids)
    message = build_message(
        digest=digest, sender=config.email.sender, message_id=delivery.message_id, date=delivery.created_at
    )
    transport.send(message)
    return transport.description


def _send_to_channel(*, config: Config, recipient: str, digest: Digest) -> str:
    """One chat message for a channel's digest; the channel's URL is read from the watches now
    (a channel no watch names any more fails for good: nobody asked for it)."""
    url = channel_urls(config).get(recipient)
    if url is None:
        raise DeliveryFailed(f"{recipient}: no watch sends to this channel any more", permanent=True)
    public_url = config.server.public_url if "public_url" in config.server.model_fields_set else None
    message = render_chat(digest, public_url)
    CHANNEL_SENDER.send(url, message)
    return channels.masked(url)


def channel_urls(config: Config) -> dict[str, str]:
    """Outbox address -> channel URL (as written), for every channel of every watch."""
    return {channels.address(url): url for watch in config.watch for url in watch.notify}


def _digest_for(*, engine: Engine, config: Config, delivery: Delivery) -> Digest:
    """The digest a stored message carries: its promised changes, its quiet watches, the sources
    failing now."""
    assert delivery.id is not None
    with transaction(engine) as session:
        changes = outbox.delivery_changes(session=session, delivery_id=delivery.id)
        problems = source_problems(session=session, config=config, recipient=delivery.recipient)
        digest = build_digest(
            delivery.recipient, changes, delivery.created_at, [watch.name for watch in config.watch],
            quiet=delivery.quiet_watches, problems=problems, config_name=config.path.name,
        )  # fmt: skip
        today = delivery.created_at.date()  # the same message sent again says the same
        digest.coming_up = coming_up_for(session=session, config=config, watches=digest.watch_names, today=today)
    return digest


def _mark(
    *, engine: Engine, delivery_id: int, now: datetime, error: str | None, subject: str = "", permanent: bool = False
) -> None:
    """Record the attempt: sent; or still pending, retried after a backoff (temporary failure);
    or failed for good (a 5xx answer for the recipient)."""
    with transaction(engine) as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        row.attempts += 1
        row.claimed_at = None
        if error is None:
            row.status, row.sent_at, row.subject, row.last_error = "sent", now, subject, None
            row.next_attempt_at = None
        else:
            row.last_error = error
            row.status = "failed" if permanent else "pending"
            row.next_attempt_at = None if permanent else now + retry_delay(row.attempts)
        session.add(row)


def preview_digests(
    *,
    engine: Engine,
    config: Config,
    watches: list[str],
    now: datetime,
    everything: bool = False,
    links: LinkSigner | None = None,
) -> list[Digest]:
    """The digests that would go out now (with their recipient links), built without writing anything."""
    order = [watch.name for watch in config.watch]
    context = RunContext(
        watches=config.watch, due=set(watches), scheduled=set(), everything=everything,
        slot_of=lambda schedule: last_slot(schedule, config.digest, now), now=now,
    )  # fmt: skip
    with transaction(engine) as session:
        owed = recipients.owed(session=session, watches=order)
        plan = plan_run(context=context, prefs=recipients.preferences(session=session), owed=owed)
        digests = [
            build_digest(
                recipient,
                outbox.notification_changes(session=session, notification_ids=ids),
                now,
                order,
                problems=source_problems(session=session, config=config, recipient=recipient),
                config_name=config.path.name,
            )
            for recipient, ids in sorted(plan.send.items())
        ]
        for digest in digests:
            digest.coming_up = coming_up_for(
                session=session, config=config, watches=digest.watch_names, today=now.date()
            )
            if links is not None:
                digest.links = links.links(digest.recipient, active_ids_of(session=session, names=digest.watch_names))
    return digests


def immediate_watches(watches: Iterable[WatchConfig]) -> list[str]:
    return [watch.name for watch in watches if watch.digest == "immediate"]
