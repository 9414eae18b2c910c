"""What one scheduled job does, shared by the CLI and the daemon: poll everything, deliver."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from watcher.config import Config
from watcher.delivery import DeliveryReport, deliver, due_watches, immediate_watches
from watcher.notify.email import Transport
from watcher.pipeline import PollReport, poll_watch
from watcher.sources.ctgov import CtgovClient, Page

log = logging.getLogger(__name__)


@dataclass
class CycleReport:
    polls: list[PollReport] = field(default_factory=list)
    delivery: DeliveryReport = field(default_factory=DeliveryReport)

    @property
    def failed_sources(self) -> list[str]:
        return [f"{poll.watch}: {poll.error}" for poll in self.polls if not poll.ok]


@dataclass
class Service:
    """Everything a job needs, chosen once by the CLI."""

    config: Config
    engine: Engine
    client: CtgovClient
    transport: Transport

    def poll(self, now: datetime, on_page: Callable[[str, Page], None] | None = None) -> CycleReport:
        """Poll every watch, then send what is due for immediate watches."""
        report = CycleReport()
        for watch in self.config.watch:
            callback = (lambda page, name=watch.name: on_page(name, page)) if on_page else None
            report.polls.append(
                poll_watch(engine=self.engine, client=self.client, watch=watch, now=now, on_page=callback)
            )
        immediate = immediate_watches(self.config.watch)
        if immediate:
            report.delivery = self.deliver(now, watches=immediate)
        return report

    def deliver(self, now: datetime, *, watches: list[str] | None = None, everything: bool = False) -> DeliveryReport:
        """Deliver what is due (or the given watches, or everything pending)."""
        names = watches if watches is not None else due_watches(self.config, self.engine, now, everything=everything)
        return deliver(engine=self.engine, config=self.config, transport=self.transport, watches=names, now=now)
