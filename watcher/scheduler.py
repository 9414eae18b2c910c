"""APScheduler 3 wiring only: a poll job and a digest job; SIGTERM / SIGINT stop between jobs.

The poll job runs at start and then every `[clinicaltrials] poll_interval`. The digest job runs
every minute and asks the outbox what is due (delivery.due_watches): schedules are computed
from stored state and the configured time zone, so a late or restarted daemon neither skips
nor doubles a digest, and a failed delivery is retried on the next run.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watcher.errors import TrialwatchError
from watcher.service import Service

log = logging.getLogger(__name__)

DIGEST_CHECK_EVERY = timedelta(minutes=1)


def build_scheduler(service: Service, clock: Callable[[], datetime]) -> BlockingScheduler:
    scheduler = BlockingScheduler(timezone=UTC)
    common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 3600}
    scheduler.add_job(
        _poll_job,
        IntervalTrigger(seconds=service.config.clinicaltrials.poll_interval.total_seconds(), timezone=UTC),
        args=(service, clock),
        id="poll",
        name="poll ClinicalTrials.gov",
        next_run_time=clock(),
        **common,
    )
    scheduler.add_job(
        _digest_job,
        IntervalTrigger(seconds=DIGEST_CHECK_EVERY.total_seconds(), timezone=UTC),
        args=(service, clock),
        id="digest",
        name="deliver due digests",
        **common,
    )
    return scheduler


def run_forever(service: Service, clock: Callable[[], datetime]) -> None:
    """Start the scheduler; return after SIGTERM or SIGINT once the running job has finished."""
    scheduler = build_scheduler(service, clock)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping after the job in hand", signal.Signals(signum).name)
        scheduler.shutdown(wait=True)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        log.info(
            "daemon started: polling every %s, checking digests every minute",
            service.config.clinicaltrials.poll_interval,
        )
        scheduler.start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("daemon stopped")


def _poll_job(service: Service, clock: Callable[[], datetime]) -> None:
    try:
        service.poll(clock())  # each watch's poll logs its own line, failures included
    except TrialwatchError as exc:
        log.error("poll failed: %s", exc.one_line())


def _digest_job(service: Service, clock: Callable[[], datetime]) -> None:
    try:
        service.deliver(clock())
    except TrialwatchError as exc:
        log.error("digest failed: %s", exc.one_line())
