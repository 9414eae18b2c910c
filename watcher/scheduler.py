"""APScheduler 3 wiring only: a poll job and a digest job, rebuilt from the config at start.

The poll job runs at start and then every `[clinicaltrials] poll_interval` (with a little
jitter). The feeds job runs every minute and polls the feeds that are due by their own schedule
(interval, `ttl`, backoff after failures: all stored, see feed_pipeline). The digest job runs
every minute and asks the outbox what is due (delivery.due_watches):
schedules are computed from stored state and the configured time zone, so a late or restarted
daemon neither skips nor doubles a digest, and a failed delivery is retried on a later run.
Jobs keep no state of their own (memory job store; our tables hold everything), never overlap
(`max_instances=1`), collapse missed runs into one (`coalesce`) and still run when late
(`misfire_grace_time`). SIGTERM / SIGINT stop the daemon after the job in hand; SIGHUP re-reads
the config file, and a bad file is refused with one line while the old config keeps running.

Only the holder of the leader lock (watcher.lock) runs jobs. Each job checks the lock first; once
it is lost the scheduler stops at once (and `trialwatch run` exits 1 for its supervisor to
restart it as a standby), so a standby that took over never acts alongside this process.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import SQLAlchemyError

from watcher.errors import TrialwatchError
from watcher.health import Monitor
from watcher.lock import LeaderLock, wait_for_leadership
from watcher.service import CycleReport, Service
from watcher.store import repo
from watcher.store.db import transaction

log = logging.getLogger(__name__)

DIGEST_CHECK_EVERY = timedelta(minutes=1)
FEEDS_CHECK_EVERY = timedelta(minutes=1)  # each feed keeps its own schedule (interval, ttl, backoff)
MISFIRE_GRACE = timedelta(hours=1)
MAX_JITTER = timedelta(minutes=2)
STANDBY_POLL_SECONDS = 10.0
WAKE_SECONDS = 0.5


@dataclass
class Runtime:
    """What the jobs use; SIGHUP swaps `service` for one built from the re-read config."""

    service: Service
    clock: Callable[[], datetime]
    reload: Callable[[], Service] | None = None
    lock: LeaderLock | None = None
    monitor: Monitor | None = None
    lost_leadership: bool = False


def poll_trigger(interval: timedelta) -> IntervalTrigger:
    """Every `interval`, a few percent of jitter (at most two minutes) so replicas and restarts
    do not all hit the registry at the same second."""
    jitter = min(interval * 0.05, MAX_JITTER).total_seconds()
    return IntervalTrigger(seconds=interval.total_seconds(), jitter=int(jitter) or None, timezone=UTC)


def build_scheduler(runtime: Runtime) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone=UTC)
    common: dict[str, Any] = {
        "max_instances": 1,
        "coalesce": True,
        "misfire_grace_time": int(MISFIRE_GRACE.total_seconds()),
    }
    scheduler.add_job(
        _poll_job,
        poll_trigger(runtime.service.config.clinicaltrials.poll_interval),
        args=(runtime,),
        id="poll",
        name="poll ClinicalTrials.gov",
        next_run_time=runtime.clock(),
        **common,
    )
    scheduler.add_job(
        _feeds_job,
        IntervalTrigger(seconds=FEEDS_CHECK_EVERY.total_seconds(), timezone=UTC),
        args=(runtime,),
        id="feeds",
        name="poll the journal feeds that are due",
        next_run_time=runtime.clock(),
        **common,
    )
    scheduler.add_job(
        _digest_job,
        IntervalTrigger(seconds=DIGEST_CHECK_EVERY.total_seconds(), timezone=UTC),
        args=(runtime,),
        id="digest",
        name="deliver due digests",
        **common,
    )
    return scheduler


def run_forever(runtime: Runtime) -> None:
    """Run the jobs; return after SIGTERM or SIGINT, or a lost leader lock, once the running job has finished.

    Signal handlers only note the signal; this thread acts on it (stop, reload), never inside a
    handler, so a signal that arrives while the scheduler starts or a job runs cannot deadlock it.
    """
    scheduler = build_scheduler(runtime)
    received: list[int] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)  # list.append takes no lock: safe in a handler

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        log.info(
            "daemon started: polling every %s, checking digests every minute",
            runtime.service.config.clinicaltrials.poll_interval,
        )
        scheduler.start()
        while _carry_on(runtime, scheduler, received):
            time.sleep(WAKE_SECONDS)
        scheduler.shutdown(wait=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("daemon stopped")


def _carry_on(runtime: Runtime, scheduler: BackgroundScheduler, received: list[int]) -> bool:
    """Act on the signals noted since the last look; False once it is time to stop."""
    while received:
        signum = received.pop(0)
        if signum == signal.SIGHUP:
            reload_config(runtime, scheduler)
        else:
            log.info("received %s: stopping after the job in hand", signal.Signals(signum).name)
            return False
    return not runtime.lost_leadership


def reload_config(runtime: Runtime, scheduler: BackgroundScheduler) -> bool:
    """Re-read the config; on success the next jobs use it, on failure the old one stays."""
    if runtime.reload is None:
        return False
    try:
        service = runtime.reload()
    except TrialwatchError as exc:
        log.error("config reload refused, keeping the running config: %s", exc.one_line())
        return False
    old_interval = runtime.service.config.clinicaltrials.poll_interval
    runtime.service = service
    new_interval = service.config.clinicaltrials.poll_interval
    if runtime.monitor is not None:
        runtime.monitor.reconfigure(sources=[w.name for w in service.config.watch], poll_interval=new_interval)
    if new_interval != old_interval:
        scheduler.reschedule_job("poll", trigger=poll_trigger(new_interval))
    log.info("config reloaded from %s: %d watch(es), polling every %s", service.config.path,
             len(service.config.watch), new_interval)  # fmt: skip
    return True


def stand_by(lock: LeaderLock, *, poll_seconds: float = STANDBY_POLL_SECONDS) -> bool:
    """Wait for the leader lock (PostgreSQL replicas); False once SIGTERM or SIGINT asked to stop first."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s while standing by: stopping", signal.Signals(signum).name)
        stop.set()

    handlers: dict[int, Any] = {signal.SIGTERM: on_signal, signal.SIGINT: on_signal, signal.SIGHUP: signal.SIG_IGN}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        return wait_for_leadership(lock, poll_seconds=poll_seconds, stop_event=stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _leading(runtime: Runtime) -> bool:
    """Still the leader? If not, no job runs again: run_forever stops within WAKE_SECONDS."""
    if runtime.lock is None or runtime.lock.check():
        return True
    if not runtime.lost_leadership:
        log.error("%s: leadership lost; stopping so that only the new leader acts", runtime.lock.description)
        runtime.lost_leadership = True
        if runtime.monitor is not None:
            runtime.monitor.set_leader(leader=False, at=runtime.clock())
    return False


def _poll_job(runtime: Runtime) -> None:
    if not _leading(runtime):
        return
    try:
        report = runtime.service.poll(runtime.clock(), feeds=False)  # each watch's poll logs its own line
    except TrialwatchError as exc:
        log.error("poll failed: %s", exc.one_line())
        return
    _record_polls(runtime, report)


def _feeds_job(runtime: Runtime) -> None:
    if not _leading(runtime):
        return
    try:
        report = runtime.service.poll_feeds(runtime.clock())  # each feed's poll logs its own line
    except TrialwatchError as exc:
        log.error("feeds poll failed: %s", exc.one_line())
        return
    _record_polls(runtime, report)


def _digest_job(runtime: Runtime) -> None:
    if not _leading(runtime):
        return
    started = time.monotonic()
    try:
        delivery = runtime.service.deliver(runtime.clock())
    except TrialwatchError as exc:
        log.error("digest failed: %s", exc.one_line())
        return
    if runtime.monitor is not None:
        seconds = time.monotonic() - started
        runtime.monitor.delivery_finished(sent=len(delivery.sent), failed=len(delivery.failed), seconds=seconds)
        _count_pending(runtime, runtime.monitor)


def _record_polls(runtime: Runtime, report: CycleReport) -> None:
    monitor = runtime.monitor
    if monitor is None:
        return
    at = runtime.clock()
    for poll in report.polls:
        monitor.poll_finished(
            source=poll.watch, at=at, seconds=poll.seconds, error=poll.error, requests=poll.requests, changes=poll.kinds
        )
    for feed in report.feeds:
        if feed.status != "not_due":
            monitor.poll_finished(source=f"feed:{feed.feed}", at=at, seconds=feed.seconds, error=feed.error)
    _count_pending(runtime, monitor)


def _count_pending(runtime: Runtime, monitor: Monitor) -> None:
    try:
        with transaction(runtime.service.engine) as session:
            monitor.set_pending_deliveries(count=repo.count_pending_notifications(session=session))
    except (TrialwatchError, SQLAlchemyError) as exc:
        log.warning("cannot count pending deliveries: %s", exc)
