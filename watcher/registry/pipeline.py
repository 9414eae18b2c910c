"""One poll of one watch: plan -> fetch -> diff against stored state -> persist, one transaction.

Plan: a watch's first poll (or the first after its words changed) is a full *baseline* that
alerts on nothing; a full *reconciliation* runs every `full_every` (or on `poll --full`) and is the
only poll that can tell a study left the watch (`no_longer_matching`); otherwise the poll is
*incremental*: only studies whose LastUpdatePostDate falls in a window that starts `overlap_days`
before the last successful poll. When the registry's dataTimestamp has not moved since the
watch's last successful poll, nothing can have changed and the watch is not polled at all.

Each page is sorted as it arrives (registry/batch.py: a content digest per study and one lookup
for the whole page), then spooled to a temporary file: a study that did not change leaves only
its id, so memory stays bounded by one page. The spool is applied only when every page has
arrived, in a single transaction, new studies in bulk: a failed poll changes no stored study,
version or change; only the watch's `last_error` is recorded.

A study whose digest differs from the stored one is diffed against its stored version; when
nothing tracked differs (a reordered list, an escape, or a fingerprint stored by an older
trialwatch), the stored fingerprint is refreshed silently: no version, no change. These studies'
rows, links and stored versions are read, and their new versions, changes and alerts written, a
page at a time (store/page_writes.py), in the order a study at a time would have written them.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from watcher.cleantext import without_surrogates
from watcher.config import ClinicalTrialsConfig, WatchConfig
from watcher.errors import SourceError, StoreError
from watcher.http import Stopping
from watcher.matching import why_study_matches
from watcher.model import ChangeKind, FieldChange, Study
from watcher.registry.batch import PageSorter, Prepared, prefetched, spool_page, unspool
from watcher.registry.client import CtgovClient, Page, query_signature
from watcher.registry.diff import diff_pruned, diff_records
from watcher.registry.milestone_pass import note_milestones
from watcher.registry.normalize import content_digest, fingerprint, prune, prune_beside
from watcher.registry.studies import study_summary
from watcher.rules import has_join_rules, join_rule, judge, judge_all
from watcher.store import repo, studies
from watcher.store.db import DatabaseFull, transaction
from watcher.store.models import WatchState
from watcher.store.page_writes import Link, PageWriter, PendingVersion

log = logging.getLogger(__name__)


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
    held_back: int = 0  # changes stored but not mailed: a watch rule held them back
    # studies by what they needed (registry/batch.py): quiet, new, link (stored by another watch), full
    sorted: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def tally(self, changes: Sequence[FieldChange]) -> None:
        for change in changes:
            self.changes += 1
            self.kinds[str(change.kind)] = self.kinds.get(str(change.kind), 0) + 1
            self.held_back += 0 if change.alerted else 1

    @property
    def baseline(self) -> bool:
        return self.mode == "baseline"

    def line(self) -> str:
        timing = f"{self.requests} request{'s' if self.requests != 1 else ''}, {self.seconds:.2f}s"
        if self.error:
            return f"{self.watch}: FAILED: {self.error} ({timing})"
        if self.mode == "unchanged" and not self.changes:
            return f"{self.watch}: registry data unchanged since the last poll, nothing to do ({timing})"
        if self.baseline:
            return (
                f"{self.watch}: baseline: {self.studies} studies stored, no alerts "
                f"(changes are reported from the next poll) ({timing})"
            )
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.kinds.items()))
        found = f"{self.changes} change{'s' if self.changes != 1 else ''}"
        kinds = f" ({kinds})" if kinds else ""
        kinds += f", {self.held_back} held back by the watch's rules" if self.held_back else ""
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
            requests = client.requests_made - requests_before
            noted = _record_success(
                engine=engine, watch=watch, now=now, data_timestamp=data_timestamp, requests=requests
            )
            report.tally(noted)
        else:
            sorter = PageSorter(engine, watch, plan.mode == "baseline", ignore, new_study_change)
            with tempfile.TemporaryFile() as spool:
                for page in prefetched(client.watch_pages(watch, since=plan.since, scoped=plan.mode == "baseline")):
                    spool_page(sorter.sort(page.studies), spool)
                    log.debug("%s: page of %d studies (total %s)", watch.name, len(page.studies), page.total)
                    if on_page:
                        on_page(page)
                spool.seek(0)
                if stopping is not None and stopping.is_set():  # asked to stop: store nothing half-way
                    raise Stopping
                with transaction(engine) as session:
                    apply = Apply(session=session, watch=watch, plan=plan, now=now, ignore=ignore, report=report)
                    apply.run(unspool(spool), data_timestamp, requests=client.requests_made - requests_before)
            report.sorted = dict(sorter.counts)
    except (SourceError, DatabaseFull) as exc:  # a full database: nothing of the poll stored, it fails
        report.error = exc.one_line()
        requests = client.requests_made - requests_before
        _record_failure_if_room(engine=engine, watch=watch.name, error=report.error, now=now, requests=requests)
    except (SQLAlchemyError, StoreError):
        raise  # the database, not this watch: the cycle (or the daemon's leader loop) decides
    except Exception as exc:  # noqa: BLE001 (anything else is this watch's failed poll, not the cycle's)
        log.exception("poll %s: unexpected error", watch.name)
        report.error = unexpected_error(exc)
        requests = client.requests_made - requests_before
        _record_failure_if_room(engine=engine, watch=watch.name, error=report.error, now=now, requests=requests)
    report.requests = client.requests_made - requests_before
    report.seconds = time.monotonic() - started
    log.log(logging.INFO if report.ok else logging.ERROR, "poll %s", report.line())
    return report


@dataclass
class Apply:
    """Applies one poll's records to the database inside the caller's transaction."""

    session: Session
    watch: WatchConfig
    plan: Plan
    now: datetime
    ignore: Sequence[str]
    report: PollReport
    leaving: dict[str, str] = field(default_factory=dict)  # held studies now out of the join rules -> rule
    touched: set[str] = field(default_factory=set)  # studies a change was stored for (their milestones are looked at)
    page: PageWriter = field(init=False)  # the per-study path's reads and writes, a page at a time

    def __post_init__(self) -> None:
        self.page = PageWriter(self.session, self.watch.name, self.watch.audience, self.now)

    def run(self, pages: Iterator[list[Prepared]], data_timestamp: str | None, requests: int = 0) -> None:
        """Apply the pages; `requests`: the poll's, charged to the watch (the sources page's counter)."""
        seen: set[str] = set()
        with self.session.no_autoflush:  # flushed explicitly where ids are needed, not on every lookup
            for page in pages:  # memory bounded by a page, not by the watch's size
                self._check(page)
                self._bulk(page)
                self.page.load({item.nct_id: item.digest for item in page if item.record is not None})
                for item in page:
                    seen.add(item.nct_id)
                    if item.record is not None:
                        study = Study.from_record(item.record)
                        self._emit(study, self._study_changes(item.record, study, item.digest))
                    elif item.change is not None and item.study is not None:
                        self._emit(item.study, judge_all(self.watch, [item.change], new=item.study))
                self.page.write()
                self.page.clear()
                self.session.flush()  # nothing is left pending by the per-study path; so it stays
                self.session.expunge_all()
        if self.plan.mode in ("baseline", "full"):
            self._reconcile(seen)
            self.page.write()
        self.report.studies = len(seen)
        baseline = self.plan.mode == "baseline"  # milestones: results overdue, an estimated date passed
        self.report.tally(note_milestones(session=self.session, watch=self.watch, now=self.now, baseline=baseline,
                                          touched=self.touched))  # fmt: skip
        state = repo.get_watch_state(session=self.session, name=self.watch.name)
        if self.plan.mode == "baseline":
            state.baseline_at, state.query_signature = self.now, query_signature(self.watch)
        if self.plan.mode in ("baseline", "full"):
            state.last_full_at = self.now
        state.last_poll_at = state.last_success_at = self.now
        state.data_timestamp, state.last_error, state.failing_since = data_timestamp, None, None
        state.request_count += requests
        self.session.add(state)

    def _emit(self, study: Study, changes: list[FieldChange]) -> None:
        if self.plan.mode == "baseline":
            return
        for change in changes:
            self.page.add_change(study, change)
        self.report.tally(changes)
        if changes:
            self.touched.add(study.nct_id)

    def _check(self, page: list[Prepared]) -> None:
        """What the page lookup saw still holds (no other process wrote these studies since)."""
        ids = [item.nct_id for item in page if item.record is None]
        stored = studies.stored_digests(session=self.session, nct_ids=ids)
        links = studies.link_versions(session=self.session, watch=self.watch.name, nct_ids=ids)
        for item in page:
            if item.record is None and item.expected() != (stored.get(item.nct_id), links.get(item.nct_id)):
                raise SourceError(f"study {item.nct_id} was stored by another process during this poll; poll again")

    def _bulk(self, page: list[Prepared]) -> None:
        """New studies and new links of a page, in one insert each."""
        rows = [item.row for item in page if item.row is not None]
        versions = studies.add_new_studies(session=self.session, studies=rows, now=self.now)
        versions.update({item.nct_id: item.version_id for item in page if item.kind == "link" and item.version_id})
        studies.add_watch_links(session=self.session, watch=self.watch.name, versions=versions, now=self.now)

    def _study_changes(self, record: dict[str, Any], study: Study, digest: str | None = None) -> list[FieldChange]:
        """Store the study; return what changed for this watch since it last saw the study."""
        digest = digest or content_digest(record, self.ignore)
        link = self.page.links.get(study.nct_id) or self._adopt_alias(study)
        version, diffed = self._store(record, study, digest, link.version_id if link else None)
        rule = join_rule(self.watch, study) if has_join_rules(self.watch) else None
        if link is None:
            if rule is not None:  # outside the watch's statuses, phases or geography: does not join
                return []
            self.page.join(study.nct_id, version)
            return judge_all(self.watch, [new_study_change(record, study, self.watch)], new=study)
        if rule is not None:  # held, but now out of the join rules: the next reconciliation lets it go
            self.leaving[study.nct_id] = rule
        if link.version_id == version:
            return []
        previous_version = link.version_id
        self.page.point(link, version)
        previous = None
        if diffed is None or self.watch.has_geography:  # the geography rule reads the old sites
            previous = self.page.record(previous_version)
        changes = diffed if diffed is not None else diff_records(previous or {}, record, self.ignore)
        if diffed is not None:  # from the study's own previous version: the study page's cache
            assert isinstance(version, PendingVersion)  # a diff found: a new version
            version.values["summary"] = study_summary(study, diffed, self.ignore, record)
        return judge_all(self.watch, changes, new=study, old_record=previous)

    def _store(
        self, record: dict[str, Any], study: Study, digest: str, link_version: int | None
    ) -> tuple[int | PendingVersion, list[FieldChange] | None]:
        """The study's current version (id), or the new one to insert when a tracked field changed;
        and the diff from the version the watch holds, when working that out needed it."""
        row = self.page.rows.get(study.nct_id)
        current = row.version_id if row is not None else None
        if row is None or current is None or row.fingerprint == digest:
            return self.page.save(record, study, digest), None
        stored_record = self.page.record(current)
        stored = prune(stored_record, self.ignore)
        pruned = prune_beside(record, stored_record, stored, self.ignore)  # the unchanged bulk pruned once
        changes = diff_pruned(stored, pruned)
        diffed = changes if link_version == current else None
        # a change found means the fingerprints differ; none found: the canonical forms decide
        if not changes and fingerprint(stored) == fingerprint(pruned):
            self.page.refresh(row, digest)  # e.g. stored by an older trialwatch: refreshed, no version
            return current, diffed
        return self.page.save(record, study, digest), diffed

    def _adopt_alias(self, study: Study) -> Link | None:
        """A study stored under an old id (now in nctIdAliases) continues under its current id."""
        for alias in study.aliases:
            link = self.page.adopt(alias, study.nct_id)
            if link is not None:
                return link
        return None

    def _reconcile(self, seen: set[str]) -> None:
        """After a full poll: studies the watch had but the registry no longer returns have left it."""
        if not self.leaving and not repo.watch_study_ids(session=self.session, watch=self.watch.name) - seen:
            return  # the usual case: one query of ids, no link loaded
        for link, title in repo.watch_links(session=self.session, watch=self.watch.name):
            rule = self.leaving.get(link.nct_id)  # seen, but out of the join rules: let go, never mailed
            if link.nct_id in seen and rule is None:
                continue
            self.session.delete(link)
            if self.plan.mode == "baseline":
                continue
            study = Study.from_record(repo.load_version(session=self.session, version_id=link.version_id))
            summary = f"No longer matches this watch{f' ({rule})' if rule else ''}: {title}."
            change = FieldChange(ChangeKind.NO_LONGER_MATCHING, summary, {"nct_id": link.nct_id})
            self._emit(study, [replace(change, suppressed_by=rule) if rule else judge(self.watch, change)])


def new_study_change(record: dict[str, Any], study: Study, watch: WatchConfig) -> FieldChange:
    """`new_study`, saying why it matched: the registry searched, our matcher explains where the
    watch's words occur (an id-only match says so)."""
    why = why_study_matches(record, study.nct_id, watch)
    summary = f"New study matches this watch: {study.title} ({study.status_label}, {study.phase_label})"
    summary += f"; matched {why}." if why else "."
    details = {"status": study.status, "phases": list(study.phases), "why": why or None}
    return FieldChange(ChangeKind.NEW_STUDY, summary, details)


def _record_success(
    *, engine: Engine, watch: WatchConfig, now: datetime, data_timestamp: str | None, requests: int
) -> list[FieldChange]:
    """An unchanged registry: the poll ended at /version (`requests`, charged to the watch); the
    milestones of a new day are looked at all the same."""
    with transaction(engine) as session:
        noted = note_milestones(session=session, watch=watch, now=now)
        state = repo.get_watch_state(session=session, name=watch.name)
        # not last_success_at: it anchors the next incremental window on the last poll that fetched
        state.last_poll_at = now
        state.data_timestamp, state.last_error = data_timestamp or state.data_timestamp, None
        state.failing_since = None
        state.request_count += requests
        state.unchanged_count += 1
        session.add(state)
    return noted


def unexpected_error(exc: Exception) -> str:
    """One line for a watch's poll that failed on something unforeseen (the log has the traceback)."""
    text = " ".join(without_surrogates(str(exc)).split())[:300]
    return f"unexpected error ({type(exc).__name__}){f': {text}' if text else ''}; see the log"


def _record_failure_if_room(*, engine: Engine, watch: str, error: str, now: datetime, requests: int) -> None:
    """record_failure, unless the database is too full even for that (the failure is logged)."""
    try:
        record_failure(engine=engine, watch=watch, error=error, now=now, requests=requests)
    except DatabaseFull as exc:
        log.warning("poll %s: its failure not recorded either: %s", watch, exc)


def record_failure(*, engine: Engine, watch: str, error: str, now: datetime, requests: int = 0) -> None:
    """A failed poll: its error, and its `requests` charged to the watch (the sources page)."""
    with transaction(engine) as session:
        state = repo.get_watch_state(session=session, name=watch)
        state.last_poll_at, state.last_error = now, error
        state.failing_since = state.failing_since or now
        state.request_count += requests
        session.add(state)
