"""Queries behind a watch's landscape (`/watches/<name>/studies`, its exports, its JSON twin and
`trialwatch studies`): the studies a watch holds (and those that left it), each with its newest
stored version's cached landscape facts, its last change in the watch and how many stored
articles name it. Keyword-only functions taking the session; no commits here.

The facts are cached in `study_version.summary["landscape"]` beside the study page's cache
(registry.studies): a version never changes, so its facts never go stale. Only the facts are read
(a JSON path, not the whole summary with its changes), never the compressed records, except for
versions whose facts are not cached yet (`version_records`, a batch at a time).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, func, update
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from watcher.jsontext import parse_json
from watcher.model import ChangeKind
from watcher.store.models import ChangeRow, FeedItemRow, StudyRow, StudyVersion, WatchStudy
from watcher.store.watch_keys import of_named

IN_CHUNK = 500  # ids per IN (...): PostgreSQL and SQLite both take far more; keeps statements small


@dataclass(slots=True)
class HeldStudy:
    """One study of a watch's landscape as stored: its row, its newest version and that version's
    cached facts (None: not cached yet), and when it left the watch (None: held now)."""

    nct_id: str
    title: str
    status: str
    phase: str
    version_id: int | None
    facts: dict[str, Any] | None
    left_at: datetime | None = None


@dataclass(frozen=True)
class LastChange:
    id: int
    kind: str
    detected_at: datetime


def _study_rows(session: Session, condition: Any, left: dict[str, datetime] | None = None) -> list[HeldStudy]:
    landscape = col(StudyVersion.summary)["landscape"].as_string()  # JSON text: parsed by orjson, 10x the json module
    query = (
        sql_select(
            col(StudyRow.nct_id),
            col(StudyRow.title),
            col(StudyRow.status),
            col(StudyRow.phase),
            col(StudyRow.version_id),
            landscape,
        )  # fmt: skip
        .join(StudyVersion, col(StudyVersion.id) == col(StudyRow.version_id), isouter=True)
        .where(condition)
    )
    return [
        HeldStudy(
            nct_id=nct_id,
            title=title,
            status=status,
            phase=phase,
            version_id=version_id,
            facts=parse_json(facts) if facts else None,
            left_at=(left or {}).get(nct_id),
        )  # fmt: skip
        for nct_id, title, status, phase, version_id, facts in session.connection().execute(query)
    ]


def held_studies(*, session: Session, watch: str, include_left: bool = False) -> list[HeldStudy]:
    """The studies `watch` holds now, and with `include_left` those it held and let go (a
    `no_longer_matching` change, not held again since), in no particular order."""
    held_ids = select(WatchStudy.nct_id).where(WatchStudy.watch == watch)
    found = _study_rows(session, col(StudyRow.nct_id).in_(held_ids))
    if not include_left:
        return found
    held = {study.nct_id for study in found}
    left_query = (
        select(ChangeRow.nct_id, func.max(ChangeRow.detected_at))
        .where(of_named(session, ChangeRow.watch_id, ChangeRow.watch, watch))
        .where(ChangeRow.kind == str(ChangeKind.NO_LONGER_MATCHING))
        .group_by(col(ChangeRow.nct_id))
    )
    left = {nct_id: when for nct_id, when in session.exec(left_query) if nct_id not in held}
    ids = sorted(left)
    for start in range(0, len(ids), IN_CHUNK):
        found.extend(_study_rows(session, col(StudyRow.nct_id).in_(ids[start : start + IN_CHUNK]), left))
    return found


def last_changes(*, session: Session, watch: str) -> dict[str, LastChange]:
    """Each study's newest change in `watch` (only those it mailed or would mail)."""
    newest = (
        select(func.max(ChangeRow.id))
        .where(of_named(session, ChangeRow.watch_id, ChangeRow.watch, watch))
        .where(col(ChangeRow.alerted).is_(True), ChangeRow.nct_id != "")
        .group_by(col(ChangeRow.nct_id))
    )
    query = select(ChangeRow.id, ChangeRow.nct_id, ChangeRow.kind, ChangeRow.detected_at).where(
        col(ChangeRow.id).in_(newest)
    )
    return {
        nct_id: LastChange(id=int(ident or 0), kind=kind, detected_at=when)
        for ident, nct_id, kind, when in session.exec(query)
    }


def article_counts(*, session: Session) -> Counter[str]:
    """How many stored articles name each NCT id (feed_item.nct_ids holds a JSON list)."""
    query = select(FeedItemRow.nct_ids).where(cast(col(FeedItemRow.nct_ids), String) != "[]")
    counts: Counter[str] = Counter()
    for (nct_ids,) in session.execute(query):
        counts.update(set(nct_ids or ()))
    return counts


def version_records(*, session: Session, version_ids: Sequence[int]) -> Iterator[tuple[int, bytes]]:
    """(id, compressed record) of these versions, IN_CHUNK at a time."""
    ids = sorted(set(version_ids))
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        query = select(StudyVersion.id, StudyVersion.record).where(col(StudyVersion.id).in_(chunk))
        for ident, blob in session.exec(query):
            yield int(ident or 0), blob


def save_facts(*, session: Session, facts: dict[int, dict[str, Any]]) -> None:
    """Cache each version's landscape facts in its summary, keeping what the summary holds."""
    ids = sorted(facts)
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        query = select(StudyVersion.id, StudyVersion.summary).where(col(StudyVersion.id).in_(chunk))
        for ident, summary in list(session.exec(query)):
            merged = {**(summary or {}), "landscape": facts[int(ident or 0)]}
            statement = update(StudyVersion).where(col(StudyVersion.id) == ident).values(summary=merged)
            session.execute(statement.execution_options(synchronize_session=False))
