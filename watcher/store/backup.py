"""`trialwatch db backup FILE`: a consistent copy of the database while the daemon runs.

SQLite: the online backup API copies every page in one step, inside one read transaction, so the
copy is the database as of one moment (WAL lets the daemon keep writing meanwhile; what it has not
committed is not in the copy). The copy is written beside FILE and renamed to it once checked, so
FILE is never half a database. PostgreSQL: pg_dump does the same job better than we could; the
command prints the exact pg_dump line for the configured database (without its password).
"""

from __future__ import annotations

import os
import shlex
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from watcher.errors import StoreError


@dataclass(frozen=True)
class Backup:
    path: Path
    size: int
    revision: str | None


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite database URL; None for another database (or an in-memory one)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def backup_sqlite(source: Path, target: Path) -> Backup:
    """Copy the SQLite database `source` to `target` (which must not exist) as of one moment."""
    if target.exists():
        raise StoreError(f"{target}: exists already; give a new file name (a backup never overwrites)")
    if not source.exists():
        raise StoreError(f"{source}: no such database file")
    partial = target.with_name(f".{target.name}.partial")
    try:
        with (
            closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as origin,
            closing(sqlite3.connect(partial)) as copy,
        ):
            origin.execute("PRAGMA busy_timeout = 30000")
            origin.backup(copy)  # all pages in one step: one read transaction, one moment
            copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
            check = copy.execute("PRAGMA quick_check").fetchone()[0]
            revision = _revision(copy)
        if check != "ok":
            raise StoreError(f"{target}: the copy fails SQLite's quick_check: {check}")
        os.replace(partial, target)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot back up {source} to {target}: {exc}") from exc
    except OSError as exc:
        raise StoreError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return Backup(path=target, size=target.stat().st_size, revision=revision)


def _revision(connection: sqlite3.Connection) -> str | None:
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def pg_dump_command(url: str, target: Path) -> str:
    """The pg_dump line that backs up the PostgreSQL database at `url` into `target` (custom
    format, for pg_restore); the password is left out: pg_dump reads PGPASSWORD or ~/.pgpass."""
    parsed = make_url(url)
    bare = URL.create("postgresql", parsed.username, None, parsed.host, parsed.port, parsed.database, parsed.query)
    libpq = bare.render_as_string(hide_password=False)
    return f"pg_dump --format=custom --no-owner --file {shlex.quote(str(target))} {shlex.quote(libpq)}"
