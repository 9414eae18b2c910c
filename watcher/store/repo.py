"""Queries. Small keyword-only functions that take the session explicitly; no commits here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from watcher.model import ChangeKind, ChangeRecord, FieldChange, Source, Study
from watcher.store.models import (
    ChangeRow,
    FeedItemRow,
    FeedState,
    Notification,
    StudyRow,
    StudyVersion,
    WatchState,
    WatchStudy,
)
from watcher.store.packing import pack_record, unpack_record
from watcher.store.recipients import opted_out
from watcher.store.watch_keys import active_watch_id, of_named


def get_watch_state(*, session: Session, name: str) -> WatchState:
    state = session.get(WatchState, name)
    if state is None:
        state = WatchState(name=name)
        session.add(state)
    return state


def watch_states(*, session: Session) -> dict[str, WatchState]:
    return {state.name: state for state in session.exec(select(WatchState))}


def save_study_version(
    *,
    session: Session,
    record: dict[str, Any],
    study: Study,
    fingerprint: str,
    now: datetime,
    summary: dict[str, Any] | None = None,
) -> int:
    """Store the study; add a version only when its tracked fields changed (with `summary`, the
    study page's cache, when known). Returns the version id."""
    row = session.get(StudyRow, study.nct_id)
    if row is not None and row.fingerprint == fingerprint and row.version_id is not None:
        return row.version_id
    if row is None:
        row = StudyRow(nct_id=study.nct_id, first_seen_at=now, title="", status="", fingerprint="")
        session.add(row)
    row.title, row.status, row.phase = study.title, study.status, study.phase_label
    row.last_update_posted, row.fingerprint, row.changed_at = study.last_update_posted, fingerprint, now
    session.flush()
    version = StudyVersion(
        nct_id=study.nct_id,
        fingerprint=fingerprint,
        record=pack_record(record),
        last_update_posted=study.last_update_posted,
        seen_at=now,
        summary=summary,
    )
    session.add(version)
    session.flush()
    assert version.id is not None
    row.version_id = version.id
    return version.id


def load_version(*, session: Session, version_id: int) -> dict[str, Any]:
    version = session.get(StudyVersion, version_id)
    if version is None:
        raise LookupError(f"study version {version_id} is missing")
    return unpack_record(version.record)


def get_watch_study(*, session: Session, watch: str, nct_id: str) -> WatchStudy | None:
    return session.get(WatchStudy, (watch, nct_id))


def watch_study_ids(*, session: Session, watch: str) -> set[str]:
    """The ids of every study a watch holds."""
    return set(session.exec(select(WatchStudy.nct_id).where(WatchStudy.watch == watch)))


def watch_links(*, session: Session, watch: str) -> list[tuple[WatchStudy, str]]:
    """Every study a watch holds, with its stored title."""
    query = (
        select(WatchStudy, StudyRow.title)
        .join(StudyRow, col(StudyRow.nct_id) == col(WatchStudy.nct_id), isouter=True)
        .where(WatchStudy.watch == watch)
        .order_by(col(WatchStudy.nct_id))
    )
    return [(link, title or link.nct_id) for link, title in session.exec(query)]


def study_versions(*, session: Session, nct_id: str) -> list[StudyVersion]:
    """A study's stored versions, oldest first."""
    return in_order(list(session.exec(select(StudyVersion).where(StudyVersion.nct_id == nct_id))))


def in_order(rows: Sequence[Any]) -> list[Any]:
    """A study's versions in the order they happened (rows with `id`, `seen_at`, `registry_version`,
    `from_history`): trialwatch's own in the order stored; each read from the registry's history
    (stored later, but older) before the first of trialwatch's that is a later registry version,
    or, its number unknown, was seen after that version's day."""
    own = sorted((row for row in rows if not row.from_history), key=lambda row: row.id)
    past = sorted((row for row in rows if row.from_history), key=lambda row: (row.registry_version or 0, row.id))
    ordered: list[Any] = []
    for row in own:
        while past and _before(past[0], row):
            ordered.append(past.pop(0))
        ordered.append(row)
    return ordered + past


def _before(past: Any, own: Any) -> bool:
    if own.registry_version is not None:
        return bool((past.registry_version or 0) < own.registry_version)
    return bool(past.seen_at <= own.seen_at)


def record_change(
    *,
    session: Session,
    watch: str,
    study: Study,
    change: FieldChange,
    recipients: Iterable[str],
    now: datetime,
) -> ChangeRow:
    """Store a registry change and owe it to each recipient subscribed now (unless a rule held it back)."""
    return add_change(
        session=session, watch=watch, kind=change.kind, source=Source.CLINICALTRIALS, nct_id=study.nct_id,
        title=study.title, summary=change.summary, details=change.details, recipients=recipients, now=now,
        suppressed_by=change.suppressed_by,
    )  # fmt: skip


def add_change(
    *,
    session: Session,
    watch: str,
    kind: ChangeKind,
    source: Source,
    nct_id: str,
    title: str,
    summary: str,
    details: dict[str, Any],
    recipients: Iterable[str],
    now: datetime,
    suppressed_by: str | None = None,
) -> ChangeRow:
    """Store a change (any source) and owe it to each recipient subscribed now (not opted out). A
    change a watch rule held back (`suppressed_by`) is stored with alerted false and owed to nobody:
    no notification row exists, so nothing can ever mail it."""
    row = ChangeRow(
        watch=watch, watch_id=active_watch_id(session=session, name=watch), kind=str(kind),
        source=str(source), nct_id=nct_id, title=title, summary=summary,
        details=details, detected_at=now, alerted=suppressed_by is None, suppressed_by=suppressed_by,
        item_type=_item_type(kind, details),
    )  # fmt: skip
    session.add(row)
    session.flush()
    assert row.id is not None
    if suppressed_by is not None:
        return row
    left = opted_out(session=session, watch=watch)
    for recipient in dict.fromkeys(r.lower() for r in recipients):
        if recipient not in left:
            session.add(Notification(change_id=row.id, recipient=recipient))
    return row


def get_feed_state(*, session: Session, name: str, url: str) -> FeedState:
    """A feed's stored state; a new one (or one whose configured URL changed) starts over."""
    state = session.get(FeedState, name)
    if state is None:
        state = FeedState(name=name, configured_url=url, url=url)
        session.add(state)
    elif state.configured_url != url:
        state.configured_url = state.url = url
        state.etag = state.last_modified = state.body_hash = None
        state.baseline_at = state.gone_at = state.next_poll_at = None
        state.error_count, state.last_error, state.failing_since = 0, None, None
        session.add(state)
    return state


def feed_states(*, session: Session) -> dict[str, FeedState]:
    return {state.name: state for state in session.exec(select(FeedState))}


def _item_type(kind: ChangeKind, details: dict[str, Any]) -> str | None:
    """An article change's item type (meeting_abstract, preprint, article); None for a study's."""
    if kind not in (ChangeKind.PUBLICATION, ChangeKind.NEW_ARTICLE):
        return None
    return str(details.get("item_type") or "article")


def known_feed_item(*, session: Session, keys: Sequence[str], doi: str | None) -> FeedItemRow | None:
    """The stored article with any of these keys, or with this DOI (the same paper elsewhere)."""
    found = session.exec(select(FeedItemRow).where(col(FeedItemRow.key).in_(list(keys)))).first()
    if found is None and doi:
        found = session.exec(select(FeedItemRow).where(FeedItemRow.doi == doi)).first()
    return found


def watched_studies(*, session: Session, watch: str, nct_ids: Sequence[str]) -> dict[str, str]:
    """Of these NCT ids, those the watch holds, with their titles."""
    if not nct_ids:
        return {}
    query = (
        select(WatchStudy.nct_id, StudyRow.title)
        .join(StudyRow, col(StudyRow.nct_id) == col(WatchStudy.nct_id))
        .where(WatchStudy.watch == watch, col(WatchStudy.nct_id).in_(list(nct_ids)))
    )
    return {nct_id: title for nct_id, title in session.exec(query)}


def list_changes(
    *,
    session: Session,
    since: datetime | None = None,
    watch: str | None = None,
    limit: int | None = None,
    include_held_back: bool = False,
) -> list[ChangeRecord]:
    """Stored changes, newest first: alerted ones, and with `include_held_back` those a watch
    rule held back too (the timeline's "show held back", `changes --all`)."""
    query = select(ChangeRow, StudyRow).join(StudyRow, col(StudyRow.nct_id) == col(ChangeRow.nct_id), isouter=True)
    if not include_held_back:
        query = query.where(col(ChangeRow.alerted).is_(True))
    if since is not None:
        query = query.where(col(ChangeRow.detected_at) >= since)
    if watch is not None:
        query = query.where(of_named(session, ChangeRow.watch_id, ChangeRow.watch, watch))
    query = query.order_by(col(ChangeRow.detected_at).desc(), col(ChangeRow.id).desc())
    if limit:
        query = query.limit(limit)
    return [to_record(change, study) for change, study in session.exec(query)]


def to_record(change: ChangeRow, study: StudyRow | None) -> ChangeRecord:
    assert change.id is not None
    return ChangeRecord(
        id=change.id,
        watch=change.watch,
        kind=ChangeKind(change.kind),
        source=Source(change.source),
        nct_id=change.nct_id,
        title=change.title,
        summary=change.summary,
        details=change.details,
        detected_at=change.detected_at,
        study_status=study.status if study else "",
        study_phase=study.phase if study else "",
        alerted=change.alerted,
        suppressed_by=change.suppressed_by,
        historical=change.historical,
    )


def count_studies(*, session: Session, watch: str) -> int:
    query = select(func.count()).select_from(WatchStudy).where(WatchStudy.watch == watch)
    return int(session.exec(query).one())
