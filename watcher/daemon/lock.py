"""Leader lock: only one scheduler polls and delivers at a time.

SQLite: an exclusive, non-blocking `flock` on `<database>.lock` beside the database file; the
holder writes its PID and host name into the file so a refused second daemon can say who holds
it. The kernel drops the lock when the holder's file is closed, however the process ends. The
file is never deleted: deleting it would let a new process lock a new file while the old holder
still locks the old one.

PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock(ADVISORY_KEY)`) on a dedicated
connection kept open for the holder's life. Advisory locks are scoped to one database, so every
replica using the same database competes for the same lock, and the server drops it as soon as
the holder's session ends (process killed, connection closed, backend terminated). The leader
must call `check()` before acting: a dead connection means another replica may already lead.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from watcher.errors import StoreError, TrialwatchError

log = logging.getLogger(__name__)

LOCK_NAME = "trialwatch"
ADVISORY_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)
"""The same 64-bit key in every replica and every version: never derive it from anything else."""

STOP_CHECK_SECONDS = 0.1
"""How often a standby looks at its stop event between tries."""

KEEPALIVE_OPTIONS = "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"
"""Server-side keepalives: a leader whose host vanished loses the lock in about a minute, not hours."""

CONNECT_TIMEOUT_SECONDS = 10
"""A database that does not answer is an error after this long, so a standby's retries stay bounded."""

FIRST_RETRY_SECONDS = 0.5
"""After a failed try (database unreachable), the first wait; it doubles up to the standby's interval."""


class LockHeld(TrialwatchError):
    """Another trialwatch process holds the leader lock."""


class LeaderLock(ABC):
    """A lock at most one process holds; `try_acquire()` never blocks."""

    description: str
    allows_standby: bool = False
    """True when other replicas may wait for this lock (PostgreSQL); False: a second daemon refuses to start."""

    @abstractmethod
    def try_acquire(self) -> bool:
        """Take the lock if it is free; True if this object holds it now."""

    @abstractmethod
    def release(self) -> None:
        """Give the lock up (nothing happens if it is not held)."""

    @abstractmethod
    def check(self) -> bool:
        """True if the lock is still held; after a False the lock counts as released."""

    @abstractmethod
    def holder(self) -> str:
        """Who holds the lock, as well as can be told ('process 123 on host db1')."""

    @property
    @abstractmethod
    def held(self) -> bool: ...

    def acquire(self) -> None:
        """Take the lock or raise LockHeld naming the holder."""
        if not self.try_acquire():
            raise LockHeld(
                f"{self.description}: held by {self.holder()}",
                hint="another trialwatch is running on this database; stop it first",
            )

    def __enter__(self) -> LeaderLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


class FileLock(LeaderLock):
    """`flock(LOCK_EX | LOCK_NB)` on a file; the holder's PID and host are written into it."""

    def __init__(self, *, path: Path) -> None:
        self.path = path
        self.description = f"lock file {path}"
        self._fd: int | None = None
        self._mutex = threading.Lock()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        with self._mutex:
            if self._fd is not None:
                return True
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise StoreError(f"{self.path}: cannot open lock file: {exc.strerror}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
            self._fd = fd
            return True

    def release(self) -> None:
        with self._mutex:
            if self._fd is None:
                return
            fd, self._fd = self._fd, None
            try:
                os.ftruncate(fd, 0)
            finally:
                os.close(fd)  # closing the last descriptor drops the flock

    def check(self) -> bool:
        """Held, and the file on disk is still the one locked (not deleted or replaced)."""
        with self._mutex:
            if self._fd is None:
                return False
            try:
                same = os.fstat(self._fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
        if not same:
            log.error("%s was deleted or replaced: giving up leadership", self.path)
            self.release()
        return same

    def holder(self) -> str:
        try:
            pid, _, host = self.path.read_text(encoding="utf-8").strip().partition(" ")
        except OSError:
            return "an unknown process"
        if not pid:
            return "an unknown process (no PID written yet)"
        return f"process {pid} on host {host}" if host else f"process {pid}"


class AdvisoryLock(LeaderLock):
    """`pg_try_advisory_lock(key)` on a dedicated autocommit connection held until release."""

    allows_standby = True

    def __init__(self, *, engine_url: str, key: int = ADVISORY_KEY) -> None:
        self.key = key
        self.engine: Engine = create_engine(
            engine_url,
            poolclass=NullPool,
            connect_args={
                "application_name": _application_name(),
                "options": KEEPALIVE_OPTIONS,
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            },
        )
        where = self.engine.url.render_as_string(hide_password=True)
        self.description = f"PostgreSQL advisory lock {key} on {where}"
        self._connection: Connection | None = None
        self._held = False
        self._mutex = threading.Lock()

    @property
    def held(self) -> bool:
        return self._held

    @property
    def backend_pid(self) -> int | None:
        """The server process of the lock connection (for logs, and for tests that kill it)."""
        with self._mutex:
            if self._connection is None:
                return None
            return int(self._connection.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def try_acquire(self) -> bool:
        with self._mutex:
            if self._held:
                return True
            try:
                connection = self._connection or self._connect()
                got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar_one()
            except DBAPIError as exc:
                self._discard()
                raise StoreError(f"{self.description}: cannot try the lock: {_first_line(exc.orig)}") from exc
            self._held = bool(got)
            return self._held

    def release(self) -> None:
        with self._mutex:
            self._held = False
            self._discard()  # ending the session releases every advisory lock it holds

    def check(self) -> bool:
        """Ask the server whether this session still holds the lock; a dead connection means no."""
        with self._mutex:
            if not self._held or self._connection is None:
                return False
            try:
                still = self._connection.execute(_HELD_BY_ME, _key_parts(self.key)).scalar() is not None
            except DBAPIError as exc:
                log.error("%s: lock connection lost: %s", self.description, _first_line(exc.orig))
                still = False
            if not still:
                self._held = False
                self._discard()
            return still

    def holder(self) -> str:
        try:
            with self.engine.connect() as connection:
                row = connection.execute(_HOLDER, _key_parts(self.key)).first()
        except DBAPIError as exc:
            return f"an unknown session ({_first_line(exc.orig)})"
        if row is None:
            return "nobody now (it was just released)"
        name = f"{row.application_name!r} " if row.application_name else ""
        address = f" from {row.client_addr}" if row.client_addr else ""
        return f"{name}(PostgreSQL backend {row.pid}{address})"

    def _connect(self) -> Connection:
        self._connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._connection

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.close()
        except DBAPIError:
            connection.invalidate()


class ProcessLock(LeaderLock):
    """For in-memory SQLite: the database is private to this process, so there is nobody to exclude."""

    def __init__(self) -> None:
        self.description = "in-memory database"
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def try_acquire(self) -> bool:
        self._held = True
        return True

    def release(self) -> None:
        self._held = False

    def check(self) -> bool:
        return self._held

    def holder(self) -> str:
        return f"process {os.getpid()}"


_HELD_BY_ME = text(
    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"
    " AND classid::bigint = :high AND objid::bigint = :low AND objsubid = 1"
)
_HOLDER = text(
    "SELECT a.pid, a.application_name, a.client_addr FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = :high AND l.objid::bigint = :low"
    " AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def _key_parts(key: int) -> dict[str, int]:
    """pg_locks shows a bigint advisory key as classid (high 32 bits) and objid (low 32 bits)."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return {"high": unsigned >> 32, "low": unsigned & 0xFFFF_FFFF}


def _application_name() -> str:
    return f"trialwatch {socket.gethostname()} pid {os.getpid()}"[:63]


def _first_line(value: object) -> str:
    return str(value).strip().splitlines()[0] if str(value).strip() else type(value).__name__


def leader_lock(*, engine_url: str, lock_path: Path | None = None) -> LeaderLock:
    """The leader lock for this database: a lock file for SQLite, an advisory lock for PostgreSQL."""
    try:
        url = make_url(engine_url)
    except ArgumentError as exc:
        raise StoreError(f"database url is not valid: {exc}") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        if lock_path is not None:
            return FileLock(path=lock_path)
        if not url.database or url.database == ":memory:":
            return ProcessLock()
        return FileLock(path=Path(f"{url.database}.lock"))
    if backend == "postgresql":
        return AdvisoryLock(engine_url=engine_url)
    raise StoreError(f"{url.render_as_string(hide_password=True)}: no leader lock for {backend!r} databases")


@contextmanager
def leadership(*, engine_url: str, lock_path: Path | None = None) -> Iterator[LeaderLock]:
    """`with leadership(engine_url=...) as lock:` holds the lock or raises LockHeld."""
    with leader_lock(engine_url=engine_url, lock_path=lock_path) as lock:
        yield lock


def wait_for_leadership(
    lock: LeaderLock,
    *,
    poll_seconds: float,
    stop_event: threading.Event,
    on_database: Callable[[str | None], None] | None = None,
) -> bool:
    """Try the lock every `poll_seconds` until it is taken (True) or `stop_event` is set (False).

    A database that cannot be reached is logged and tried again, first after half a second, then
    twice as long each time up to `poll_seconds`: a standby outlives an outage and is back soon
    after a blip. `on_database` hears each failure's message, and None once the database answers.
    `stop_event` may be set from a signal handler: the loop only reads it, never waits inside it.
    """
    announced, retry = False, FIRST_RETRY_SECONDS
    while not stop_event.is_set():
        wait = poll_seconds
        try:
            taken = lock.try_acquire()
        except StoreError as exc:
            if on_database is not None:
                on_database(exc.one_line())
            log.warning("%s (trying again in %.1f s)", exc.one_line(), min(retry, poll_seconds))
            wait, retry = min(retry, poll_seconds), retry * 2
        else:
            retry = FIRST_RETRY_SECONDS
            if on_database is not None:
                on_database(None)
            if taken:
                log.info("%s: acquired, this process leads", lock.description)
                return True
            if not announced:
                log.info("%s: held by %s; standing by", lock.description, lock.holder())
                announced = True
        _pause(wait, stop_event)
    return False


def _pause(seconds: float, stop_event: threading.Event) -> None:
    """Sleep up to `seconds`, waking early once `stop_event` is set.

    Not `stop_event.wait()`: a signal handler that sets the event while this thread holds the
    event's internal lock would deadlock; `is_set()` takes no lock.
    """
    deadline = time.monotonic() + seconds
    while not stop_event.is_set() and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, STOP_CHECK_SECONDS))
