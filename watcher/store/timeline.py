"""Queries behind the browser's timeline, study, article and source pages. Keyword-only functions
taking the session; no commits here.

The changes timeline is paged by KEYSET, never OFFSET: newest first on (detected_at, id), a page
ends with a cursor naming its last row, and the next page is the rows strictly before it. Every
filter is one SQL condition (`ChangeFilter.conditions`), so a page deep in a 100,000-row table
costs what the first one does (indexes from migration 0013).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, String, and_, cast, literal, or_, tuple_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from watcher.inputs import in_range, whole_number
from watcher.model import ChangeRecord
from watcher.store.models import ChangeRow, FeedItemRow, StudyRow, StudyVersion, UTCDateTime
from watcher.store.repo import in_order, to_record
from watcher.store.watch_keys import of_named

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class Cursor:
    """Where a page of the timeline ended: the (detected_at, id) of its last, oldest row."""

    detected_at: datetime
    id: int

    def encode(self) -> str:
        text = f"{self.detected_at.astimezone(UTC).strftime('%Y%m%dT%H%M%S.%f')}|{self.id}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """The cursor a page handed out; ValueError (one line) for anything else."""
        try:
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            when, _, ident = text.partition("|")
            at = datetime.strptime(when, "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC)
            in_range(at.date(), "cursor")
            return cls(detected_at=at, id=whole_number(ident or "0", name="cursor"))
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"cursor {token[:40]!r} is not one this server handed out") from exc


@dataclass(frozen=True)
class ChangeFilter:
    """What a timeline shows: every field optional; `words` must all occur in title or summary
    (case-insensitive); `since` inclusive, `until` exclusive."""

    watch: str | None = None
    kinds: tuple[str, ...] = ()
    nct_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    words: tuple[str, ...] = ()
    held_back: bool = False  # also the changes a watch rule held back (never mailed, never in Atom)
    item_types: tuple[str, ...] = ()  # article changes of these types only (meeting_abstract, preprint, article)

    def conditions(self, session: Session) -> list[Any]:
        """One SQL condition per filter given; alerted changes only unless `held_back` (the
        session looks the watch's name up: store.watch_keys.of_named)."""
        found: list[Any] = [] if self.held_back else [col(ChangeRow.alerted).is_(True)]
        if self.watch:
            found.append(of_named(session, ChangeRow.watch_id, ChangeRow.watch, self.watch))
        if self.kinds:
            found.append(col(ChangeRow.kind).in_(list(self.kinds)))
        if self.nct_id:
            found.append(col(ChangeRow.nct_id) == self.nct_id)
        if self.item_types:
            found.append(col(ChangeRow.item_type).in_(list(self.item_types)))
        if self.since is not None:
            found.append(col(ChangeRow.detected_at) >= self.since)
        if self.until is not None:
            found.append(col(ChangeRow.detected_at) < self.until)
        for word in self.words:
            pattern = f"%{_escape_like(word)}%"
            found.append(
                or_(
                    col(ChangeRow.title).ilike(pattern, escape="\\"), col(ChangeRow.summary).ilike(pattern, escape="\\")
                )
            )
        return found


def _escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class ChangePage:
    changes: list[ChangeRecord]
    next_cursor: Cursor | None


def change_page(
    *, session: Session, filters: ChangeFilter, after: Cursor | None = None, limit: int = PAGE_SIZE
) -> ChangePage:
    """One page of changes, newest first, strictly older than `after` when given."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    conditions = filters.conditions(session)
    if after is not None:
        # typed binds: the cursor's time goes through UTCDateTime like every stored time
        last = tuple_(literal(after.detected_at, UTCDateTime()), literal(after.id, Integer()))
        conditions.append(tuple_(col(ChangeRow.detected_at), col(ChangeRow.id)) < last)
    query = (
        select(ChangeRow, StudyRow)
        .join(StudyRow, col(StudyRow.nct_id) == col(ChangeRow.nct_id), isouter=True)
        .where(and_(True, *conditions))
        .order_by(col(ChangeRow.detected_at).desc(), col(ChangeRow.id).desc())
        .limit(limit + 1)
    )
    rows = [to_record(change, study) for change, study in session.exec(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = Cursor(detected_at=rows[-1].detected_at, id=rows[-1].id) if more and rows else None
    return ChangePage(changes=rows, next_cursor=cursor)


def latest_changes(*, session: Session, watch: str, limit: int = 100) -> list[ChangeRecord]:
    """A watch's newest changes (the Atom feed)."""
    return change_page(session=session, filters=ChangeFilter(watch=watch), limit=limit).changes


@dataclass(frozen=True)
class VersionMeta:
    """A stored version without its (large) record."""

    id: int
    number: int
    seen_at: datetime  # a version read from the registry's history: the day it was submitted
    last_update_posted: str | None
    registry_version: int | None = None  # the registry's own number (the site shows it plus one)
    registry_date: str | None = None
    from_history: bool = False  # read from the registry's version history (seen_at: the day submitted)

    @property
    def registry_label(self) -> str:
        """'registry version 24' (the site's number), when known."""
        return f"registry version {self.registry_version + 1}" if self.registry_version is not None else ""


_META: list[Any] = [
    StudyVersion.id, StudyVersion.seen_at, StudyVersion.last_update_posted, StudyVersion.registry_version,
    StudyVersion.registry_date, StudyVersion.from_history,
]  # fmt: skip


def version_list(*, session: Session, nct_id: str) -> list[VersionMeta]:
    """A study's stored versions, oldest first, numbered from 1, records not loaded."""
    rows = in_order(list(session.execute(sa_select(*_META).where(col(StudyVersion.nct_id) == nct_id))))
    return [_meta(number, row) for number, row in enumerate(rows, start=1)]


def _meta(number: int, row: Any) -> VersionMeta:
    return VersionMeta(int(row.id or 0), number, row.seen_at, row.last_update_posted, row.registry_version,
                       row.registry_date, bool(row.from_history))  # fmt: skip


def version_blobs(*, session: Session, nct_id: str, version_ids: Sequence[int]) -> dict[int, bytes]:
    """The compressed records of these versions of one study (others are left out)."""
    query = select(StudyVersion.id, StudyVersion.record).where(
        StudyVersion.nct_id == nct_id, col(StudyVersion.id).in_(list(version_ids))
    )
    return {int(ident or 0): blob for ident, blob in session.exec(query)}


def get_study(*, session: Session, nct_id: str) -> StudyRow | None:
    return session.get(StudyRow, nct_id)


def current_version_id(*, session: Session, nct_id: str) -> int | None:
    """The id of the study's newest stored version (None: not stored yet)."""
    row = session.get(StudyRow, nct_id)
    return row.version_id if row is not None else None


def articles_naming(*, session: Session, nct_id: str, limit: int = 100) -> list[FeedItemRow]:
    """Stored articles that name this NCT id, newest first (feed_item.nct_ids holds JSON text)."""
    pattern = f'%"{_escape_like(nct_id)}"%'
    query = (
        select(FeedItemRow)
        .where(cast(col(FeedItemRow.nct_ids), String).like(pattern, escape="\\"))
        .order_by(col(FeedItemRow.first_seen_at).desc(), col(FeedItemRow.id).desc())
        .limit(limit)
    )
    return list(session.exec(query))


def version_summaries(*, session: Session, nct_id: str) -> list[tuple[VersionMeta, dict[str, Any] | None]]:
    """A study's versions, oldest first, with their cached summaries (None: not computed yet)."""
    query = sa_select(*_META, col(StudyVersion.summary)).where(col(StudyVersion.nct_id) == nct_id)
    rows = in_order(list(session.execute(query)))
    return [(_meta(number, row), dict(row.summary) if row.summary else None) for number, row in enumerate(rows, 1)]


def save_version_summaries(*, session: Session, summaries: dict[int, dict[str, Any]]) -> None:
    """Cache computed summaries on their versions."""
    for version_id, summary in summaries.items():
        statement = update(StudyVersion).where(col(StudyVersion.id) == version_id).values(summary=summary)
        session.execute(statement.execution_options(synchronize_session=False))
