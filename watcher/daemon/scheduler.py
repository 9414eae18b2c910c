"""APScheduler 3 wiring only: a poll job and a digest job, rebuilt from the config at start.

The poll job runs at start and then every `[clinicaltrials] poll_interval` (with a little
jitter); the PubMed job, when [pubmed] is enabled, likewise every `[pubmed] poll_interval`.
The feeds job runs every minute and polls the feeds that are due by their own schedule (interval,
`ttl`, backoff after failures: all stored, see literature.pipeline). The digest job runs every
minute and asks the outbox what is due (delivery.due_watches): schedules are computed from
stored state and the configured time zone, so a late or restarted daemon neither skips nor
doubles a digest, and a failed delivery is retried on a later run.
Jobs keep no state of their own (memory job store; our tables hold everything), never overlap
(`max_instances=1`), collapse missed runs into one (`coalesce`) and still run when late
(`misfire_grace_time`). SIGTERM / SIGINT stop the daemon after the job in hand; SIGHUP re-reads
the config file, and a bad file is refused with one line while the old config keeps running.

The watches job runs every 30 seconds: it reads the active watches from the database and, when a
watch was created, edited or archived there (the browser, the API), the next jobs use the new list
and a new or re-worded watch is polled at once (its baseline starts then).

Only the holder of the leader lock (watcher.daemon.lock) runs jobs. Each job checks the lock first; once
it is lost (or the database with it) the scheduler stops at once, storing and sending nothing more,
so a standby that took over never acts alongside this process; `trialwatch run` then stands by
and leads again when it can take the lock, its web server serving all along.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, timedelta
from types import FrameType

from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watcher.daemon import signals
from watcher.daemon.health import Monitor
from watcher.daemon.jobs import (
    WATCHES_EVERY,
    Runtime,
    crossref_job,
    digest_job,
    europepmc_job,
    feeds_job,
    leading,
    poll_job,
    pubmed_job,
    sources_of,
    watches_job,
)
from watcher.daemon.lock import LeaderLock, wait_for_leadership
from watcher.errors import TrialwatchError

__all__ = ["Runtime", "build_scheduler", "poll_trigger", "reload_config", "run_forever", "sources_of", "stand_by"]

log = logging.getLogger(__name__)

CHECK_EVERY = timedelta(minutes=1)  # digests due, feeds due (each feed keeps its own schedule)
MAX_JITTER = timedelta(minutes=2)
STANDBY_POLL_SECONDS = 10.0
START_GRACE_SECONDS = 30.0
WATCHDOG_SECONDS = 3.0
MAIN_THREAD_TICK_SECONDS = 1.0  # how late a signal handed to another thread may be seen
READOUT_JOBS: tuple[tuple[str, str, Callable[[Runtime], None]], ...] = (
    ("crossref", "poll Crossref's meeting abstracts", crossref_job),
    ("europepmc", "poll Europe PMC", europepmc_job),
)


def poll_trigger(interval: timedelta) -> IntervalTrigger:
    """Every `interval`, a few percent of jitter (at most two minutes) so replicas and restarts
    do not all hit the registry at the same second."""
    jitter = min(interval * 0.05, MAX_JITTER).total_seconds()
    return IntervalTrigger(seconds=interval.total_seconds(), jitter=int(jitter) or None, timezone=UTC)


def build_scheduler(runtime: Runtime) -> BlockingScheduler:
    """Three jobs (four with PubMed), each first run at once (a new leader or a restart does what is overdue), never
    two at a time, missed runs collapsed into one, however late."""
    scheduler = BlockingScheduler(timezone=UTC)
    every_minute = IntervalTrigger(seconds=CHECK_EVERY.total_seconds(), timezone=UTC)
    jobs: list[tuple[str, str, Callable[[Runtime], None], IntervalTrigger]] = [
        (
            "poll",
            "poll ClinicalTrials.gov",
            poll_job,
            poll_trigger(runtime.service.config.clinicaltrials.poll_interval),
        ),
        ("feeds", "poll the journal feeds that are due", feeds_job, every_minute),
        ("digest", "deliver due digests", digest_job, every_minute),
        ("watches", "pick up watches edited in the database", watches_job,
         IntervalTrigger(seconds=WATCHES_EVERY.total_seconds(), timezone=UTC)),
    ]  # fmt: skip
    if runtime.service.config.pubmed.enabled:
        jobs.append(("pubmed", "poll PubMed", pubmed_job, poll_trigger(runtime.service.config.pubmed.poll_interval)))
    for job_id, name, job in READOUT_JOBS:
        settings = getattr(runtime.service.config, job_id)
        if settings.enabled:
            jobs.append((job_id, name, job, poll_trigger(settings.poll_interval)))
    for job_id, name, job, trigger in jobs:
        scheduler.add_job(
            job, trigger, args=(runtime,), id=job_id, name=name, next_run_time=runtime.clock(),
            max_instances=1, coalesce=True, misfire_grace_time=None,
        )  # fmt: skip
    return scheduler


def run_forever(runtime: Runtime, noted: list[int] | None = None) -> None:
    """Run the jobs (a BlockingScheduler in this thread); return after SIGTERM or SIGINT, or a lost
    leader lock, once the job in hand has finished."""
    scheduler = build_scheduler(runtime)
    control = _Control(runtime, scheduler)
    runtime.request_stop = control.stop
    previous = {sig: signal.signal(sig, control.on_signal) for sig in signals.SIGNALS}
    control.watch_leadership()
    control.wake_main_thread()
    for signum in noted or []:
        control.on_signal(signum, None)  # a stop asked for while starting: the scheduler stops at once
    try:
        log.info(
            "daemon started: polling every %s, checking digests every minute",
            runtime.service.config.clinicaltrials.poll_interval,
        )
        scheduler.start()  # returns once _Control has shut it down
        control.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if runtime.lost_leadership and not runtime.stop_asked:
            log.info("jobs stopped: nothing more is polled or sent until this process leads again")
        else:
            log.info("daemon stopped")


class _Control:
    """Acts on signals and on a lost leader lock from threads of its own. A signal handler only
    starts one: nothing that takes the scheduler's locks or waits for a job runs inside the handler,
    so a signal that arrives while the scheduler starts or a job runs cannot deadlock the daemon."""

    def __init__(self, runtime: Runtime, scheduler: BlockingScheduler) -> None:
        self.runtime, self.scheduler = runtime, scheduler
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            self._spawn(reload_config, self.runtime, self.scheduler)
        elif self.runtime.stop_asked:  # asked twice: do not wait for the job in hand
            log.warning("received %s again: exiting now; unfinished work is rolled back", name)
            os._exit(1)
        else:
            self.runtime.stop_asked = True
            self.stop(f"received {name}")

    def stop(self, why: str) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.runtime.service.stopping.set()  # the job in hand stores nothing more and sends nothing more
        log.info("%s: stopping after the job in hand", why)
        self._spawn(self._shut_down)

    def watch_leadership(self) -> None:
        """Check the leader lock every few seconds, also while a long job runs: once it is lost,
        the job in hand stops before storing or sending anything more."""
        if self.runtime.lock is None:
            return

        def watchdog() -> None:
            while not self.stopping.wait(WATCHDOG_SECONDS):
                if not leading(self.runtime):
                    return

        self._spawn(watchdog)

    def wake_main_thread(self) -> None:
        """Python runs a signal handler in the main thread, and only once that thread runs again;
        the kernel may hand SIGTERM to any thread (uvicorn's, a job's), leaving the main thread
        asleep in the scheduler's wait until its next job (up to 30 s, seen in tests). Waking the
        scheduler every second bounds that delay to a second."""

        def tick() -> None:
            while not self.stopping.wait(MAIN_THREAD_TICK_SECONDS):
                if self.scheduler.state == STATE_RUNNING:
                    self.scheduler.wakeup()

        self._spawn(tick)

    def _shut_down(self) -> None:
        deadline = time.monotonic() + START_GRACE_SECONDS
        while self.scheduler.state != STATE_RUNNING and time.monotonic() < deadline:
            time.sleep(0.05)  # a signal that came while the scheduler was still starting
        with contextlib.suppress(SchedulerNotRunningError):  # it never started
            self.scheduler.shutdown(wait=True)  # waits for the job in hand

    def _spawn(self, target: Callable[..., object], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name="trialwatch-control", daemon=True)
        self.threads.append(thread)
        thread.start()

    def join(self) -> None:
        self.stopping.set()  # ends the watchdog
        for thread in list(self.threads):
            thread.join()


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
    old_pubmed = runtime.service.config.pubmed.poll_interval
    old_readouts = {job_id: getattr(runtime.service.config, job_id).poll_interval for job_id, _, _ in READOUT_JOBS}
    runtime.service = service
    new_interval = service.config.clinicaltrials.poll_interval
    if runtime.monitor is not None:
        runtime.monitor.reconfigure(sources=sources_of(service), poll_interval=service.config.health_interval())
    if new_interval != old_interval:
        scheduler.reschedule_job("poll", trigger=poll_trigger(new_interval))
    _pubmed_schedule(runtime, scheduler, old_pubmed)
    _readout_schedules(runtime, scheduler, old_readouts)
    log.info("config reloaded from %s: %d watch(es), polling every %s", service.config.path,
             len(service.config.watch), new_interval)  # fmt: skip
    return True


def _pubmed_schedule(runtime: Runtime, scheduler: BlockingScheduler, old_interval: timedelta) -> None:
    """After a reload: the PubMed job added when [pubmed] was just enabled (it runs at once), or
    rescheduled when its interval changed (when disabled it stays and does nothing)."""
    interval = runtime.service.config.pubmed.poll_interval
    if scheduler.get_job("pubmed") is None:
        if runtime.service.config.pubmed.enabled:
            scheduler.add_job(
                pubmed_job, poll_trigger(interval), args=(runtime,), id="pubmed", name="poll PubMed",
                next_run_time=runtime.clock(), max_instances=1, coalesce=True, misfire_grace_time=None,
            )  # fmt: skip
    elif interval != old_interval:
        scheduler.reschedule_job("pubmed", trigger=poll_trigger(interval))


def _readout_schedules(runtime: Runtime, scheduler: BlockingScheduler, old: dict[str, timedelta]) -> None:
    """After a reload, as for PubMed: Crossref's and Europe PMC's jobs added when just enabled (they
    run at once), rescheduled when their interval changed."""
    for job_id, name, job in READOUT_JOBS:
        settings = getattr(runtime.service.config, job_id)
        if scheduler.get_job(job_id) is None:
            if settings.enabled:
                scheduler.add_job(
                    job, poll_trigger(settings.poll_interval), args=(runtime,), id=job_id, name=name,
                    next_run_time=runtime.clock(), max_instances=1, coalesce=True, misfire_grace_time=None,
                )  # fmt: skip
        elif settings.poll_interval != old[job_id]:
            scheduler.reschedule_job(job_id, trigger=poll_trigger(settings.poll_interval))


def stand_by(lock: LeaderLock, *, poll_seconds: float = STANDBY_POLL_SECONDS, monitor: Monitor | None = None) -> bool:
    """Wait for the leader lock (PostgreSQL replicas, and any replica that lost it); False once
    SIGTERM or SIGINT asked to stop first (a second one exits at once). The handlers in place
    before (watcher.daemon.signals's) are put back on return, so a signal that comes right after
    the takeover is still acted on. `monitor` learns whether the database answers."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            log.info("received SIGHUP while standing by: the config is read when this daemon takes over")
        elif stop.is_set():
            log.warning("received %s again: exiting now", name)
            os._exit(1)
        else:
            log.info("received %s while standing by: stopping", name)
            stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in signals.SIGNALS}
    on_database = monitor.set_database_error if monitor is not None else None
    try:
        return wait_for_leadership(lock, poll_seconds=poll_seconds, stop_event=stop, on_database=on_database)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
