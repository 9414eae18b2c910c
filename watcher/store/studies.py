"""Registry studies a page at a time: what is stored for a page of ids (one query per 500), and
bulk inserts of new studies, their first versions and watch links. Keyword-only functions that
take the session; no commits here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, insert, update
from sqlmodel import Session, col, select

from watcher.model import Study
from watcher.store.models import StudyRow, StudyVersion, WatchStudy

IN_CHUNK = 500  # ids per IN (...) list

# The bulk inserts go through the tables (SQLAlchemy Core), not the ORM's bulk path: a quarter
# less CPU for the same statements (3,000 new studies: 0.17 -> 0.13 s on SQLite).
STUDY: Table = StudyRow.__table__  # type: ignore[attr-defined]
VERSION: Table = StudyVersion.__table__  # type: ignore[attr-defined]
LINK: Table = WatchStudy.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class NewStudy:
    """A study stored for the first time, with its first version (bulk, see add_new_studies)."""

    nct_id: str
    title: str
    status: str
    phase: str
    last_update_posted: str | None
    fingerprint: str
    record: bytes  # pack_record
    summary: dict[str, Any] | None = None  # the study page's cache of its first version

    @classmethod
    def of(cls, study: Study, fingerprint: str, record: bytes, summary: dict[str, Any] | None = None) -> NewStudy:
        return cls(
            study.nct_id, study.title, study.status, study.phase_label, study.last_update_posted, fingerprint, record,
            summary,
        )  # fmt: skip


def stored_digests(*, session: Session, nct_ids: Sequence[str]) -> dict[str, tuple[str, int | None]]:
    """Of these studies, those stored: their fingerprint and current version (one query per 500)."""
    found: dict[str, tuple[str, int | None]] = {}
    for start in range(0, len(nct_ids), IN_CHUNK):
        query = select(StudyRow.nct_id, StudyRow.fingerprint, StudyRow.version_id).where(
            col(StudyRow.nct_id).in_(nct_ids[start : start + IN_CHUNK])
        )
        found.update((nct_id, (fingerprint, version_id)) for nct_id, fingerprint, version_id in session.exec(query))
    return found


def link_versions(*, session: Session, watch: str, nct_ids: Sequence[str]) -> dict[str, int]:
    """Of these studies, those the watch holds, with the version it last saw (one query per 500)."""
    found: dict[str, int] = {}
    for start in range(0, len(nct_ids), IN_CHUNK):
        query = select(WatchStudy.nct_id, WatchStudy.version_id).where(
            WatchStudy.watch == watch, col(WatchStudy.nct_id).in_(nct_ids[start : start + IN_CHUNK])
        )
        found.update(session.exec(query).all())
    return found


def add_new_studies(*, session: Session, studies: Sequence[NewStudy], now: datetime) -> dict[str, int]:
    """Store studies never seen before with their first version, in bulk. Returns the version ids."""
    if not studies:
        return {}
    session.execute(
        insert(STUDY),
        [
            {"nct_id": s.nct_id, "title": s.title, "status": s.status, "phase": s.phase, "fingerprint": s.fingerprint,
             "last_update_posted": s.last_update_posted, "first_seen_at": now, "changed_at": now, "version_id": None}
            for s in studies
        ],
    )  # fmt: skip
    rows = [
        {"nct_id": s.nct_id, "fingerprint": s.fingerprint, "record": s.record,
         "last_update_posted": s.last_update_posted, "seen_at": now, "summary": s.summary}
        for s in studies
    ]  # fmt: skip
    ids = session.scalars(insert(VERSION).returning(VERSION.c.id, sort_by_parameter_order=True), rows)
    versions = {s.nct_id: int(version_id or 0) for s, version_id in zip(studies, ids, strict=True)}
    current = update(STUDY).where(STUDY.c.nct_id == bindparam("study")).values(version_id=bindparam("version"))
    session.execute(current, [{"study": nct_id, "version": v} for nct_id, v in versions.items()])
    return versions


def add_watch_links(*, session: Session, watch: str, versions: dict[str, int], now: datetime) -> None:
    """Link these studies to the watch at these versions, in bulk."""
    if versions:
        rows = [{"watch": watch, "nct_id": n, "version_id": v, "matched_at": now} for n, v in versions.items()]
        session.execute(insert(LINK), rows)
