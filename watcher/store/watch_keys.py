"""What belongs to a watch is keyed by its id (#25, W18): its changes, its audit, its recipients'
choices. A watch is still asked for by name everywhere (the config file, the pages, the mail
pipeline), so these turn a name into SQL conditions on the id:

- the *active* watch of a name (names are unique among active watches) for what is polled and
  mailed now;
- for one name asked by a person (the timeline, `changes --watch`, the Atom feed, the audit): its
  active watch, or when none is active the archived ones that had it;
- a name no stored watch bears now (a watch renamed since, or one never stored, whose rows have
  no id) means the rows recorded under it.

Archived watches keep their rows; a new watch taking an archived one's name starts with none of
them, and with no polling state of that name (`fresh_start`). Small keyword-only functions; no
commits here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from watcher.store.models import ArticleWatch, PubmedState, WatchRow, WatchState, WatchStudy


def current_name(id_column: Any, name_column: Any) -> Any:
    """A row's watch as it is called now (renamed since, maybe): the select needs
    `.outerjoin(WatchRow, WatchRow.id == id_column)`."""
    return func.coalesce(col(WatchRow.name), col(name_column))


def active_watch_id(*, session: Session, name: str) -> int | None:
    """The id of the active watch of that name (None: no such watch is stored)."""
    query = select(WatchRow.id).where(WatchRow.name == name, col(WatchRow.archived_at).is_(None))
    return session.exec(query).first()


def active_ids_of(*, session: Session, names: Sequence[str]) -> list[int]:
    """The ids of the active watches of these names, in their order (a name not stored: none)."""
    query = select(WatchRow.name, WatchRow.id).where(col(WatchRow.id).in_(active_ids(names)))
    found = {name: ident for name, ident in session.exec(query) if ident is not None}
    return [found[name] for name in dict.fromkeys(names) if name in found]


def held_once(*, session: Session, names: Sequence[str]) -> set[str]:
    """Those of these names that one stored watch only ever had (a name read from a token made
    before watches were keyed by id means that watch unambiguously)."""
    query = (
        select(WatchRow.name)
        .where(col(WatchRow.name).in_(list(names)))
        .group_by(col(WatchRow.name))
        .having(func.count() == 1)
    )
    return set(session.exec(query))


def active_ids(names: Sequence[str]) -> Any:
    """A subquery: the ids of the active watches of these names."""
    return select(WatchRow.id).where(col(WatchRow.name).in_(list(names)), col(WatchRow.archived_at).is_(None))


def named_ids(name: str) -> Any:
    """A subquery: the id of the active watch of that name, or when none is active, of every
    archived watch that had it."""
    other = aliased(WatchRow)
    active = select(other.id).where(other.name == name, col(other.archived_at).is_(None)).correlate(None)
    return select(WatchRow.id).where(WatchRow.name == name, or_(col(WatchRow.archived_at).is_(None), ~exists(active)))


def unstored(name_column: Any, names: Sequence[str] | None = None) -> Any:
    """Rows of no stored watch (no id), of these names (any), while no watch of the name is stored."""
    other = aliased(WatchRow)  # the outer query may join WatchRow itself
    stored = ~exists(select(other.id).where(other.name == name_column))
    return stored if names is None else and_(col(name_column).in_(list(names)), stored)


def of_active(id_column: Any, name_column: Any, names: Sequence[str]) -> Any:
    """Rows of the active watches of these names (the mail pipeline)."""
    return or_(col(id_column).in_(active_ids(names)), and_(col(id_column).is_(None), unstored(name_column, names)))


def of_named(id_column: Any, name_column: Any, name: str) -> Any:
    """Rows of the watch a person means by this name (`named_ids`); when no stored watch bears
    the name now (it was renamed, or never stored), the rows recorded under it."""
    return or_(col(id_column).in_(named_ids(name)), unstored(name_column, [name]))


def name_reused(*, session: Session, name: str, keeping: int | None = None) -> bool:
    """True when the watch that had this name last is not `keeping` (None: a watch not stored
    yet): the polling state kept under the name is another watch's."""
    newest = session.exec(select(WatchRow.id).where(WatchRow.name == name).order_by(col(WatchRow.id).desc())).first()
    return newest is not None and newest != keeping


def fresh_start(*, session: Session, name: str) -> None:
    """A new watch takes an archived watch's name: the polling state kept under the name (its
    baseline, its studies, its PubMed searches, the articles it was told of) goes, so the new
    watch takes its own baseline and is told of what it finds."""
    session.execute(delete(WatchState).where(col(WatchState.name) == name))
    session.execute(delete(WatchStudy).where(col(WatchStudy.watch) == name))
    session.execute(delete(PubmedState).where(col(PubmedState.watch) == name))
    session.execute(delete(ArticleWatch).where(col(ArticleWatch.watch) == name))
