"""Watches in the database, and the audit of every change to them.

The TOML file's `[[watch]]` entries are *provisioned*: `provision_watches` syncs them into the
`watch` table (source "config") at start and on SIGHUP; watches created in the browser or the API
are stored with source "web" and an owner. `active_watches` is the one list every job works on.
Names are unique among the active watches of both kinds. Deleting a watch archives it (polling and
mail stop, its changes stay readable); a new watch may then take its name, and starts with none of
its changes, audit or recipients' choices (they are keyed by the watch's id: store.watch_keys).
Every create, update, archive and provision is one `AuditEntry`.

Small keyword-only functions that take the session; no commits here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case
from sqlmodel import Session, col, select

from watcher.channels import masked
from watcher.errors import ConfigError
from watcher.store.models import AuditEntry, WatchRow
from watcher.store.watch_keys import adopt_unkeyed, fresh_start, name_reused, of_named
from watcher.watch import STORED, WatchConfig

CONFIG_ACTOR = "trialwatch.toml"


class WatchNameTaken(ConfigError):
    """A watch of that name exists already (the other kind, or not archived)."""


class WatchNotFound(ConfigError):
    """No active watch of that name."""


def definition_of(watch: WatchConfig) -> dict[str, Any]:
    """The JSON stored for a watch: every field but the name, as WatchConfig dumps it."""
    return watch.model_dump(mode="json", exclude={"name"})


def watch_of(row: WatchRow) -> WatchConfig:
    """The stored watch; one stored before the limits on names and lists (#25) still loads."""
    return WatchConfig.model_validate({"name": row.name, **row.definition}, context=STORED)


def field_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """field -> [before, after] for every field that differs (channel URLs masked: the audit is
    shown on pages and by `trialwatch audit`, and never holds a secret)."""
    keys = sorted(set(before) | set(after))
    found = {key: [before.get(key), after.get(key)] for key in keys if before.get(key) != after.get(key)}
    if "notify" in found:
        found["notify"] = [side if not side else [masked(str(url)) for url in side] for side in found["notify"]]
    return found


def watch_rows(*, session: Session, include_archived: bool = False) -> list[WatchRow]:
    query = select(WatchRow).order_by(col(WatchRow.name))
    if not include_archived:
        query = query.where(col(WatchRow.archived_at).is_(None))
    return list(session.exec(query))


def get_watch_row(*, session: Session, name: str) -> WatchRow | None:
    """The active watch of that name; when none is active, the newest archived one."""
    newest_active_first = (case((col(WatchRow.archived_at).is_(None), 0), else_=1), col(WatchRow.id).desc())
    return session.exec(select(WatchRow).where(WatchRow.name == name).order_by(*newest_active_first)).first()


def get_active_row(*, session: Session, name: str) -> WatchRow | None:
    row = get_watch_row(session=session, name=name)
    return row if row is not None and row.archived_at is None else None


def active_watches(*, session: Session) -> list[WatchConfig]:
    """Every watch that is polled and mailed now, config and web alike, by name."""
    return [watch_of(row) for row in watch_rows(session=session)]


def web_name_conflicts(*, session: Session, names: Sequence[str]) -> list[str]:
    """Those of `names` (the config file's watches) already taken by an active web watch."""
    if not names:
        return []
    query = select(WatchRow.name).where(
        col(WatchRow.name).in_(list(names)), WatchRow.source == "web", col(WatchRow.archived_at).is_(None)
    )
    return sorted(session.exec(query))


def provision_watches(*, session: Session, watches: Sequence[WatchConfig], now: datetime, where: str) -> list[str]:
    """Make the config watches of the database those of the file: insert new ones, update the
    changed ones, archive the ones no longer in the file. Returns the names that changed.
    `where` (the config file's path) names the file in the error when a config watch takes the
    name of an active web watch; nothing is written then."""
    taken = web_name_conflicts(session=session, names=[watch.name for watch in watches])
    if taken:
        raise WatchNameTaken(
            f"{where}: watch {taken[0]!r}: the name is taken by a watch created in the browser; rename one of them"
        )
    configs = select(WatchRow).where(WatchRow.source == "config").order_by(col(WatchRow.id))
    rows = {row.name: row for row in session.exec(configs)}  # a name's newest config row
    touched = []
    for watch in watches:
        row = rows.pop(watch.name, None)
        wanted = definition_of(watch)
        if row is not None and row.definition == wanted and row.archived_at is None:
            continue
        before = {} if row is None or row.archived_at is not None else row.definition
        new = row is None
        if row is None:
            row = WatchRow(name=watch.name, source="config", definition=wanted, created_at=now, updated_at=now)
        reused = name_reused(session=session, name=watch.name, keeping=row.id)  # another watch had it last
        if reused:
            fresh_start(session=session, name=watch.name)
        row.definition, row.updated_at, row.archived_at = wanted, now, None
        session.add(row)
        if new and not reused:  # what was recorded under its name before it was stored is its own
            session.flush()
            adopt_unkeyed(session=session, name=watch.name, watch_id=row.id)
        _audit(session, now, CONFIG_ACTOR, "provision", row, field_changes(before, wanted))
        touched.append(watch.name)
    for row in rows.values():
        if row.archived_at is None:
            row.archived_at = row.updated_at = now
            session.add(row)
            _audit(session, now, CONFIG_ACTOR, "archive", row, {})
            touched.append(row.name)
    return touched


def create_watch(*, session: Session, watch: WatchConfig, owner: str, now: datetime) -> WatchRow:
    """A new web watch. An archived watch of the same name (any kind) gives its name up and keeps
    its changes, audit and recipients' choices; the new one starts afresh."""
    if get_active_row(session=session, name=watch.name) is not None:
        raise WatchNameTaken(f"watch {watch.name!r} exists already")
    if name_reused(session=session, name=watch.name):
        fresh_start(session=session, name=watch.name)
    row = WatchRow(
        name=watch.name, source="web", owner=owner, definition=definition_of(watch), created_at=now, updated_at=now
    )
    session.add(row)
    _audit(session, now, owner, "create", row, field_changes({}, row.definition))
    return row


def update_watch(*, session: Session, name: str, watch: WatchConfig, actor: str, now: datetime) -> WatchRow:
    """Replace a web watch's definition (its name may change if the new one is free)."""
    row = _active_web_row(session, name)
    if watch.name != name and get_active_row(session=session, name=watch.name) is not None:
        raise WatchNameTaken(f"watch {watch.name!r} exists already")
    if watch.name != name:  # the state under either name is no longer this watch's: a new baseline
        fresh_start(session=session, name=name)
        fresh_start(session=session, name=watch.name)
    before = {"name": row.name, **row.definition}
    row.name, row.definition, row.updated_at = watch.name, definition_of(watch), now
    session.add(row)
    _audit(session, now, actor, "update", row, field_changes(before, {"name": watch.name, **row.definition}))
    return row


def archive_watch(*, session: Session, name: str, actor: str, now: datetime) -> WatchRow:
    row = _active_web_row(session, name)
    row.archived_at = row.updated_at = now
    session.add(row)
    _audit(session, now, actor, "archive", row, {})
    return row


def archive_stored_watch(
    *, session: Session, name: str | None, watch_id: int | None, actor: str, now: datetime
) -> WatchRow:
    """Archive an active web watch chosen by its stored name or its id, whatever the name holds (a
    watch stored with a line break in its name before #25 can be archived only so). A config
    watch is refused: it is archived by removing it from the file."""
    query = select(WatchRow).where(col(WatchRow.archived_at).is_(None))
    query = query.where(WatchRow.id == watch_id) if watch_id is not None else query.where(WatchRow.name == name)
    row = session.exec(query).first()
    if row is None:
        raise WatchNotFound(
            f"no active watch with id {watch_id}" if watch_id is not None else f"no watch named {name!r}"
        )
    if row.source != "web":
        raise ConfigError(f"watch {row.name!r} is managed in trialwatch.toml; remove it there to archive it")
    row.archived_at = row.updated_at = now
    session.add(row)
    _audit(session, now, actor, "archive", row, {})
    return row


def audit_entries(*, session: Session, watch: str | None = None, limit: int = 100) -> list[AuditEntry]:
    """Newest first; with `watch`, those of the watch of that name (its active one, or the
    archived ones when none is active), whatever it was called then."""
    query = select(AuditEntry).order_by(col(AuditEntry.at).desc(), col(AuditEntry.id).desc()).limit(limit)
    if watch is not None:
        query = query.where(of_named(session, AuditEntry.watch_id, AuditEntry.watch, watch))
    return list(session.exec(query))


def _active_web_row(session: Session, name: str) -> WatchRow:
    row = get_active_row(session=session, name=name)
    if row is None:
        raise WatchNotFound(f"no watch named {name!r}")
    if row.source != "web":
        raise ConfigError(f"watch {name!r} is managed in trialwatch.toml; edit it there")
    return row


def _audit(session: Session, now: datetime, actor: str, action: str, row: WatchRow, changes: dict[str, Any]) -> None:
    if row.id is None:
        session.add(row)
        session.flush()  # its id
    session.add(AuditEntry(at=now, actor=actor, action=action, watch=row.name, watch_id=row.id, changes=changes))
