"""What the due dates, the milestones and the calendar read and write: each held study's facts
(watcher.milestones.DueFacts, from its newest stored version), what a watch has been told of
(`milestone_mark`), since when it follows milestones (`milestone_watch`), and each calendar
event's last published day and SEQUENCE (`calendar_event`).

Keyword-only functions that take the session; no commits here. A version never changes, so its
facts are kept in a small per-process cache by version id: a page that shows a watch's due dates
unpacks each record once per process, not once per view.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session, col, select

from watcher.milestones import DUE_SOON_DAYS, DateEvent, DueFacts, DueState, Verdict, count_states, judge_due
from watcher.store.models import CalendarEvent, MilestoneMark, MilestoneWatch, StudyRow, StudyVersion, WatchStudy
from watcher.store.packing import unpack_record

IN_CHUNK = 500
CACHE_SIZE = 20_000
_cache: OrderedDict[tuple[int, str], DueFacts] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class HeldStudy:
    facts: DueFacts
    matched_at: datetime  # when the watch began to hold it


def held_studies(*, session: Session, watch: str, nct_ids: Collection[str] | None = None) -> list[HeldStudy]:
    """The studies a watch holds (only `nct_ids` of them, when given), each with the facts of its
    newest stored version, by NCT id."""
    query = (
        select(WatchStudy.nct_id, StudyRow.version_id, WatchStudy.matched_at)
        .join(StudyRow, col(StudyRow.nct_id) == col(WatchStudy.nct_id))
        .where(WatchStudy.watch == watch)
        .order_by(col(WatchStudy.nct_id))
    )
    rows = [
        (nct_id, version_id, matched_at)
        for nct_id, version_id, matched_at in session.exec(query)
        if version_id and (nct_ids is None or nct_id in nct_ids)
    ]
    facts = facts_of_versions(session=session, version_ids=[version_id for _, version_id, _ in rows])
    return [HeldStudy(facts[version_id], matched_at) for _, version_id, matched_at in rows if version_id in facts]


def study_facts(*, session: Session, nct_id: str) -> DueFacts | None:
    """The facts of a study's newest stored version (None when it is not stored)."""
    row = session.get(StudyRow, nct_id)
    if row is None or row.version_id is None:
        return None
    return facts_of_versions(session=session, version_ids=[row.version_id]).get(row.version_id)


def facts_of_versions(*, session: Session, version_ids: Sequence[int]) -> dict[int, DueFacts]:
    """DueFacts by version id: from the cache (keyed by id and content hash, so that another
    database's version of the same id is never taken for it), else unpacked from the stored record."""
    keys: dict[int, tuple[int, str]] = {}
    for start in range(0, len(version_ids), IN_CHUNK):
        chunk = list(version_ids[start : start + IN_CHUNK])
        query = select(StudyVersion.id, StudyVersion.fingerprint).where(col(StudyVersion.id).in_(chunk))
        keys.update({ident: (ident, digest) for ident, digest in session.exec(query) if ident is not None})
    with _cache_lock:
        found = {ident: _cache[key] for ident, key in keys.items() if key in _cache}
    missing = [ident for ident in keys if ident not in found]
    for start in range(0, len(missing), IN_CHUNK):
        blobs = select(StudyVersion.id, StudyVersion.record).where(
            col(StudyVersion.id).in_(missing[start : start + IN_CHUNK])
        )
        for ident, blob in session.exec(blobs):
            if ident is not None:
                found[ident] = DueFacts.from_record(unpack_record(blob))
    with _cache_lock:
        for ident in missing:
            if ident in found:
                _cache[keys[ident]] = found[ident]
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return found


STATE_ORDER = [DueState.OVERDUE, DueState.DUE_SOON, DueState.ONGOING, DueState.REPORTED_LATE, DueState.REPORTED,
               DueState.NOT_APPLICABLE]  # fmt: skip


def watch_verdicts(*, session: Session, watch: str, today: date, due_soon_days: int = DUE_SOON_DAYS) -> list[Verdict]:
    """Each held study's verdict on `today`: overdue first, then due soon, ongoing, reported late,
    reported, not applicable; by due date within each state."""
    verdicts = [judge_due(study.facts, today, due_soon_days) for study in held_studies(session=session, watch=watch)]
    return sorted(verdicts, key=lambda v: (STATE_ORDER.index(v.state), v.due or date.max, v.nct_id))


def due_counts(
    *, session: Session, watches: Sequence[str], today: date, due_soon_days: int = DUE_SOON_DAYS
) -> dict[str, dict[str, int]]:
    """How many held studies of each watch are in each state (every state named)."""
    return {
        watch: count_states(watch_verdicts(session=session, watch=watch, today=today, due_soon_days=due_soon_days))
        for watch in watches
    }


# --- what a watch has been told ---------------------------------------------------------------


def follow(*, session: Session, watch: str, now: datetime) -> tuple[MilestoneWatch, bool]:
    """The watch's milestone state, created (since now) when it has none; and whether it was."""
    state = session.get(MilestoneWatch, watch)
    if state is not None:
        return state, False
    state = MilestoneWatch(watch=watch, since=now)
    session.add(state)
    return state, True


def marks(*, session: Session, watch: str) -> set[tuple[str, str, str]]:
    """(NCT id, kind, marker) of every milestone the watch has had its say on."""
    query = select(MilestoneMark.nct_id, MilestoneMark.kind, MilestoneMark.marker).where(MilestoneMark.watch == watch)
    return {(nct_id, kind, marker) for nct_id, kind, marker in session.exec(query)}


def add_marks(*, session: Session, watch: str, keys: Iterable[tuple[str, str, str]], now: datetime) -> None:
    for nct_id, kind, marker in keys:
        session.add(MilestoneMark(watch=watch, nct_id=nct_id, kind=kind, marker=marker, noted_at=now))


# --- calendar events --------------------------------------------------------------------------


def calendar_rows(*, session: Session, nct_ids: Sequence[str]) -> dict[tuple[str, str], CalendarEvent]:
    """The stored calendar events of these studies, by (NCT id, event)."""
    found: dict[tuple[str, str], CalendarEvent] = {}
    for start in range(0, len(nct_ids), IN_CHUNK):
        query = select(CalendarEvent).where(col(CalendarEvent.nct_id).in_(list(nct_ids[start : start + IN_CHUNK])))
        found.update({(row.nct_id, row.event): row for row in session.exec(query)})
    return found


def sequences(*, session: Session, events: Sequence[DateEvent]) -> dict[tuple[str, str], int]:
    """Each event's SEQUENCE as the feed publishes it (read only): the stored one, one more when its
    day moved since it was stored (the next poll stores that), 0 for an event never stored."""
    stored = calendar_rows(session=session, nct_ids=sorted({event.nct_id for event in events}))
    result = {}
    for event in events:
        row = stored.get((event.nct_id, event.what))
        moved = row is not None and row.day != event.day.isoformat()
        result[(event.nct_id, event.what)] = (row.sequence + 1 if moved else row.sequence) if row else 0
    return result


def store_calendar_events(*, session: Session, events: Sequence[DateEvent], now: datetime) -> int:
    """Record each event's day; an event whose day moved gets the next SEQUENCE. Returns how many moved."""
    stored = calendar_rows(session=session, nct_ids=sorted({event.nct_id for event in events}))
    moved = 0
    for event in events:
        day = event.day.isoformat()
        row = stored.get((event.nct_id, event.what))
        if row is None:
            session.add(CalendarEvent(nct_id=event.nct_id, event=event.what, day=day, sequence=0, updated_at=now))
        elif row.day != day:
            row.day, row.sequence, row.updated_at = day, row.sequence + 1, now
            session.add(row)
            moved += 1
    return moved
