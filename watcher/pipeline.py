"""One poll of one watch: fetch -> diff against stored state -> persist changes, one transaction.

Pages are fetched first and spooled to a temporary file (memory stays bounded by one page);
only when every page has arrived are they applied to the database in a single transaction. A
poll that fails anywhere changes no stored study, version or change: only the watch's
`last_error` is recorded, so `check` and the digest footer can show it.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from sqlalchemy import Engine
from sqlmodel import Session

from watcher.config import WatchConfig
from watcher.diff import diff_studies, tracked_fingerprint
from watcher.errors import SourceError
from watcher.model import ChangeKind, FieldChange, Study
from watcher.sources.ctgov import CtgovClient, Page, query_signature
from watcher.store import repo
from watcher.store.db import transaction
from watcher.store.models import WatchStudy

log = logging.getLogger(__name__)


@dataclass
class PollReport:
    watch: str
    studies: int = 0
    changes: int = 0
    baseline: bool = False
    requests: int = 0
    seconds: float = 0.0
    error: str | None = None
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        timing = f"{self.requests} request{'s' if self.requests != 1 else ''}, {self.seconds:.1f}s"
        if self.error:
            return f"{self.watch}: FAILED: {self.error} ({timing})"
        if self.baseline:
            return (
                f"{self.watch}: baseline: {self.studies} studies stored, no alerts "
                f"(changes are reported from the next poll) ({timing})"
            )
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.kinds.items()))
        found = f"{self.changes} change{'s' if self.changes != 1 else ''}"
        return f"{self.watch}: {self.studies} studies seen, {found}{f' ({kinds})' if kinds else ''} ({timing})"


def poll_watch(
    *,
    engine: Engine,
    client: CtgovClient,
    watch: WatchConfig,
    now: datetime,
    on_page: Callable[[Page], None] | None = None,
) -> PollReport:
    """Poll one watch and store what changed; never raises SourceError (the report carries it)."""
    report = PollReport(watch=watch.name)
    started, requests_before = time.monotonic(), client.requests_made
    try:
        with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as spool:
            for page in client.watch_pages(watch):
                spool.write(json.dumps(page.studies, separators=(",", ":")) + "\n")
                if on_page:
                    on_page(page)
            spool.seek(0)
            with transaction(engine) as session:
                _apply(session=session, watch=watch, records=_spooled(spool), now=now, report=report)
    except SourceError as exc:
        report.error = exc.one_line()
        _record_failure(engine=engine, watch=watch.name, error=report.error, now=now)
    report.requests = client.requests_made - requests_before
    report.seconds = time.monotonic() - started
    log.log(logging.INFO if report.ok else logging.ERROR, "poll %s", report.line())
    return report


def _spooled(spool: IO[str]) -> Iterator[dict[str, Any]]:
    for line in spool:
        yield from json.loads(line)


def _apply(
    *,
    session: Session,
    watch: WatchConfig,
    records: Iterator[dict[str, Any]],
    now: datetime,
    report: PollReport,
) -> None:
    state = repo.get_watch_state(session=session, name=watch.name)
    signature = query_signature(watch)
    report.baseline = state.baseline_at is None or state.query_signature != signature
    seen: set[str] = set()
    for record in records:
        study = Study.from_record(record)
        if study.nct_id in seen:
            continue
        seen.add(study.nct_id)
        for change in _study_changes(session=session, watch=watch.name, record=record, study=study, now=now):
            if report.baseline:
                continue
            repo.record_change(
                session=session,
                watch=watch.name,
                study=study,
                change=change,
                recipients=watch.recipients,
                now=now,
            )
            report.changes += 1
            report.kinds[str(change.kind)] = report.kinds.get(str(change.kind), 0) + 1
    report.studies = len(seen)
    if report.baseline:
        state.baseline_at, state.query_signature = now, signature
    state.last_poll_at = state.last_success_at = now
    state.last_error = None
    session.add(state)


def _study_changes(
    *, session: Session, watch: str, record: dict[str, Any], study: Study, now: datetime
) -> list[FieldChange]:
    """Store the study and return what changed for this watch since it last saw the study."""
    version_id = repo.save_study_version(
        session=session, record=record, study=study, fingerprint=tracked_fingerprint(study), now=now
    )
    link = repo.get_watch_study(session=session, watch=watch, nct_id=study.nct_id)
    if link is None:
        session.add(WatchStudy(watch=watch, nct_id=study.nct_id, version_id=version_id, matched_at=now))
        summary = f"New study matches this watch: {study.title} ({study.status_label}, {study.phase_label})."
        details = {"status": study.status, "phases": list(study.phases)}
        return [FieldChange(ChangeKind.NEW_STUDY, summary, details)]
    if link.version_id == version_id:
        return []
    previous = repo.load_version(session=session, version_id=link.version_id)
    link.version_id = version_id
    session.add(link)
    return diff_studies(previous, study)


def _record_failure(*, engine: Engine, watch: str, error: str, now: datetime) -> None:
    with transaction(engine) as session:
        state = repo.get_watch_state(session=session, name=watch)
        state.last_poll_at, state.last_error = now, error
        session.add(state)
