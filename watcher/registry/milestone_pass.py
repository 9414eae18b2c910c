"""After a watch's poll: the milestones its studies reached by today, as changes (`results_overdue`
once per study, `estimated_date_passed` once per date), and each study's calendar events recorded
(a day that moved gets the next SEQUENCE). Runs in the poll's own transaction.

Exactly once, through restarts: each milestone the watch has had its say on is a row
(`milestone_mark`), written in the transaction that stores the change. A milestone is mailed only
when it happened while the watch held the study and followed milestones: on or after the day the
study joined and the day the watch's milestones were first looked at. What had happened before (a
study already overdue when it joined, everything at a watch's baseline or on the first look after
an upgrade) is marked silently. Milestones happen on a day, so a poll that changed nothing looks
again only on a new day.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from watcher.milestones import date_events, milestones
from watcher.model import FieldChange, Source
from watcher.rules import judge
from watcher.store import milestones as store
from watcher.store.repo import add_change
from watcher.watch import WatchConfig


def note_milestones(
    *, session: Session, watch: WatchConfig, now: datetime, baseline: bool = False, changed: bool = True
) -> list[FieldChange]:
    """The milestone changes stored for `watch` now (held back ones included); `changed`: the poll
    stored a new version or change for the watch (else the look is skipped when already done today)."""
    state, first = store.follow(session=session, watch=watch.name, now=now)
    today = now.date()
    if not (first or baseline or changed) and state.passed_on == today.isoformat():
        return []
    state.passed_on = today.isoformat()
    session.add(state)
    held = store.held_studies(session=session, watch=watch.name)
    known = store.marks(session=session, watch=watch.name)
    noted, stored = [], []
    for study in held:
        cutoff = max(state.since, study.matched_at).date()
        for milestone in milestones(study.facts, today):
            key = (study.facts.nct_id, str(milestone.kind), milestone.marker)
            if key in known:
                continue
            noted.append(key)
            if first or baseline or milestone.occurred < cutoff:
                continue  # it happened before the watch followed it: never news
            change = judge(watch, FieldChange(milestone.kind, milestone.summary, milestone.details))
            add_change(
                session=session, watch=watch.name, kind=change.kind, source=Source.CLINICALTRIALS,
                nct_id=study.facts.nct_id, title=study.facts.title, summary=change.summary, details=change.details,
                recipients=watch.recipients, now=now, suppressed_by=change.suppressed_by,
            )  # fmt: skip
            stored.append(change)
    store.add_marks(session=session, watch=watch.name, keys=noted, now=now)
    events = [event for study in held for event in date_events(study.facts, today)]
    store.store_calendar_events(session=session, events=events, now=now)
    return stored
