"""After a watch's poll: the milestones its studies reached by today, as changes (`results_overdue`
once per study, `estimated_date_passed` once per date), and each study's calendar events recorded
(a day that moved gets the next SEQUENCE). Runs in the poll's own transaction.

Exactly once, through restarts: each milestone told is a row (`milestone_mark`), written in the
transaction that stores the change. A milestone is told only when it happened while the watch
held the study and followed milestones: after the day the watch's milestones were first looked at
(its baseline, or the first poll after the upgrade that brought them), and on or after the day
the study joined. What happened before (a study already overdue when it joined) is never news.

Milestones happen on a day: the first poll of a day (and a baseline) looks at every held study; a
later poll that day only at the studies it stored a change for (a new version may move a date),
and a poll that changed nothing not at all. A baseline tells nothing but records the calendar's
days, so that a date that moves later gets the next SEQUENCE.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlmodel import Session

from watcher.milestones import date_events, milestones
from watcher.model import FieldChange, Source
from watcher.rules import judge
from watcher.store import milestones as store
from watcher.store.repo import add_change
from watcher.watch import WatchConfig


def note_milestones(
    *, session: Session, watch: WatchConfig, now: datetime, baseline: bool = False, touched: Collection[str] = ()
) -> list[FieldChange]:
    """The milestone changes stored for `watch` now (held back ones included); `touched`: the
    studies this poll stored a change for."""
    state, first = store.follow(session=session, watch=watch.name, now=now)
    today = now.date()
    looked_today = state.passed_on == today.isoformat()
    state.passed_on = today.isoformat()
    session.add(state)
    everything = first or baseline or not looked_today
    if not everything and not touched:
        return []  # nothing new since the last look today
    held = store.held_studies(session=session, watch=watch.name, nct_ids=None if everything else touched)
    known = store.marks(session=session, watch=watch.name)
    told, stored = [], []
    for study in held:
        for milestone in milestones(study.facts, today):
            key = (study.facts.nct_id, str(milestone.kind), milestone.marker)
            news = milestone.occurred > state.since.date() and milestone.occurred >= study.matched_at.date()
            if key in known or not news or baseline:  # a baseline alerts on nothing
                continue
            told.append(key)
            change = judge(watch, FieldChange(milestone.kind, milestone.summary, milestone.details))
            add_change(
                session=session, watch=watch.name, kind=change.kind, source=Source.CLINICALTRIALS,
                nct_id=study.facts.nct_id, title=study.facts.title, summary=change.summary, details=change.details,
                recipients=watch.audience, now=now, suppressed_by=change.suppressed_by,
            )  # fmt: skip
            stored.append(change)
    store.add_marks(session=session, watch=watch.name, keys=told, now=now)
    events = [event for study in held for event in date_events(study.facts, today)]
    store.store_calendar_events(session=session, events=events, now=now)
    return stored
