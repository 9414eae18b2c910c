"""Who gets what in one delivery run, by what each recipient asked for (store.recipients).

For every change owed to a recipient: skipped for good when they unsubscribed from its watch, or
when it was found during a pause whose changes they chose to skip; held while they are paused or
while their schedule is not due; sent otherwise. A recipient without their own schedule follows
the watch's (the watch is among the run's due watches); one with their own schedule has their
own slot, kept in their preference row. "Nothing new" notes go to subscribed, unpaused recipients
of `send_empty` watches whose slot came with nothing for them.

Pure: the caller reads the rows and the clock and writes the outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from watcher.config import WatchConfig
from watcher.store.models import RecipientPreference
from watcher.store.recipients import Owed, unsubscribed_reason

Preferences = dict[tuple[str, str], RecipientPreference]
SlotOf = Callable[[str], datetime | None]  # a schedule's last slot at or before now (None: immediate)


@dataclass
class RunPlan:
    send: dict[str, list[int]] = field(default_factory=dict)  # recipient -> notification ids
    quiet: dict[str, list[str]] = field(default_factory=dict)  # recipient -> watches with nothing new
    skip: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (recipient, reason) -> ids
    own_slots: list[RecipientPreference] = field(default_factory=list)  # their own digest went now


@dataclass(frozen=True)
class RunContext:
    watches: Sequence[WatchConfig]
    due: set[str]  # watches whose schedule is due in this run (or chosen by the caller)
    scheduled: set[str]  # of those, the ones due by their schedule ("nothing new" notes)
    everything: bool  # `digest --now`: whatever the schedule (pauses and opt-outs still hold)
    slot_of: SlotOf
    now: datetime


def paused(pref: RecipientPreference | None, now: datetime) -> bool:
    return pref is not None and pref.paused_until is not None and now < pref.paused_until


def own_slot_due(pref: RecipientPreference, context: RunContext) -> bool:
    """Whether a recipient with their own schedule has a digest due now."""
    assert pref.schedule is not None
    if context.everything or pref.schedule == "immediate":
        return True
    slot = context.slot_of(pref.schedule)
    return slot is not None and (pref.last_digest_at is None or slot > pref.last_digest_at)


def recipient_due(pref: RecipientPreference | None, watch: str, context: RunContext) -> bool:
    if pref is not None and pref.schedule:
        return own_slot_due(pref, context)
    return watch in context.due


def skip_reason(pref: RecipientPreference | None, owed: Owed) -> str | None:
    """Why this change must never be sent to its recipient, or None."""
    if pref is None:
        return None
    if pref.unsubscribed_at is not None:
        return unsubscribed_reason(owed.watch, pref.unsubscribed_at)
    start, end = pref.paused_at, pref.paused_until
    if pref.pause_changes == "skip" and start is not None and end is not None and start <= owed.detected_at < end:
        return (
            f"found while {owed.recipient} paused {owed.watch!r} until {end:%Y-%m-%d %H:%M} UTC "
            "(they chose to skip the pause's changes)"
        )
    return None


def plan_run(*, context: RunContext, prefs: Preferences, owed: Sequence[Owed]) -> RunPlan:
    plan = RunPlan()
    for item in owed:
        pref = prefs.get((item.watch, item.recipient))
        reason = skip_reason(pref, item)
        if reason is not None:
            plan.skip.setdefault((item.recipient, reason), []).append(item.notification_id)
        elif not paused(pref, context.now) and recipient_due(pref, item.watch, context):
            plan.send.setdefault(item.recipient, []).append(item.notification_id)
    sending = {(item.watch, item.recipient) for item in owed if item.notification_id in _ids(plan.send)}
    for watch in context.watches:
        for recipient in dict.fromkeys(r.lower() for r in watch.recipients):
            if _quiet_note_due(watch, prefs.get((watch.name, recipient)), context) and (
                (watch.name, recipient) not in sending
            ):
                plan.quiet.setdefault(recipient, []).append(watch.name)
    names = {watch.name for watch in context.watches}
    plan.own_slots = [
        pref
        for pref in prefs.values()
        if pref.watch in names and pref.schedule not in (None, "immediate") and pref.unsubscribed_at is None
        and not paused(pref, context.now) and own_slot_due(pref, context)
    ]  # fmt: skip
    return plan


def _ids(send: dict[str, list[int]]) -> set[int]:
    return {nid for ids in send.values() for nid in ids}


def _quiet_note_due(watch: WatchConfig, pref: RecipientPreference | None, context: RunContext) -> bool:
    if not watch.send_empty or paused(pref, context.now):
        return False
    if pref is not None and pref.unsubscribed_at is not None:
        return False
    if pref is not None and pref.schedule:
        quiet_context = RunContext(context.watches, context.due, context.scheduled, False, context.slot_of, context.now)
        return pref.schedule != "immediate" and own_slot_due(pref, quiet_context)
    return watch.digest != "immediate" and watch.name in context.scheduled
