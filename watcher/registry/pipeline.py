"""One poll of one watch: plan -> fetch -> diff against stored state -> persist, one transaction.

Plan: a watch's first poll (or the first after its words changed) is a full *baseline* that
alerts on nothing; a full *reconciliation* runs every `full_every` (or on `poll --full`) and is the
only poll that can tell a study left the watch (`no_longer_matching`); otherwise the poll is
*incremental*: only studies whose LastUpdatePostDate falls in a window that starts `overlap_days`
before the last successful poll. When the registry's dataTimestamp has not moved since the
watch's last successful poll, nothing can have changed and the watch is not polled at all.

Pages are spooled to a temporary file as they arrive (memory stays bounded by one page) and
applied only when every page has arrived, in a single transaction: a failed poll changes no
stored study, version or change; only the watch's `last_error` is recorded.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import IO, Any

from sqlalchemy import Engine
from sqlmodel import Session

from watcher.config import ClinicalTrialsConfig, WatchConfig
from watcher.errors import SourceError
from watcher.http import Stopping
from watcher.matching import why_study_matches
from watcher.model import ChangeKind, FieldChange, Study
from watcher.registry.client import CtgovClient, Page, query_signature
from watcher.registry.diff import diff_records, record_fingerprint
from watcher.registry.studies import summarize, summary_of
from watcher.store import repo, timeline
from watcher.store.db import transaction
from watcher.store.models import WatchState, WatchStudy

log = logging.getLogger(__name__)

FLUSH_EVERY = 500  # studies written and dropped from the session's memory at a time


@dataclass(frozen=True)
class Plan:
    mode: str  # baseline | full | incremental | unchanged
    since: date | None = None


@dataclass
class PollReport:
    watch: str
    mode: str = "full"
    studies: int = 0
    changes: int = 0
    requests: int = 0
    seconds: float = 0.0
    error: str | None = None
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def baseline(self) -> bool:
        return self.mode == "baseline"

    def line(self) -> str:
        timing = f"{self.requests} request{'s' if self.requests != 1 else ''}, {self.seconds:.1f}s"
        if self.error:
            return f"{self.watch}: FAILED: {self.error} ({timing})"
        if self.mode == "unchanged":
            return f"{self.watch}: registry data unchanged since the last poll, nothing to do ({timing})"
        if self.baseline:
            return (
                f"{self.watch}: baseline: {self.studies} studies stored, no alerts "
                f"(changes are reported from the next poll) ({timing})"
            )
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.kinds.items()))
        found = f"{self.changes} change{'s' if self.changes != 1 else ''}"
        kinds = f" ({kinds})" if kinds else ""
        return f"{self.watch}: {self.mode}: {self.studies} studies seen, {found}{kinds} ({timing})"


def plan_poll(
    *,
    state: WatchState | None,
    watch: WatchConfig,
    settings: ClinicalTrialsConfig,
    data_timestamp: str | None,
    now: datetime,
    force_full: bool = False,
) -> Plan:
    """Decide what kind of poll a watch needs now."""
    if state is None or state.baseline_at is None or state.query_signature != query_signature(watch):
        return Plan("baseline")
    if force_full or state.last_full_at is None or now - state.last_full_at >= settings.full_every:
        return Plan("full")
    if data_timestamp is not None and state.data_timestamp == data_timestamp:
        return Plan("unchanged")
    last = state.last_success_at or state.baseline_at
    return Plan("incremental", since=(last - timedelta(days=settings.overlap_days)).date())


def poll_watch(
    *,
    engine: Engine,
    client: CtgovClient,
    watch: WatchConfig,
    plan: Plan,
    now: datetime,
    data_timestamp: str | None = None,
    ignore: Sequence[str] = (),
    on_page: Callable[[Page], None] | None = None,
    stopping: threading.Event | None = None,
    counted_from: tuple[float, int] | None = None,
) -> PollReport:
    """Carry out one plan for one watch; never raises SourceError (the report carries it)."""
    report = PollReport(watch=watch.name, mode=plan.mode)
    # `counted_from`: the time and request count to charge this watch from (the shared /version)
    started, requests_before = counted_from or (time.monotonic(), client.requests_made)
    try:
        if plan.mode == "unchanged":
            _record_success(engine=engine, watch=watch.name, now=now, data_timestamp=data_timestamp)
        else:
            with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as spool:
                for page in client.watch_pages(watch, since=plan.since):
                    spool.write(json.dumps(page.studies, separators=(",", ":")) + "\n")
                    log.debug("%s: page of %d studies (total %s)", watch.name, len(page.studies), page.total)
                    if on_page:
                        on_page(page)
                spool.seek(0)
                if stopping is not None and stopping.is_set():  # asked to stop: store nothing half-way
                    raise Stopping
                with transaction(engine) as session:
                    apply = Apply(session=session, watch=watch, plan=plan, now=now, ignore=ignore, report=report)
                    apply.run(_spooled(spool), data_timestamp)
    except SourceError as exc:
        report.error = exc.one_line()
        record_failure(engine=engine, watch=watch.name, error=report.error, now=now)
    report.requests = client.requests_made - requests_before
    _count_requests(engine=engine, watch=watch.name, requests=report.requests, unchanged=plan.mode == "unchanged")
    report.seconds = time.monotonic() - started
    log.log(logging.INFO if report.ok else logging.ERROR, "poll %s", report.line())
    return report


def _spooled(spool: IO[str]) -> Iterator[dict[str, Any]]:
    for line in spool:
        yield from json.loads(line)


@dataclass
class Apply:
    """Applies one poll's records to the database inside the caller's transaction."""

    session: Session
    watch: WatchConfig
    plan: Plan
    now: datetime
    ignore: Sequence[str]
    report: PollReport

    def run(self, records: Iterator[dict[str, Any]], data_timestamp: str | None) -> None:
        seen: set[str] = set()
        with self.session.no_autoflush:  # flushed explicitly where ids are needed, not on every lookup
            for record in records:
                study = Study.from_record(record)
                if study.nct_id in seen:
                    continue
                seen.add(study.nct_id)
                self._emit(study, self._study_changes(record, study))
                if len(seen) % FLUSH_EVERY == 0:  # memory bounded by a batch, not by the watch's size
                    self.session.flush()
                    self.session.expunge_all()
        if self.plan.mode in ("baseline", "full"):
            self._reconcile(seen)
        self.report.studies = len(seen)
        state = repo.get_watch_state(session=self.session, name=self.watch.name)
        if self.plan.mode == "baseline":
            state.baseline_at, state.query_signature = self.now, query_signature(self.watch)
        if self.plan.mode in ("baseline", "full"):
            state.last_full_at = self.now
        state.last_poll_at = state.last_success_at = self.now
        state.data_timestamp, state.last_error, state.failing_since = data_timestamp, None, None
        self.session.add(state)

    def _emit(self, study: Study, changes: list[FieldChange]) -> None:
        if self.plan.mode == "baseline":
            return
        for change in changes:
            repo.record_change(
                session=self.session,
                watch=self.watch.name,
                study=study,
                change=change,
                recipients=self.watch.recipients,
                now=self.now,
            )
            self.report.changes += 1
            self.report.kinds[str(change.kind)] = self.report.kinds.get(str(change.kind), 0) + 1

    def _study_changes(self, record: dict[str, Any], study: Study) -> list[FieldChange]:
        """Store the study; return what changed for this watch since it last saw the study."""
        known = timeline.current_version_id(session=self.session, nct_id=study.nct_id)
        version_id = repo.save_study_version(
            session=self.session,
            record=record,
            study=study,
            fingerprint=record_fingerprint(record, self.ignore),
            now=self.now,
            summary=summarize(None, record, self.ignore) if known is None else None,  # the study page's cache
        )
        link = repo.get_watch_study(session=self.session, watch=self.watch.name, nct_id=study.nct_id)
        link = link or self._adopt_alias(study)
        if link is None:
            self.session.add(
                WatchStudy(watch=self.watch.name, nct_id=study.nct_id, version_id=version_id, matched_at=self.now)
            )
            return [new_study_change(record, study, self.watch)]
        if link.version_id == version_id:
            return []
        previous = repo.load_version(session=self.session, version_id=link.version_id)
        from_version, link.version_id = link.version_id, version_id
        self.session.add(link)
        changes = diff_records(previous, record, self.ignore)
        if version_id != known and from_version == known:  # the study's own previous version: cache the diff
            summary = summary_of(record, changes, self.ignore)
            timeline.save_version_summaries(session=self.session, summaries={version_id: summary})
        return changes

    def _adopt_alias(self, study: Study) -> WatchStudy | None:
        """A study stored under an old id (now in nctIdAliases) continues under its current id."""
        for alias in study.aliases:
            old = repo.get_watch_study(session=self.session, watch=self.watch.name, nct_id=alias)
            if old is not None:
                link = WatchStudy(
                    watch=self.watch.name, nct_id=study.nct_id, version_id=old.version_id, matched_at=old.matched_at
                )
                self.session.delete(old)
                self.session.add(link)
                return link
        return None

    def _reconcile(self, seen: set[str]) -> None:
        """After a full poll: studies the watch had but the registry no longer returns have left it."""
        for link, title in repo.watch_links(session=self.session, watch=self.watch.name):
            if link.nct_id in seen:
                continue
            self.session.delete(link)
            if self.plan.mode == "baseline":
                continue
            study = Study.from_record(repo.load_version(session=self.session, version_id=link.version_id))
            summary = f"No longer matches this watch: {title}."
            self._emit(study, [FieldChange(ChangeKind.NO_LONGER_MATCHING, summary, {"nct_id": link.nct_id})])


def new_study_change(record: dict[str, Any], study: Study, watch: WatchConfig) -> FieldChange:
    """`new_study`, saying why it matched: the registry searched, our matcher explains where the
    watch's words occur (an id-only match says so)."""
    why = why_study_matches(record, study.nct_id, watch)
    summary = f"New study matches this watch: {study.title} ({study.status_label}, {study.phase_label})"
    summary += f"; matched {why}." if why else "."
    details = {"status": study.status, "phases": list(study.phases), "why": why or None}
    return FieldChange(ChangeKind.NEW_STUDY, summary, details)


def _record_success(*, engine: Engine, watch: str, now: datetime, data_timestamp: str | None) -> None:
    with transaction(engine) as session:
        state = repo.get_watch_state(session=session, name=watch)
        # not last_success_at: it anchors the next incremental window on the last poll that fetched
        state.last_poll_at = now
        state.data_timestamp, state.last_error = data_timestamp or state.data_timestamp, None
        state.failing_since = None
        session.add(state)


def _count_requests(*, engine: Engine, watch: str, requests: int, unchanged: bool) -> None:
    """The sources page's counters: requests charged to the watch, polls ended at /version."""
    with transaction(engine) as session:
        state = repo.get_watch_state(session=session, name=watch)
        state.request_count += requests
        state.unchanged_count += int(unchanged)
        session.add(state)


def record_failure(*, engine: Engine, watch: str, error: str, now: datetime) -> None:
    with transaction(engine) as session:
        state = repo.get_watch_state(session=session, name=watch)
        state.last_poll_at, state.last_error = now, error
        state.failing_since = state.failing_since or now
        session.add(state)
