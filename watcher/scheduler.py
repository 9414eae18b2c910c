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
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watcher.errors import TrialwatchError
from watcher.service import Service

log = logging.getLogger(__name__)

DIGEST_CHECK_EVERY = timedelta(minutes=1)
FEEDS_CHECK_EVERY = timedelta(minutes=1)  # each feed keeps its own schedule (interval, ttl, backoff)
MISFIRE_GRACE = timedelta(hours=1)
MAX_JITTER = timedelta(minutes=2)


@dataclass
class Runtime:
    """What the jobs use; SIGHUP swaps `service` for one built from the re-read config."""

    service: Service
    clock: Callable[[], datetime]
    reload: Callable[[], Service] | None = None


def poll_trigger(interval: timedelta) -> IntervalTrigger:
    """Every `interval`, a few percent of jitter (at most two minutes) so replicas and restarts
    do not all hit the registry at the same second."""
    jitter = min(interval * 0.05, MAX_JITTER).total_seconds()
    return IntervalTrigger(seconds=interval.total_seconds(), jitter=int(jitter) or None, timezone=UTC)


def build_scheduler(runtime: Runtime) -> BlockingScheduler:
    scheduler = BlockingScheduler(timezone=UTC)
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
    """Start the scheduler; return after SIGTERM or SIGINT once the running job has finished."""
    scheduler = build_scheduler(runtime)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping after the job in hand", signal.Signals(signum).name)
        scheduler.shutdown(wait=True)

    def reload(_signum: int, _frame: FrameType | None) -> None:
        reload_config(runtime, scheduler)

    handlers: dict[int, Any] = {signal.SIGTERM: stop, signal.SIGINT: stop, signal.SIGHUP: reload}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        log.info(
            "daemon started: polling every %s, checking digests every minute",
            runtime.service.config.clinicaltrials.poll_interval,
        )
        scheduler.start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("daemon stopped")


def reload_config(runtime: Runtime, scheduler: BlockingScheduler) -> bool:
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
    if new_interval != old_interval:
        scheduler.reschedule_job("poll", trigger=poll_trigger(new_interval))
    log.info("config reloaded from %s: %d watch(es), polling every %s", service.config.path,
             len(service.config.watch), new_interval)  # fmt: skip
    return True


def _poll_job(runtime: Runtime) -> None:
    try:
        runtime.service.poll(runtime.clock(), feeds=False)  # each watch's poll logs its own line
    except TrialwatchError as exc:
        log.error("poll failed: %s", exc.one_line())


def _feeds_job(runtime: Runtime) -> None:
    try:
        runtime.service.poll_feeds(runtime.clock())  # each feed's poll logs its own line
    except TrialwatchError as exc:
        log.error("feeds poll failed: %s", exc.one_line())


def _digest_job(runtime: Runtime) -> None:
    try:
        runtime.service.deliver(runtime.clock())
    except TrialwatchError as exc:
        log.error("digest failed: %s", exc.one_line())
