"""The leader lock: one holder per database, a clear refusal naming the holder, takeover when it dies."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import REPO
from watcher.daemon.lock import (
    ADVISORY_KEY,
    AdvisoryLock,
    FileLock,
    LeaderLock,
    LockHeld,
    ProcessLock,
    leader_lock,
    leadership,
    wait_for_leadership,
)
from watcher.errors import StoreError

DEADLINE = 20.0

HOLDER_SCRIPT = """
import sys
from watcher.daemon.lock import leader_lock
lock = leader_lock(engine_url=sys.argv[1])
try:
    lock.acquire()
except Exception as exc:
    print("refused", exc, flush=True)
    raise SystemExit(1)
print("acquired", flush=True)
sys.stdin.read()
lock.release()
"""


class Holder:
    """A separate Python process that tries the lock, reports, and keeps it until stdin closes."""

    def __init__(self, engine_url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER_SCRIPT, engine_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def first_line(self) -> str:
        try:
            return self.lines.get(timeout=DEADLINE).strip()
        except queue.Empty:
            raise AssertionError(f"holder process said nothing within {DEADLINE}s") from None

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.process.wait(timeout=DEADLINE) == 0

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=DEADLINE)

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=DEADLINE)


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        holder.cleanup()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'trialwatch.db'}"


def take_over(lock: LeaderLock, *, deadline: float = DEADLINE) -> float:
    """Seconds until `lock` is acquired by the standby loop; fails after `deadline`."""
    stop = threading.Event()
    result: list[bool] = []
    started = time.monotonic()
    waiter = threading.Thread(
        target=lambda: result.append(wait_for_leadership(lock, poll_seconds=0.02, stop_event=stop)), daemon=True
    )
    waiter.start()
    waiter.join(timeout=deadline)
    stop.set()
    waiter.join(timeout=DEADLINE)
    assert result == [True], f"leadership not taken over within {deadline}s"
    return time.monotonic() - started


# --- SQLite: flock on <database>.lock ------------------------------------------------------------


def test_sqlite_lock_file_sits_beside_the_database(sqlite_url: str, tmp_path: Path):
    lock = leader_lock(engine_url=sqlite_url)
    assert isinstance(lock, FileLock)
    assert lock.path == tmp_path / "trialwatch.db.lock"
    with lock:
        assert lock.held
        assert lock.path.read_text().split()[0] == str(os.getpid())
    assert not lock.held


def test_second_open_in_the_same_process_is_refused_naming_the_pid(sqlite_url: str, tmp_path: Path):
    first, second = leader_lock(engine_url=sqlite_url), leader_lock(engine_url=sqlite_url)
    assert first.try_acquire()
    assert first.try_acquire(), "taking a held lock again is a no-op"
    assert not second.try_acquire()
    with pytest.raises(LockHeld) as refused:
        second.acquire()
    message = refused.value.one_line()
    assert str(tmp_path / "trialwatch.db.lock") in message
    assert f"held by process {os.getpid()} on host" in message
    assert "\n" not in message
    first.release()
    assert second.try_acquire()
    second.release()


def test_a_second_process_is_refused_naming_the_holder_pid(sqlite_url: str, holders: list[Holder]):
    holder = Holder(sqlite_url)
    holders.append(holder)
    assert holder.first_line() == "acquired"
    lock = leader_lock(engine_url=sqlite_url)
    with pytest.raises(LockHeld, match=f"held by process {holder.process.pid} on host"):
        lock.acquire()
    holder.release()
    assert lock.try_acquire()
    lock.release()


def test_a_second_process_is_refused_while_this_one_holds(sqlite_url: str, holders: list[Holder]):
    with leadership(engine_url=sqlite_url):
        holder = Holder(sqlite_url)
        holders.append(holder)
        line = holder.first_line()
        assert line.startswith("refused ") and f"held by process {os.getpid()}" in line
        assert holder.process.wait(timeout=DEADLINE) == 1


def test_a_killed_holder_releases_the_file_lock(sqlite_url: str, holders: list[Holder]):
    holder = Holder(sqlite_url)
    holders.append(holder)
    assert holder.first_line() == "acquired"
    lock = leader_lock(engine_url=sqlite_url)
    assert not lock.try_acquire()
    holder.kill()
    assert lock.try_acquire(), "the kernel drops a flock when its holder dies"
    assert lock.holder() == f"process {os.getpid()} on host {os.uname().nodename}"
    lock.release()


def test_context_manager_raises_when_held_and_releases_on_exit(sqlite_url: str):
    with leadership(engine_url=sqlite_url) as lock:
        assert lock.held and lock.check()
        with pytest.raises(LockHeld), leadership(engine_url=sqlite_url):
            pass
    with leadership(engine_url=sqlite_url) as again:
        assert again.held


def test_check_reports_a_deleted_lock_file_as_lost_leadership(sqlite_url: str):
    lock = leader_lock(engine_url=sqlite_url)
    assert isinstance(lock, FileLock)
    lock.acquire()
    lock.path.unlink()
    assert not lock.check()
    assert not lock.held


def standing_by(
    lock: LeaderLock, *, poll_seconds: float, stop: threading.Event, result: list[bool]
) -> threading.Thread:
    """A thread in the standby loop; what wait_for_leadership returns lands in `result`."""
    waiter = threading.Thread(
        target=lambda: result.append(wait_for_leadership(lock, poll_seconds=poll_seconds, stop_event=stop)),
        daemon=True,
    )
    waiter.start()
    return waiter


def test_standby_loop_takes_over_when_the_leader_releases(sqlite_url: str):
    leader, standby = leader_lock(engine_url=sqlite_url), leader_lock(engine_url=sqlite_url)
    leader.acquire()
    stop = threading.Event()
    result: list[bool] = []
    waiter = standing_by(standby, poll_seconds=0.02, stop=stop, result=result)
    assert not standby.held
    leader.release()
    waiter.join(timeout=DEADLINE)
    assert result == [True] and standby.held
    standby.release()


def test_standby_loop_returns_false_when_stopped(sqlite_url: str):
    leader, standby = leader_lock(engine_url=sqlite_url), leader_lock(engine_url=sqlite_url)
    leader.acquire()
    stop = threading.Event()
    result: list[bool] = []
    waiter = standing_by(standby, poll_seconds=60, stop=stop, result=result)
    stop.set()
    waiter.join(timeout=DEADLINE)
    assert result == [False] and not standby.held
    leader.release()


def test_a_signal_handler_can_stop_the_standby_loop(sqlite_url: str, tmp_path: Path):
    """SIGTERM in a standby sets the stop event from a handler on the very thread that waits."""
    leader = leader_lock(engine_url=sqlite_url)
    leader.acquire()
    stop, tried, done = threading.Event(), threading.Event(), threading.Event()

    class Noting(FileLock):
        def try_acquire(self) -> bool:
            tried.set()
            return super().try_acquire()

    def poke() -> None:
        tried.wait(DEADLINE)
        os.kill(os.getpid(), signal.SIGUSR1)
        if not done.wait(DEADLINE):
            leader.release()  # a stuck loop then returns True and the test fails instead of hanging

    previous = signal.signal(signal.SIGUSR1, lambda _signum, _frame: stop.set())
    try:
        threading.Thread(target=poke, daemon=True).start()
        assert not wait_for_leadership(Noting(path=tmp_path / "trialwatch.db.lock"), poll_seconds=60, stop_event=stop)
    finally:
        done.set()
        signal.signal(signal.SIGUSR1, previous)
        leader.release()


def test_in_memory_sqlite_needs_no_lock_and_other_databases_are_refused():
    assert isinstance(leader_lock(engine_url="sqlite://"), ProcessLock)
    assert isinstance(leader_lock(engine_url="sqlite:///:memory:"), ProcessLock)
    with pytest.raises(StoreError, match="no leader lock for 'mysql'"):
        leader_lock(engine_url="mysql://user@host/db")


def test_the_advisory_key_never_changes():
    """Every replica and every version must compete for the same key: changing it allows two leaders."""
    assert ADVISORY_KEY == -7994235616734094337


# --- PostgreSQL: session advisory lock -----------------------------------------------------------


@pytest.fixture
def pg_locks(postgres_url: str) -> Iterator[tuple[AdvisoryLock, AdvisoryLock]]:
    first, second = leader_lock(engine_url=postgres_url), leader_lock(engine_url=postgres_url)
    assert isinstance(first, AdvisoryLock) and isinstance(second, AdvisoryLock)
    yield first, second
    first.release()
    second.release()


def test_only_one_postgres_lock_is_acquired(pg_locks: tuple[AdvisoryLock, AdvisoryLock]):
    first, second = pg_locks
    assert first.try_acquire() and first.held and first.check()
    assert not second.try_acquire() and not second.held and not second.check()
    with pytest.raises(LockHeld) as refused:
        second.acquire()
    message = refused.value.one_line()
    assert f"PostgreSQL advisory lock {ADVISORY_KEY}" in message
    assert f"pid {os.getpid()}" in message and f"PostgreSQL backend {first.backend_pid}" in message


def test_release_lets_the_other_acquire(pg_locks: tuple[AdvisoryLock, AdvisoryLock]):
    first, second = pg_locks
    assert first.try_acquire()
    first.release()
    assert not first.held and not first.check()
    assert second.try_acquire()


def test_a_dead_leader_connection_is_taken_over(pg_locks: tuple[AdvisoryLock, AdvisoryLock], postgres_url: str):
    first, second = pg_locks
    assert first.try_acquire()
    admin = create_engine(postgres_url, poolclass=NullPool)
    with admin.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first.backend_pid}).scalar()
    admin.dispose()
    take_over(second)
    assert not first.check(), "the old leader learns it lost the lock"
    assert not first.held


def test_a_killed_leader_process_is_taken_over_quickly(
    postgres_url: str, holders: list[Holder], record_property: Callable[[str, object], None]
):
    holder = Holder(postgres_url)
    holders.append(holder)
    assert holder.first_line() == "acquired"
    standby = leader_lock(engine_url=postgres_url)
    try:
        assert not standby.try_acquire()
        assert f"pid {holder.process.pid}" in standby.holder()
        holder.kill()
        seconds = take_over(standby, deadline=10.0)
        record_property("takeover_seconds", round(seconds, 3))
        assert standby.check()
    finally:
        standby.release()


def test_unreachable_postgres_is_a_store_error_and_the_standby_keeps_trying():
    stop = threading.Event()

    class Counting(AdvisoryLock):
        attempts = 0

        def try_acquire(self) -> bool:
            Counting.attempts += 1
            if Counting.attempts == 3:
                stop.set()
            return super().try_acquire()

    lock = Counting(engine_url="postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StoreError, match="cannot try the lock"):
        lock.try_acquire()
    assert not wait_for_leadership(lock, poll_seconds=0.01, stop_event=stop)
    assert Counting.attempts == 3 and not lock.held


def test_lock_sessions_ask_the_server_for_keepalives(postgres_url: str):
    """A leader whose host vanishes must lose the lock in about a minute, not after the kernel's two hours."""
    lock = leader_lock(engine_url=postgres_url)
    assert isinstance(lock, AdvisoryLock)
    with lock.engine.connect() as connection:
        assert connection.execute(text("SHOW tcp_keepalives_idle")).scalar() == "30"
        assert connection.execute(text("SHOW tcp_keepalives_count")).scalar() == "3"
