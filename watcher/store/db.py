"""Engine, sessions and migrations. Nothing connects at import time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlmodel import Session

from alembic import command
from watcher.errors import StoreError

_PACKAGE = Path(__file__).resolve().parent.parent


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
    return engine


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
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations up to `revision` on `engine`'s database."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
    except OperationalError as exc:
        raise StoreError(f"{redact_url(str(engine.url))}: cannot migrate: {exc.orig}") from exc


def downgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        raise StoreError(f"{redact_url(str(engine.url))}: cannot connect: {exc.orig}") from exc


def head_revision() -> str | None:
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


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else exc.__class__.__name__
