"""What one scheduled job does, shared by the CLI and the daemon: poll everything, deliver.

The journal feeds' and PubMed's pipelines (feedparser and their parsers) are imported when there
is a feed or a PubMed client to poll, not by every command that makes a Service.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import requests
from sqlalchemy import Engine

from watcher.config import Config
from watcher.errors import SourceError
from watcher.http import make_session
from watcher.mail.delivery import DeliveryReport, deliver, due_watches, immediate_watches
from watcher.mail.links import LinkSigner
from watcher.mail.transport import Transport
from watcher.registry.backfill import BackfillReport, run_backfill
from watcher.registry.citing import CiteReport, cite_poll_changes
from watcher.registry.client import CtgovClient, Page
from watcher.registry.pipeline import Plan, PollReport, plan_poll, poll_watch, record_failure
from watcher.registry.version_history import VersionHistoryClient
from watcher.store import db, repo

if TYPE_CHECKING:
    from watcher.literature.crossref import CrossrefClient
    from watcher.literature.europepmc import EuropepmcClient
    from watcher.literature.pipeline import FeedReport
    from watcher.literature.pubmed import PubmedClient
    from watcher.literature.pubmed_pipeline import PubmedReport
    from watcher.literature.readout_pipeline import ReadoutReport

log = logging.getLogger(__name__)

READOUT_SOURCES = ("crossref", "europepmc")  # polled after PubMed, in this order (#20)


@dataclass
class CycleReport:
    polls: list[PollReport] = field(default_factory=list)
    feeds: list[FeedReport] = field(default_factory=list)
    pubmed: list[PubmedReport] = field(default_factory=list)
    readouts: list[ReadoutReport] = field(default_factory=list)  # Crossref journals, Europe PMC watches (#20)
    delivery: DeliveryReport = field(default_factory=DeliveryReport)
    cited: CiteReport | None = None  # the registry version pairs of the changes found ([clinicaltrials] history)
    backfill: BackfillReport | None = None  # the registry's version history, after the polls

    @property
    def failed_sources(self) -> list[str]:
        registry = [f"{poll.watch}: {poll.error}" for poll in self.polls if not poll.ok]
        pubmed = [f"pubmed {report.watch}: {report.error}" for report in self.pubmed if not report.ok]
        readouts = [f"{report.name}: {report.error}" for report in self.readouts if not report.ok]
        return registry + [f"feed {feed.feed}: {feed.error}" for feed in self.feeds if not feed.ok] + pubmed + readouts

    def lines(self) -> list[str]:
        lines = [poll.line() for poll in self.polls] + [feed.line() for feed in self.feeds]
        lines += [report.line() for report in self.pubmed] + [report.line() for report in self.readouts]
        if self.backfill is not None and (self.backfill.studies or self.backfill.failed):
            lines.append(self.backfill.line())
        return lines


@dataclass
class Service:
    """Everything a job needs, chosen once by the CLI."""

    config: Config
    engine: Engine
    client: CtgovClient
    transport: Transport
    feed_http: requests.Session = field(default_factory=make_session)
    stopping: threading.Event = field(default_factory=threading.Event)  # set: finish nothing new
    pubmed: PubmedClient | None = None  # None: [pubmed] is not enabled
    crossref: CrossrefClient | None = None  # None: [crossref] is not enabled
    europepmc: EuropepmcClient | None = None  # None: [europepmc] is not enabled
    links: LinkSigner | None = None  # unsubscribe and manage links in every message (the web app is public)
    poll_due: Callable[[], bool] = lambda: False  # the daemon: a poll waits; the history backfill yields to it

    @property
    def history(self) -> VersionHistoryClient:
        """The registry's version history, over the registry client's HTTP client (one pacing)."""
        return VersionHistoryClient(self.client.http, self.config.clinicaltrials.history_url)

    def backfill(self, now: datetime, *, limit: int | None = None, nct_ids: list[str] | None = None) -> BackfillReport:
        """Backfill due studies from the registry's version history (or these), until `limit` or
        a poll is due; nothing when [clinicaltrials] history is false."""
        settings = self.config.clinicaltrials
        if not settings.history:
            return BackfillReport()
        return run_backfill(
            engine=self.engine, api=self.history, settings=settings, now=now,
            limit=settings.history_per_cycle if limit is None else limit, nct_ids=nct_ids,
            should_stop=lambda: self.stopping.is_set() or self.poll_due(),
        )  # fmt: skip

    def poll(
        self,
        now: datetime,
        on_page: Callable[[str, Page], None] | None = None,
        *,
        force_full: bool = False,
        feeds: bool = True,
        pubmed: bool = True,
        readouts: bool = True,
    ) -> CycleReport:
        """Poll every watch (asking /version first), with `feeds` every feed whether due or not,
        with `pubmed` PubMed for every watch (after the registry: it searches for the trials the
        watches hold), with `readouts` Crossref and Europe PMC (#20, last); then send what is due
        for immediate watches."""
        report = CycleReport()
        self._poll_registry(report, now, on_page, force_full)
        if self.config.clinicaltrials.history and any(poll.changes for poll in report.polls):
            report.cited = cite_poll_changes(
                engine=self.engine, api=self.history, now=now, should_stop=self.stopping.is_set
            )
        if feeds:
            report.feeds = self._poll_feeds(now, force=True)
        if pubmed:
            report.pubmed = self._poll_pubmed(now)
        if readouts:
            report.readouts = self._poll_readouts(now)
        immediate = immediate_watches(self.config.watch)
        if immediate:
            report.delivery = self.deliver(now, watches=immediate)
        if report.polls and not self.stopping.is_set():  # last, at a low priority: never before the mail
            report.backfill = self.backfill(now)
        return report

    def poll_feeds(self, now: datetime) -> CycleReport:
        """Poll the feeds that are due; then send what is due for immediate watches (daemon job)."""
        report = CycleReport(feeds=self._poll_feeds(now, force=False))
        immediate = immediate_watches(self.config.watch)
        if immediate and any(feed.changes for feed in report.feeds):
            report.delivery = self.deliver(now, watches=immediate)
        return report

    def poll_pubmed(self, now: datetime) -> CycleReport:
        """Poll PubMed for every watch that takes part; then send what is due for immediate
        watches (daemon job)."""
        report = CycleReport(pubmed=self._poll_pubmed(now))
        immediate = immediate_watches(self.config.watch)
        if immediate and any(item.changes for item in report.pubmed):
            report.delivery = self.deliver(now, watches=immediate)
        return report

    def poll_readouts(self, now: datetime, *, source: str) -> CycleReport:
        """Poll Crossref's journals (`source` "crossref") or Europe PMC for every watch that takes
        part ("europepmc"); then send what is due for immediate watches (daemon jobs)."""
        report = CycleReport(readouts=self._poll_readouts(now, sources=(source,)))
        immediate = immediate_watches(self.config.watch)
        if immediate and any(item.changes for item in report.readouts):
            report.delivery = self.deliver(now, watches=immediate)
        return report

    def _poll_readouts(
        self, now: datetime, sources: tuple[str, ...] = ("crossref", "europepmc")
    ) -> list[ReadoutReport]:
        """Crossref journal by journal, then Europe PMC watch by watch (after the registry and
        PubMed: they look for the trials the watches hold and tell each watch once)."""
        reports: list[ReadoutReport] = []
        if self.crossref is not None and "crossref" in sources:
            from watcher.literature.crossref_pipeline import poll_crossref

            for issn in self.config.crossref.journals:
                if self.stopping.is_set():
                    return reports
                reports.append(poll_crossref(engine=self.engine, client=self.crossref, config=self.config, issn=issn,
                                             now=now, stopping=self.stopping))  # fmt: skip
        if self.europepmc is not None and "europepmc" in sources:
            from watcher.literature.europepmc_pipeline import poll_europepmc

            for watch in self.config.europepmc_watches():
                if self.stopping.is_set():
                    return reports
                overlap = self.config.europepmc.overlap_days
                reports.append(poll_europepmc(engine=self.engine, client=self.europepmc, watch=watch, now=now,
                                              overlap_days=overlap, stopping=self.stopping))  # fmt: skip
        return reports

    def _poll_pubmed(self, now: datetime) -> list[PubmedReport]:
        reports: list[PubmedReport] = []
        if self.pubmed is None:
            return reports
        from watcher.literature.pubmed_pipeline import poll_pubmed

        for watch in self.config.pubmed_watches():
            if self.stopping.is_set():
                break
            reports.append(
                poll_pubmed(
                    engine=self.engine,
                    client=self.pubmed,
                    watch=watch,
                    overlap_days=self.config.pubmed.overlap_days,
                    now=now,
                    stopping=self.stopping,
                )  # fmt: skip
            )
        return reports

    def _poll_feeds(self, now: datetime, *, force: bool) -> list[FeedReport]:
        reports: list[FeedReport] = []
        if not self.config.feed:
            return reports
        from watcher.literature.pipeline import poll_feed

        for feed in self.config.feed:
            if self.stopping.is_set():
                break
            reports.append(
                poll_feed(engine=self.engine, http=self.feed_http, config=self.config, feed=feed, now=now, force=force)
            )
        return reports

    def _poll_registry(
        self, report: CycleReport, now: datetime, on_page: Callable[[str, Page], None] | None, force_full: bool
    ) -> None:
        started, requests_before = time.monotonic(), self.client.requests_made
        try:
            stamp = self.client.data_timestamp()
        except SourceError as exc:
            error = f"ClinicalTrials.gov /version: {exc.one_line()}"
            report.polls = [self._failed(watch.name, error, now) for watch in self.config.watch]
            if report.polls:
                report.polls[0].requests = self.client.requests_made - requests_before
                report.polls[0].seconds = time.monotonic() - started
            return
        plans = self._plans(now, stamp, force_full)
        for watch in self.config.watch:
            if self.stopping.is_set():
                log.info("stopping: the remaining watches are polled next time")
                break
            callback = (lambda page, name=watch.name: on_page(name, page)) if on_page else None
            report.polls.append(
                poll_watch(
                    engine=self.engine,
                    client=self.client,
                    watch=watch,
                    plan=plans[watch.name],
                    now=now,
                    data_timestamp=stamp,
                    ignore=self.config.clinicaltrials.ignore_fields,
                    on_page=callback,
                    stopping=self.stopping,
                    counted_from=None if report.polls else (started, requests_before),
                )
            )

    def _plans(self, now: datetime, stamp: str | None, force_full: bool) -> dict[str, Plan]:
        """What kind of poll each watch needs now (baseline, full, incremental or none)."""
        with db.transaction(self.engine) as session:
            states = repo.watch_states(session=session)
            return {
                watch.name: plan_poll(
                    state=states.get(watch.name),
                    watch=watch,
                    settings=self.config.clinicaltrials,
                    data_timestamp=stamp,
                    now=now,
                    force_full=force_full,
                )  # fmt: skip
                for watch in self.config.watch
            }

    def _failed(self, watch: str, error: str, now: datetime) -> PollReport:
        record_failure(engine=self.engine, watch=watch, error=error, now=now)
        log.error("poll %s: FAILED: %s", watch, error)
        return PollReport(watch=watch, mode="failed", error=error)

    def deliver(self, now: datetime, *, watches: list[str] | None = None, everything: bool = False) -> DeliveryReport:
        """Deliver what is due by schedule (or the given watches); `everything`: every pending change
        now, and retry failed sends at once whatever their backoff (`digest --now`)."""
        if watches is not None:
            return deliver(
                engine=self.engine, config=self.config, transport=self.transport, watches=watches, now=now,
                stopping=self.stopping, links=self.links,
            )  # fmt: skip
        scheduled = due_watches(self.config, self.engine, now)
        names = [watch.name for watch in self.config.watch] if everything else scheduled
        return deliver(
            engine=self.engine,
            config=self.config,
            transport=self.transport,
            watches=names,
            now=now,
            retry_now=everything,
            scheduled=scheduled,
            stopping=self.stopping,
            everything=everything,
            links=self.links,
        )
