"""What each scheduled job does on the leader (poll the registry, pick up watches edited in the
database, poll the feeds and PubMed, deliver digests), and the `Runtime` they share. The wiring
(triggers, signals, leadership) is scheduler.py's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from watcher.daemon.health import Monitor
from watcher.daemon.lock import LeaderLock
from watcher.errors import StoreError, TrialwatchError
from watcher.registry.client import query_signature
from watcher.service import CycleReport, Service
from watcher.store import outbox
from watcher.store.db import transaction
from watcher.store.effective import refreshed_watches
from watcher.watch import WatchConfig

log = logging.getLogger(__name__)

WATCHES_EVERY = timedelta(seconds=30)  # watches edited in the database are polled within a minute
POLL_MARGIN = timedelta(minutes=2)  # the next poll's jitter: the history backfill stops this early


@dataclass
class Runtime:
    """What the jobs use; SIGHUP swaps `service` for one built from the re-read config."""

    service: Service
    clock: Callable[[], datetime]
    reload: Callable[[], Service] | None = None
    lock: LeaderLock | None = None
    monitor: Monitor | None = None
    lost_leadership: bool = False
    stop_asked: bool = False  # SIGTERM / SIGINT came (also after a lost lock: then no standby)
    request_stop: Callable[[str], None] | None = None
    lock_mutex: threading.Lock = field(default_factory=threading.Lock)
    poll_mutex: threading.Lock = field(default_factory=threading.Lock)  # one registry poll at a time
    unpolled: set[str] = field(default_factory=set)  # new or re-worded watches waiting for their baseline


def sources_of(service: Service) -> list[str]:
    """What /healthz reports on: each watch, each feed as `feed:NAME`, each watch's PubMed search
    as `pubmed:NAME`."""
    config = service.config
    pubmed = [f"pubmed:{watch.name}" for watch in config.pubmed_watches()]
    readouts = [f"crossref:{issn}" for issn in config.crossref.journals] if config.crossref.enabled else []
    readouts += [f"europepmc:{watch.name}" for watch in config.europepmc_watches()]
    return [watch.name for watch in config.watch] + [f"feed:{feed.name}" for feed in config.feed] + pubmed + readouts


def leading(runtime: Runtime) -> bool:
    """Still the leader? If not, no job runs again and the daemon stops."""
    if runtime.lock is None:
        return True
    with runtime.lock_mutex:  # the jobs and the watchdog share the lock's one connection
        if runtime.lost_leadership:
            return False
        if runtime.lock.check():
            return True
        runtime.lost_leadership = True
    log.error(
        "%s: leadership lost (or the database with it): polling and mail stop so that only the leader acts",
        runtime.lock.description,
    )
    if runtime.monitor is not None:
        runtime.monitor.set_leader(leader=False, at=runtime.clock())
    if runtime.request_stop is not None:
        runtime.request_stop("leadership lost")
    return False


def poll_job(runtime: Runtime) -> None:
    with runtime.poll_mutex:  # may have waited for the watches job's poll: a stop asked meanwhile wins
        if runtime.service.stopping.is_set() or not leading(runtime):
            return
        service = yielding(runtime, runtime.service)
        runtime.unpolled.difference_update(watch.name for watch in service.config.watch)
        try:
            # each watch's poll logs its own line; Crossref and Europe PMC have jobs of their own
            report = service.poll(runtime.clock(), feeds=False, readouts=False)
        except TrialwatchError as exc:
            log.error("poll failed: %s", exc.one_line())
            _note_store_error(runtime, exc)
            return
    _record_polls(runtime, report)


def yielding(runtime: Runtime, service: Service) -> Service:
    """The service whose history backfill (after its polls) stops as soon as a poll is due: the
    next scheduled one (less its jitter), a new or re-worded watch's, or a stop."""
    interval = service.config.clinicaltrials.poll_interval
    deadline = runtime.clock() + interval - min(POLL_MARGIN, interval / 2)

    def poll_due() -> bool:
        return runtime.stop_asked or bool(runtime.unpolled) or runtime.clock() >= deadline

    return replace(service, poll_due=poll_due)


def watches_job(runtime: Runtime) -> None:
    """Pick up watches created, edited or archived in the database; poll the new and re-worded ones
    now (unless a poll runs: then the next run of this job does)."""
    if not leading(runtime):
        return
    running = runtime.service.config
    try:
        with transaction(runtime.service.engine) as session:
            watches = refreshed_watches(session=session, running=running.watch)
    except (TrialwatchError, SQLAlchemyError) as exc:
        log.warning("cannot read the watches from the database: %s", str(exc).strip().splitlines()[0])
        return
    if watches != running.watch:
        _use_watches(runtime, watches)
    if runtime.unpolled and runtime.poll_mutex.acquire(blocking=False):
        try:
            _poll_unpolled(runtime)
        finally:
            runtime.poll_mutex.release()


def _use_watches(runtime: Runtime, watches: list[WatchConfig]) -> None:
    running = runtime.service.config
    before = {watch.name: watch for watch in running.watch}
    after = {watch.name: watch for watch in watches}
    added = [name for name in after if name not in before]
    edited = [name for name in after if name in before and after[name] != before[name]]
    archived = [name for name in before if name not in after]
    runtime.service = service = replace(runtime.service, config=running.with_watches(watches))
    reworded = [name for name in edited if query_signature(after[name]) != query_signature(before[name])]
    runtime.unpolled.update(added + reworded)  # a new query: its next poll is a baseline
    if runtime.monitor is not None:
        runtime.monitor.reconfigure(sources=sources_of(service), poll_interval=service.config.health_interval())
    log.info(
        "watches changed in the database: %d watch(es) now; new %s; edited %s; archived %s",
        len(watches), _names(added), _names(edited), _names(archived),
    )  # fmt: skip


def _poll_unpolled(runtime: Runtime) -> None:
    if not leading(runtime):
        return
    service = yielding(runtime, runtime.service)
    chosen = [watch for watch in service.config.watch if watch.name in runtime.unpolled]
    runtime.unpolled.clear()
    if not chosen:
        return
    try:
        report = replace(service, config=service.config.with_watches(chosen)).poll(
            runtime.clock(), feeds=False, readouts=False
        )
    except TrialwatchError as exc:
        log.error("poll failed: %s", exc.one_line())
        return
    _record_polls(runtime, report)


def _names(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names) or "none"


def feeds_job(runtime: Runtime) -> None:
    if not leading(runtime):
        return
    try:
        report = runtime.service.poll_feeds(runtime.clock())  # each feed's poll logs its own line
    except TrialwatchError as exc:
        log.error("feeds poll failed: %s", exc.one_line())
        _note_store_error(runtime, exc)
        return
    _record_polls(runtime, report)


def pubmed_job(runtime: Runtime) -> None:
    if not leading(runtime) or runtime.service.pubmed is None:
        return
    try:
        report = runtime.service.poll_pubmed(runtime.clock())  # each watch's poll logs its own line
    except TrialwatchError as exc:
        log.error("PubMed poll failed: %s", exc.one_line())
        _note_store_error(runtime, exc)
        return
    _record_polls(runtime, report)


def crossref_job(runtime: Runtime) -> None:
    _readouts_job(runtime, "crossref")


def europepmc_job(runtime: Runtime) -> None:
    _readouts_job(runtime, "europepmc")


def _readouts_job(runtime: Runtime, source: str) -> None:
    if not leading(runtime) or getattr(runtime.service, source) is None:
        return
    try:
        report = runtime.service.poll_readouts(runtime.clock(), source=source)  # each poll logs its own line
    except TrialwatchError as exc:
        log.error("%s poll failed: %s", source, exc.one_line())
        return
    _record_polls(runtime, report)


def digest_job(runtime: Runtime) -> None:
    if not leading(runtime):
        return
    started = time.monotonic()
    try:
        delivery = runtime.service.deliver(runtime.clock())
    except TrialwatchError as exc:
        log.error("digest failed: %s", exc.one_line())
        _note_store_error(runtime, exc)
        return
    if runtime.monitor is not None:
        runtime.monitor.set_storage_error("outbox", delivery.storage_error)
        if delivery.sent or not delivery.failed:
            runtime.monitor.set_storage_error("database", None)
        seconds = time.monotonic() - started
        runtime.monitor.delivery_finished(sent=len(delivery.sent), failed=len(delivery.failed), seconds=seconds)
        _count_pending(runtime, runtime.monitor)


def _record_polls(runtime: Runtime, report: CycleReport) -> None:
    monitor = runtime.monitor
    if monitor is None:
        return
    at = runtime.clock()
    full = next((poll.error for poll in report.polls if poll.error and poll.error.startswith("database full:")), None)
    if full is not None or any(poll.ok for poll in report.polls):
        monitor.set_storage_error("database", full)
    for poll in report.polls:
        monitor.poll_finished(
            source=poll.watch, at=at, seconds=poll.seconds, error=poll.error, requests=poll.requests, changes=poll.kinds
        )
    for pubmed in report.pubmed:
        monitor.poll_finished(source=f"pubmed:{pubmed.watch}", at=at, seconds=pubmed.seconds, error=pubmed.error,
                              requests=pubmed.requests)  # fmt: skip
    for readout in report.readouts:
        monitor.poll_finished(source=readout.name, at=at, seconds=readout.seconds, error=readout.error,
                              requests=readout.requests)  # fmt: skip
    for feed in report.feeds:
        if feed.status != "not_due":
            monitor.poll_finished(source=f"feed:{feed.feed}", at=at, seconds=feed.seconds, error=feed.error)
    _count_pending(runtime, monitor)


def _note_store_error(runtime: Runtime, exc: TrialwatchError) -> None:
    """A job failed: when on the database (full, its file gone), /healthz says so (degraded)."""
    if runtime.monitor is not None and isinstance(exc, StoreError):
        runtime.monitor.set_storage_error("database", exc.one_line())


def _count_pending(runtime: Runtime, monitor: Monitor) -> None:
    try:
        with transaction(runtime.service.engine) as session:
            monitor.set_pending_deliveries(count=outbox.count_pending_notifications(session=session))
    except (TrialwatchError, SQLAlchemyError) as exc:
        log.warning("cannot count pending deliveries: %s", exc)
