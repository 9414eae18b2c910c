"""Engine, sessions and migrations. Nothing connects at import time.

Alembic is imported only when a migration runs or a revision is asked of it (a tenth of a second
of every command's start): `upgrade` to the head finds a database already there by reading its
`alembic_version` row and comparing it with HEAD_REVISION.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, NoSuchModuleError, OperationalError
from sqlmodel import Session

from watcher.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)

_PACKAGE = Path(__file__).resolve().parent.parent

HEAD_REVISION = "0016"
"""The newest migration in alembic/versions: a new migration changes it too (tests/test_store.py
fails until it does). `upgrade` trusts it to leave a database at this revision alone."""

VERSION_TABLE = "alembic_version"


def migrations_dir() -> Path:
    """alembic/ beside the package in a checkout, or packed into the wheel as watcher/_alembic."""
    for candidate in (_PACKAGE.parent / "alembic", _PACKAGE / "_alembic"):
        if (candidate / "env.py").exists():
            return candidate
    raise StoreError("Alembic migrations not found next to the watcher package")


def make_engine(url: str) -> Engine:
    """An engine for `url`; a SQLite file's folder is created, WAL and a busy timeout are set."""
    try:
        parsed = make_url(url)
        parsed.get_dialect()  # an unknown driver fails here, not in the middle of a command
    except (ArgumentError, ValueError, NoSuchModuleError) as exc:
        raise StoreError(f"database url {redact_url(url)!r} is not valid: {_first_line(exc)}") from exc
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        if parsed.database and parsed.database != ":memory:":
            FileGuard(Path(parsed.database)).watch(engine)
    return engine


class FileGuard:
    """Notices the SQLite file removed or replaced under a running process. SQLite itself would
    go on writing into the removed file's open inode (lost at the last close), and a new
    connection would create an empty database in its place: every job would then fail on a
    missing table, every cycle. Instead: a pooled connection to a file no longer there is
    dropped; a file replaced (a backup copied back) is used from then on, with a warning; a file
    gone is a StoreError saying so, every time, until it is back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: tuple[int, int] | None = None  # (device, inode) of the file our connections use

    def watch(self, engine: Engine) -> None:
        event.listen(engine, "do_connect", self._before_connect)
        event.listen(engine, "connect", self._connected)
        event.listen(engine, "checkout", self._checkout)

    def _identity(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return stat.st_dev, stat.st_ino

    def _before_connect(self, *_args: Any) -> None:
        if self.seen is not None and self._identity() is None:
            raise StoreError(
                f"{self.path}: the database file is gone (removed or moved while trialwatch runs)",
                hint="put it back, or copy a backup (trialwatch db backup) in its place: the next cycle uses it",
            )

    def _connected(self, *_args: Any) -> None:
        now = self._identity()
        if self.seen is not None and now != self.seen:
            log.warning("%s: the database file was replaced while trialwatch runs: using the new one", self.path)
        self.seen = now

    def _checkout(self, *_args: Any) -> None:
        if self.seen is not None and self._identity() != self.seen:
            raise DisconnectionError(f"{self.path} is no longer the file this connection opened")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def redact_url(url: str) -> str:
    """The URL with any password hidden, for logs and errors."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database url>"


def alembic_config(url: str) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations up to `revision` on `engine`'s database (to the head: nothing to do,
    and Alembic not imported, when the database is there already)."""
    if revision == "head" and _stored_revisions(engine) == (HEAD_REVISION,):
        log.debug("%s: at revision %s, the newest", redact_url(str(engine.url)), HEAD_REVISION)
        return
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
    except OperationalError as exc:
        raise StoreError(f"{redact_url(str(engine.url))}: cannot migrate: {exc.orig}") from exc


def _stored_revisions(engine: Engine) -> tuple[str, ...]:
    """The revisions in the database's version table, read as Alembic reads them (none when the
    table is absent)."""
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table(VERSION_TABLE):
                return ()
            return tuple(connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())
    except OperationalError as exc:  # as Alembic's own connection would have failed
        raise StoreError(f"{redact_url(str(engine.url))}: cannot migrate: {exc.orig}") from exc


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        raise StoreError(f"{redact_url(str(engine.url))}: cannot connect: {exc.orig}") from exc


def head_revision() -> str | None:
    """The newest revision as Alembic finds it in the migrations (HEAD_REVISION should be it)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return script.get_current_head()


def ensure_migrated(engine: Engine) -> None:
    """Refuse to work on a database that is not at the newest migration."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise StoreError(
            f"{redact_url(str(engine.url))}: database is at revision {current or 'empty'}, expected {head}",
            hint="run `trialwatch db upgrade`",
        )


class DatabaseFull(StoreError):
    """The database cannot grow (SQLite's file or disk is full, PostgreSQL's disk is full): the
    transaction was rolled back whole; the next one succeeds once there is room again."""

    hint = "free disk space (or raise the quota); nothing of this transaction was stored, the next cycle retries"


SQLITE_FULL = 13  # sqlite3's primary result code "database or disk is full"
PG_DISK_FULL = "53100"  # PostgreSQL's SQLSTATE disk_full


def full_reason(exc: BaseException) -> str | None:
    """Why the database could not store this, when the cause is that it is full; else None."""
    cause: BaseException = exc.orig or exc if isinstance(exc, DBAPIError) else exc
    code = getattr(cause, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == SQLITE_FULL:
        return _first_line(cause)
    if getattr(cause, "sqlstate", None) == PG_DISK_FULL or getattr(cause, "pgcode", None) == PG_DISK_FULL:
        return _first_line(cause)
    return None


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error (a full database: as a
    DatabaseFull, one line)."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException as exc:
            session.rollback()
            reason = full_reason(exc)
            if reason is not None:
                raise DatabaseFull(f"database full: {redact_url(str(engine.url))}: {reason}") from exc
            raise


class Batch:
    """Units of work (a backfill's studies, say) written in one transaction, committed every `size`
    of them and at the end: a commit each can cost more than the work. A unit that fails must
    fail before its first write (then the others stand); `abort` rolls back what is uncommitted."""

    def __init__(self, engine: Engine, size: int) -> None:
        self.engine, self.size, self.count = engine, size, 0
        self._open: AbstractContextManager[Session] | None = None
        self._session: Session | None = None

    def session(self) -> Session:
        """The open transaction's session (one is begun when none is)."""
        if self._session is None:
            self._open = transaction(self.engine)
            self._session = self._open.__enter__()
        return self._session

    def finished_one(self) -> None:
        self.count += 1
        if self.count >= self.size:
            self.commit()

    def commit(self) -> None:
        if self._open is not None:
            opened, self._open, self._session, self.count = self._open, None, None, 0
            opened.__exit__(None, None, None)

    def abort(self, exc: BaseException) -> None:
        """Roll back (a full database: raised as DatabaseFull, as by `transaction`)."""
        if self._open is not None:
            opened, self._open, self._session, self.count = self._open, None, None, 0
            opened.__exit__(type(exc), exc, exc.__traceback__)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else exc.__class__.__name__
