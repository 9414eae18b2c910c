"""Every change a poll finds cites the registry version pair it spans (`registry_versions: [A, B]`),
so a reader can check it against the registry's own comparison (model.compare_link).

After the polls, before anything is mailed: for each study with a change detected by this poll, one
version-list request. Its version now is the listed version submitted the day its record says (the
newest listed, as a rule); the version before, trialwatch's previous stored version, is the one
marked already, or the listed version submitted the day that record says. Both are marked on the
stored versions (a version trialwatch saw itself and the same registry version are one version).
A failure costs only the citation: the changes stay as they are, and are mailed all the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from watcher.errors import SourceError
from watcher.registry.backfill import registry_number_of
from watcher.registry.version_history import RegistryVersion, VersionHistoryClient
from watcher.store import backfill as queue
from watcher.store import timeline
from watcher.store.db import transaction
from watcher.store.models import ChangeRow, StudyRow, StudyVersion
from watcher.store.packing import unpack_record

log = logging.getLogger(__name__)

UNCITED = ("new_study", "no_longer_matching")  # no version pair: the study joined or left a watch


@dataclass
class CiteReport:
    cited: int = 0  # studies whose changes now cite a pair
    failed: list[str] = field(default_factory=list)
    requests: int = 0


def changed_studies(*, session: Session, detected_at: datetime) -> list[str]:
    """The studies with a registry change detected at this time (one poll cycle's `now`)."""
    query = (
        select(ChangeRow.nct_id)
        .where(
            col(ChangeRow.detected_at) == detected_at,
            col(ChangeRow.historical).is_(False),
            col(ChangeRow.source) == "clinicaltrials",
            col(ChangeRow.kind).notin_(UNCITED),
        )
        .distinct()
        .order_by(col(ChangeRow.nct_id))
    )
    return list(session.exec(query))


def cite_poll_changes(
    *, engine: Engine, api: VersionHistoryClient, now: datetime, should_stop: Callable[[], bool] = lambda: False
) -> CiteReport:
    """Cite the version pair on every change the polls at `now` found (one request a study)."""
    report, before = CiteReport(), api.http.requests_made
    with Session(engine) as session:
        changed = changed_studies(session=session, detected_at=now)
    for nct_id in changed:
        if should_stop():
            break
        try:
            listed = api.version_list(nct_id)
            with transaction(engine) as session:
                report.cited += 1 if cite_study(session=session, nct_id=nct_id, listed=listed, now=now) else 0
        except SourceError as exc:
            report.failed.append(f"{nct_id}: {exc.one_line()}")
            log.warning("cannot cite the registry versions of %s's changes: %s", nct_id, exc.one_line())
    report.requests = api.http.requests_made - before
    return report


def cite_study(*, session: Session, nct_id: str, listed: list[RegistryVersion], now: datetime) -> bool:
    """Mark the study's current and previous versions with their registry numbers; cite the pair
    on the changes detected at `now`. False when the pair is not known."""
    row = session.get(StudyRow, nct_id)
    metas = timeline.version_list(session=session, nct_id=nct_id)
    at = next((i for i, meta in enumerate(metas) if row is not None and meta.id == row.version_id), None)
    if at is None or at == 0:
        return False
    taken = {meta.registry_version for meta in metas if meta.registry_version is not None}
    numbers = []
    for meta in (metas[at], metas[at - 1]):
        if meta.registry_version is not None:
            numbers.append(meta.registry_version)
            continue
        version = session.get(StudyVersion, meta.id)
        entry = registry_number_of(unpack_record(version.record), listed, taken) if version else None
        if entry is None:
            return False
        queue.mark_registry_version(session=session, version_id=meta.id, number=entry.number, day=entry.date)
        taken.add(entry.number)
        numbers.append(entry.number)
    newer, older = numbers
    if older >= newer:
        return False
    return queue.cite_changes(session=session, nct_id=nct_id, detected_at=now, pair=(older, newer)) > 0
