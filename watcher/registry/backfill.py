"""A study's past from the registry's own version history (registry/version_history.py).

For each study due (store/backfill.py), after the polls: ask the version list; recognise the
versions trialwatch stored itself (a stored version submitted the day a registry version was is
that version: one version, now marked with its number); ask only the versions not stored, up to
`history_max_versions` of the newest plus the first, and none newer than what the polls have seen
(they store those, and cite them); then, in one transaction, store each as a version of the study
marked with its registry number and date, and the changes between consecutive versions, worked
out with the polls' own diff and noise rules, as *historical* changes: alerted false and owed to
nobody, so never mailed. A failure stores nothing: the study keeps what trialwatch saw itself and
is tried again after a backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert
from sqlmodel import Session

from watcher.config import ClinicalTrialsConfig
from watcher.errors import SourceError
from watcher.model import FieldChange, Source, Study
from watcher.registry.batch import prefetched
from watcher.registry.diff import diff_pruned
from watcher.registry.normalize import content_digest, prune, prune_beside
from watcher.registry.studies import study_summary
from watcher.registry.version_history import RegistryVersion, VersionHistoryClient, chosen_versions
from watcher.store import backfill as queue
from watcher.store import repo, timeline
from watcher.store.db import Batch, transaction
from watcher.store.models import StudyVersion
from watcher.store.packing import pack_record, unpack_record

log = logging.getLogger(__name__)


class Yielded(Exception):  # noqa: N818 (not an error: a poll is due, the study waits its turn)
    """A poll is due: the study in hand is left as it was, still queued."""


@dataclass
class BackfillReport:
    studies: int = 0  # backfilled
    failed: int = 0
    versions: int = 0  # registry versions stored
    changes: int = 0  # historical changes stored
    requests: int = 0
    seconds: float = 0.0
    yielded: bool = False  # stopped early for a poll (or a stop)
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        text = (
            f"registry history: {self.studies} studies backfilled ({self.versions} versions, {self.changes} past "
            f"changes), {self.failed} failed ({self.requests} requests, {self.seconds:.2f}s)"
        )
        return text + ("; stopped for a poll, the rest waits" if self.yielded else "")


@dataclass(frozen=True)
class BackfillPlan:
    marks: dict[int, RegistryVersion]  # a stored version's id -> the registry version it is
    fetch: list[RegistryVersion]  # versions to ask for, oldest first
    newest: int  # the newest number listed


def day_start(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def submitted_on(record: dict[str, Any]) -> str | None:
    """The day this version was submitted (the version list's `date`)."""
    status = (record.get("protocolSection") or {}).get("statusModule") or {}
    day = status.get("lastUpdateSubmitDate")
    return day if isinstance(day, str) and len(day) == 10 else None


def registry_number_of(
    record: dict[str, Any], listed: Sequence[RegistryVersion], taken: set[int]
) -> RegistryVersion | None:
    """The registry version a stored record is: the newest listed the day it was submitted."""
    day = submitted_on(record)
    found = [entry for entry in listed if entry.date == day and entry.number not in taken]
    return found[-1] if found else None


def plan_backfill(listed: Sequence[RegistryVersion], own: Sequence[StudyVersion], max_versions: int) -> BackfillPlan:
    """What to mark and what to ask for, from the version list and the study's stored versions."""
    taken = {v.registry_version for v in own if v.registry_version is not None}
    marks: dict[int, RegistryVersion] = {}
    mine = sorted((v for v in own if not v.from_history), key=lambda v: v.id or 0)
    for version in mine:
        if version.registry_version is None:
            entry = registry_number_of(unpack_record(version.record), listed, taken)
            if entry is not None:
                marks[version.id or 0] = entry
                taken.add(entry.number)
    seen_by_polls = _seen_by_polls(mine[-1], marks) if mine else (lambda entry: True)
    wanted = [e for e in chosen_versions(list(listed), max_versions) if e.number not in taken and seen_by_polls(e)]
    return BackfillPlan(marks=marks, fetch=wanted, newest=listed[-1].number)


def _seen_by_polls(newest: StudyVersion, marks: dict[int, RegistryVersion]) -> Callable[[RegistryVersion], bool]:
    """Registry versions no newer than the newest the polls stored (newer ones are theirs to store
    and cite): by its number when known, else by the day it was submitted."""
    ceiling = newest.registry_version
    if ceiling is None and (newest.id or 0) in marks:
        ceiling = marks[newest.id or 0].number
    if ceiling is not None:
        return lambda entry: entry.number <= ceiling
    last_day = submitted_on(unpack_record(newest.record))
    return lambda entry: last_day is None or entry.date <= last_day


@dataclass
class Prepared:
    """A version read from the history, worked on as the next one downloads: its study, content
    digest, packed record, pruned record (beside the version read before it) and the diff from
    that version (`after`: its number)."""

    entry: RegistryVersion
    record: dict[str, Any]
    study: Study
    digest: str
    packed: bytes
    pruned: dict[str, Any]
    after: int | None = None
    found: list[FieldChange] = field(default_factory=list)


def prepare(entry: RegistryVersion, record: dict[str, Any], before: Prepared | None, ignore: Sequence[str]) -> Prepared:
    # beside the version before: the unchanged bulk of the record is pruned once
    pruned = prune(record, ignore) if before is None else prune_beside(record, before.record, before.pruned, ignore)
    found = diff_pruned(before.pruned, pruned) if before is not None else []
    study = Study.from_record(record, sites=False)
    return Prepared(entry, record, study, content_digest(record, ignore), pack_record(record), pruned,
                    before.entry.number if before else None, found)  # fmt: skip


def fetch_prepared(
    api: VersionHistoryClient, nct_id: str, entries: Sequence[RegistryVersion], ignore: Sequence[str],
    should_stop: Callable[[], bool],
) -> dict[int, Prepared]:  # fmt: skip
    """Each version's record, the next one downloading in a thread while this one is prepared
    (the pages' `prefetched`); raises Yielded as soon as a poll is due."""
    fetching = ((entry, api.version_record(nct_id, entry.number)) for entry in entries)
    done: dict[int, Prepared] = {}
    before: Prepared | None = None
    for entry, record in prefetched(fetching) if entries else ():
        if should_stop():
            raise Yielded
        before = done[entry.number] = prepare(entry, record, before, ignore)
    return done


def backfill_study(
    *, engine: Engine, session: Session, api: VersionHistoryClient, nct_id: str, settings: ClinicalTrialsConfig,
    now: datetime, should_stop: Callable[[], bool] = lambda: False,
) -> tuple[int, int]:  # fmt: skip
    """Backfill one study, written in `session` (the caller's transaction: every failure comes
    before the study's first write); returns (versions stored, historical changes stored).
    Raises SourceError or Yielded, with nothing of the study written."""
    listed = api.version_list(nct_id)
    with Session(engine) as reading:
        own = queue.stored_versions(session=reading, nct_id=nct_id)
    if not own:
        raise SourceError(f"{nct_id} is not stored: no watch holds it")
    plan = plan_backfill(listed, own, settings.history_max_versions)
    if should_stop():
        raise Yielded
    try:
        records = fetch_prepared(api, nct_id, plan.fetch, settings.ignore_fields, should_stop)
        worked = work_backfill(session, nct_id, plan, records, settings.ignore_fields)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a record not in the API v2 shape
        raise SourceError(f"{nct_id}: a version's record cannot be read ({type(exc).__name__}: {exc})"[:300]) from exc
    worked.write(session)
    queue.mark_done(session=session, nct_id=nct_id, now=now, newest=plan.newest, versions=worked.numbered)
    return worked.stored, worked.changes


@dataclass
class _Slot:
    """A version of the study in the order they happened: stored (`blob`) or read now (`record`,
    inserted with `values`)."""

    id: int
    seen_at: datetime
    registry_version: int | None
    registry_date: str | None
    from_history: bool
    blob: bytes | None = None
    record: dict[str, Any] | None = None
    ready: Prepared | None = None  # read now: to be inserted

    @property
    def new(self) -> bool:
        return self.ready is not None

    def read(self) -> dict[str, Any]:
        if self.record is None:
            assert self.blob is not None
            self.record = unpack_record(self.blob)
        return self.record


@dataclass
class Worked:
    """One study's backfill worked out, not yet written: the marks (version id -> registry
    version), the new versions' rows, the summaries of stored versions, the historical changes."""

    marks: list[tuple[int, RegistryVersion]] = field(default_factory=list)
    inserts: list[dict[str, Any]] = field(default_factory=list)
    summaries: dict[int, dict[str, Any]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    stored: int = 0  # versions stored
    changes: int = 0  # historical changes (once, however many watches hold the study)
    numbered: int = 0  # the study's versions with a registry number, once written

    def write(self, session: Session) -> None:
        for version_id, entry in self.marks:
            queue.mark_registry_version(session=session, version_id=version_id, number=entry.number, day=entry.date)
        if self.inserts:
            session.execute(insert(StudyVersion), self.inserts)
        timeline.save_version_summaries(session=session, summaries=self.summaries)
        queue.add_historical_changes(session=session, changes=self.rows)


def work_backfill(
    session: Session, nct_id: str, plan: BackfillPlan, records: dict[int, Prepared], ignore: Sequence[str]
) -> Worked:
    """One study's marks, versions, summaries and historical changes, worked out from what is
    stored (read in `session`), nothing written: a record that cannot be read fails here, before
    any write."""
    stored = queue.stored_versions(session=session, nct_id=nct_id)
    slots = [_Slot(v.id or 0, v.seen_at, v.registry_version, v.registry_date, v.from_history, v.record) for v in stored]
    taken = {slot.registry_version for slot in slots if slot.registry_version is not None}
    first_own = min((slot.id for slot in slots if not slot.from_history), default=None)
    by_id = {slot.id: slot for slot in slots}
    worked = Worked()
    for version_id, entry in plan.marks.items():
        if entry.number not in taken and version_id in by_id:
            worked.marks.append((version_id, entry))
            by_id[version_id].registry_version, by_id[version_id].registry_date = entry.number, entry.date
            taken.add(entry.number)
    for entry in plan.fetch:
        if entry.number not in taken:  # ids after every stored one: ordered by their numbers (repo.in_order)
            ready = records[entry.number]
            slot = _Slot(10**15 + entry.number, day_start(entry.date), entry.number, entry.date, True, None,
                         ready.record, ready)  # fmt: skip
            slots.append(slot)
            taken.add(entry.number)
    worked.numbered = sum(slot.registry_version is not None for slot in slots)
    if any(slot.new for slot in slots):
        worked.stored = sum(slot.new for slot in slots)
        _versions_and_changes(session, nct_id, repo.in_order(slots), first_own, ignore, worked)
    return worked


def _versions_and_changes(
    session: Session, nct_id: str, ordered: list[_Slot], first_own: int | None, ignore: Sequence[str], worked: Worked
) -> None:
    """The new versions with their summaries; the summaries of stored versions whose version
    before is new; the changes into a new version (or into trialwatch's first, when history now
    precedes it) as historical changes for every watch that holds the study. Each record pruned
    once (beside the version before), each pair diffed once."""
    watches = queue.holding_watches(session=session, nct_id=nct_id)
    redo = [i for i, slot in enumerate(ordered) if slot.new or (i > 0 and ordered[i - 1].new)]
    pruned: dict[int, dict[str, Any]] = {}
    for i in redo:
        slot, before = ordered[i], ordered[i - 1] if i > 0 else None
        ready = slot.ready
        if ready is not None and (ready.after == (before.registry_version if before else None)):
            found, study = ready.found, ready.study  # diffed as it downloaded, from the version before
        else:
            found, study = _diffed(slot, before, i, pruned, ignore), Study.from_record(slot.read(), sites=False)
        summary = study_summary(study, found, ignore)
        if ready is not None:
            worked.inserts.append(_version_values(nct_id, slot, ready, summary))
        else:
            worked.summaries[slot.id] = summary
        if before is not None and (slot.new or slot.id == first_own):
            worked.rows += _historical(nct_id, study.title, before, slot, found, watches)
    worked.changes = len(worked.rows) // max(1, len(watches))


def _diffed(
    slot: _Slot, before: _Slot | None, i: int, pruned: dict[int, dict[str, Any]], ignore: Sequence[str]
) -> list[FieldChange]:
    """The changes into `slot` (the `i`th version) from the version before, pruning what it must."""
    if before is None:
        return []
    if i - 1 not in pruned:
        pruned[i - 1] = before.ready.pruned if before.ready else prune(before.read(), ignore)
    pruned[i] = prune_beside(slot.read(), before.read(), pruned[i - 1], ignore)
    return diff_pruned(pruned[i - 1], pruned[i])


def _version_values(nct_id: str, slot: _Slot, ready: Prepared, summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "nct_id": nct_id, "fingerprint": ready.digest, "record": ready.packed,
        "last_update_posted": ready.study.last_update_posted, "seen_at": slot.seen_at, "summary": summary,
        "registry_version": slot.registry_version, "registry_date": slot.registry_date, "from_history": True,
    }  # fmt: skip


def _historical(
    nct_id: str, title: str, before: _Slot, slot: _Slot, found: Sequence[FieldChange], watches: Sequence[str]
) -> list[dict[str, Any]]:
    """ChangeRow columns of the changes into `slot`, dated the day it was submitted, each citing
    its registry version pair when both numbers are known."""
    pair = (before.registry_version, slot.registry_version)
    when = day_start(slot.registry_date) if slot.registry_date else slot.seen_at
    rows = []
    for change in found:
        details = {**change.details, "registry_versions": list(pair)} if None not in pair else change.details
        rows += [
            {"watch": watch, "kind": str(change.kind), "source": str(Source.CLINICALTRIALS), "nct_id": nct_id,
             "title": title, "summary": change.summary, "details": details, "detected_at": when,
             "suppressed_by": None}
            for watch in watches
        ]  # fmt: skip
    return rows


BATCH = 20  # studies written in one transaction (a commit each is a tenth of the backfill's time)


def run_backfill(
    *, engine: Engine, api: VersionHistoryClient, settings: ClinicalTrialsConfig, now: datetime, limit: int,
    should_stop: Callable[[], bool] = lambda: False, nct_ids: Sequence[str] | None = None,
) -> BackfillReport:  # fmt: skip
    """Backfill up to `limit` due studies (or these), one after another; stops (leaving the rest
    queued) as soon as `should_stop` says a poll is due. One study's failure never stops the others."""
    report, started, requests_before = BackfillReport(), time.monotonic(), api.http.requests_made
    if nct_ids is None:
        with transaction(engine) as session:
            nct_ids = queue.due_studies(session=session, now=now, limit=limit)
    batch = Batch(engine, BATCH)
    try:
        _backfill_each(engine, batch, api, settings, now, nct_ids, should_stop, report)
        batch.commit()
    except BaseException as exc:
        batch.abort(exc)
        raise
    report.requests = api.http.requests_made - requests_before
    report.seconds = time.monotonic() - started
    if nct_ids:
        log.info("%s", report.line())
    return report


def _backfill_each(
    engine: Engine, batch: Batch, api: VersionHistoryClient, settings: ClinicalTrialsConfig, now: datetime,
    nct_ids: Sequence[str], should_stop: Callable[[], bool], report: BackfillReport,
) -> None:  # fmt: skip
    for nct_id in nct_ids:
        if should_stop():
            report.yielded = True
            break
        try:
            versions, changes = backfill_study(
                engine=engine, session=batch.session(), api=api, nct_id=nct_id, settings=settings, now=now,
                should_stop=should_stop,
            )  # fmt: skip
        except Yielded:
            report.yielded = True
            break
        except SourceError as exc:
            report.failed += 1
            report.errors.append(f"{nct_id}: {exc.one_line()}")
            retry = queue.mark_failed(session=batch.session(), nct_id=nct_id, now=now, error=exc.one_line())
            log.warning(
                "registry history of %s: %s (tried again after %s)", nct_id, exc.one_line(), f"{retry:%Y-%m-%d %H:%M}"
            )
        else:
            report.studies, report.versions, report.changes = (
                report.studies + 1, report.versions + versions, report.changes + changes,
            )  # fmt: skip
        batch.finished_one()
