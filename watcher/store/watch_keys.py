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

from sqlalchemy import and_, delete, exists, false, func, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from watcher.store.models import (
    ArticleWatch,
    AuditEntry,
    ChangeRow,
    PubmedState,
    RecipientPreference,
    WatchRow,
    WatchState,
    WatchStudy,
)


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


def held_by_several(*, session: Session, names: Sequence[str]) -> set[str]:
    """Those of these names that more than one stored watch has had (a name read from a token
    made before watches were keyed by id means no watch then: it cannot say which)."""
    query = (
        select(WatchRow.name)
        .where(col(WatchRow.name).in_(list(names)))
        .group_by(col(WatchRow.name))
        .having(func.count() > 1)
    )
    return set(session.exec(query))


def active_ids(names: Sequence[str]) -> Any:
    """A subquery: the ids of the active watches of these names."""
    return select(WatchRow.id).where(col(WatchRow.name).in_(list(names)), col(WatchRow.archived_at).is_(None))


def named_ids(*, session: Session, name: str) -> list[int]:
    """The id of the active watch of that name, or when none is active, of every archived watch
    that had it (none: no stored watch bears the name)."""
    rows = session.exec(select(WatchRow.id, WatchRow.archived_at).where(WatchRow.name == name)).all()
    active = [ident for ident, archived in rows if archived is None and ident is not None]
    return active or [ident for ident, _archived in rows if ident is not None]


def unstored(name_column: Any) -> Any:
    """Rows recorded under a name no stored watch bears (a correlated condition, for small tables)."""
    other = aliased(WatchRow)  # the outer query may join WatchRow itself
    return ~exists(select(other.id).where(other.name == name_column))


def of_active(session: Session, id_column: Any, name_column: Any, names: Sequence[str]) -> Any:
    """Rows of the active watches of these names (the mail pipeline); for a name no stored watch
    bears (a config watch not provisioned), the rows recorded under it without an id. The names
    are looked up first, so the condition is plain (the indexes serve it)."""
    wanted = list(dict.fromkeys(names))
    stored = set(session.exec(select(WatchRow.name).where(col(WatchRow.name).in_(wanted))))
    ids = active_ids_of(session=session, names=wanted)
    loose = [name for name in wanted if name not in stored]
    found: list[Any] = [col(id_column).in_(ids)] if ids else []
    if loose:
        found.append(and_(col(id_column).is_(None), col(name_column).in_(loose)))
    return or_(*found) if found else false()


def of_named(session: Session, id_column: Any, name_column: Any, name: str) -> Any:
    """Rows of the watch a person means by this name (`named_ids`); when no stored watch bears
    the name now (it was renamed, or never stored), the rows recorded under it."""
    ids = named_ids(session=session, name=name)
    if not ids:
        return col(name_column) == name
    return col(id_column) == ids[0] if len(ids) == 1 else col(id_column).in_(ids)


def name_reused(*, session: Session, name: str, keeping: int | None = None) -> bool:
    """True when the watch that had this name last is not `keeping` (None: a watch not stored
    yet): the polling state kept under the name is another watch's."""
    newest = session.exec(select(WatchRow.id).where(WatchRow.name == name).order_by(col(WatchRow.id).desc())).first()
    return newest is not None and newest != keeping


def adopt_unkeyed(*, session: Session, name: str, watch_id: int | None) -> None:
    """A config watch stored for the first time, its name never had before: the changes, audit and
    recipients' choices recorded under its name without an id (by a command or a web app that
    read the file before it was provisioned) become its own."""
    for table in (ChangeRow, AuditEntry, RecipientPreference):
        unkeyed = and_(col(table.watch_id).is_(None), col(table.watch) == name)
        session.execute(update(table).where(unkeyed).values(watch_id=watch_id))


def fresh_start(*, session: Session, name: str) -> None:
    """A new watch takes an archived watch's name: the polling state kept under the name (its
    baseline, its studies, its PubMed searches, the articles it was told of) goes, so the new
    watch takes its own baseline and is told of what it finds."""
    session.execute(delete(WatchState).where(col(WatchState.name) == name))
    session.execute(delete(WatchStudy).where(col(WatchStudy.watch) == name))
    session.execute(delete(PubmedState).where(col(PubmedState.watch) == name))
    session.execute(delete(ArticleWatch).where(col(ArticleWatch.watch) == name))
