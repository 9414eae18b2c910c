"""Optional HTTP endpoints for operators: `GET /healthz` (JSON) and `GET /metrics` (Prometheus).

Healthy means: every source has had a successful poll within the last `STALE_AFTER_POLLS` poll
intervals, where a source that has not succeeded yet counts from the daemon's start. So a fresh
daemon is healthy until its first polls had time to run, one failed poll (the registry has an
outage now and then) does not fail the check, and a source that keeps failing or stopped being
polled fails it after three intervals. Pending deliveries are reported but never fail the check:
they wait for their digest schedule. `last_error` is the error of the latest poll when it failed,
and null once a later poll succeeded. Sources are named after watches and errors may name
hosts: only a caller on this host (loopback, through no proxy) sees them; anyone else gets the
status and counts (`HealthStatus.summary_json`). A standby replica (PostgreSQL, waiting for the
leader lock) is healthy: it polls nothing, and the clock of its sources starts when it takes over. A replica
that cannot reach its database (it stands by and keeps trying) is failing, with "database" saying
why; the key is absent otherwise. A daemon whose database or outbox folder is full (the latest
write there failed for want of room) is "degraded" (503), with "storage" saying what is full; it
keeps running, and the key goes once a later poll or delivery could write again.

The endpoints are Starlette routes (`health_routes`); `HealthServer` serves them with uvicorn on a
thread, with the web app around them when the command line passes one (`web`): every replica,
leader or standby, serves both.

Metrics live in their own `CollectorRegistry` per `Metrics` object (never the global one), so
several daemons, or several tests, can exist in one process.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from watcher.config import parse_listen
from watcher.daemon.server import AsgiServer

log = logging.getLogger(__name__)

NAMESPACE = "trialwatch"
STALE_AFTER_POLLS = 3
POLL_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
NO_STORE = {"Cache-Control": "no-store"}
__all__ = ["HealthServer", "HealthStatus", "Metrics", "Monitor", "parse_listen"]  # parse_listen: for callers


class Metrics:
    """The daemon's counters, histograms and gauges, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ns, reg = NAMESPACE, self.registry
        self.polls = Counter("polls", "Polls by source and result", ["source", "result"], namespace=ns, registry=reg)
        self.poll_duration = Histogram(
            "poll_duration_seconds", "Poll duration", ["source"], namespace=ns, registry=reg, buckets=POLL_BUCKETS
        )
        self.requests = Counter("requests", "HTTP requests sent to a source", ["source"], namespace=ns, registry=reg)
        self.changes = Counter("changes", "Changes detected by kind", ["kind"], namespace=ns, registry=reg)
        self.deliveries = Counter("deliveries", "Digest deliveries by result", ["result"], namespace=ns, registry=reg)
        self.delivery_duration = Histogram(
            "delivery_duration_seconds",
            "Digest delivery duration",
            namespace=ns,
            registry=reg,
            buckets=DELIVERY_BUCKETS,
        )
        self.pending_deliveries = Gauge(
            "pending_deliveries", "Changes waiting to be delivered", namespace=ns, registry=reg
        )
        self.leader = Gauge("leader", "1 while this process holds the leader lock", namespace=ns, registry=reg)
        self.last_success = Gauge(
            "last_successful_poll_timestamp_seconds",
            "Unix time of the last successful poll",
            ["source"],
            namespace=ns,
            registry=reg,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)


@dataclass(frozen=True)
class SourceHealth:
    last_success: datetime | None = None
    last_error: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "last_error": self.last_error,
        }


@dataclass(frozen=True)
class HealthStatus:
    healthy: bool
    sources: Mapping[str, SourceHealth] = field(default_factory=dict)
    pending_deliveries: int = 0
    leader: bool = True
    database_error: str | None = None
    storage: Mapping[str, str] = field(default_factory=dict)  # what is full ("database", "outbox") -> why

    def as_json(self) -> dict[str, Any]:
        degraded = self.storage and self.database_error is None
        body: dict[str, Any] = {
            "status": "ok" if self.healthy else "degraded" if degraded else "failing",
            "role": "leader" if self.leader else "standby",
            "sources": {name: source.as_json() for name, source in sorted(self.sources.items())},
            "pending_deliveries": self.pending_deliveries,
        }
        if self.database_error is not None:
            body["database"] = f"unreachable: {self.database_error}"
        if self.storage:
            body["storage"] = dict(sorted(self.storage.items()))
        return body

    def summary_json(self) -> dict[str, Any]:
        """What anyone may see: the status and counts, never a source's name or error."""
        body = {
            "status": "ok" if self.healthy else "failing",
            "role": "leader" if self.leader else "standby",
            "sources": len(self.sources),
            "failing_sources": sum(1 for source in self.sources.values() if source.last_error),
            "pending_deliveries": self.pending_deliveries,
        }
        if self.database_error is not None:
            body["database"] = "unreachable"
        return body


class Monitor:
    """Records what the jobs did into `metrics` and remembers enough to answer /healthz."""

    def __init__(
        self, *, metrics: Metrics, poll_interval: timedelta, started_at: datetime, sources: list[str] | None = None
    ) -> None:
        self.metrics = metrics
        self.poll_interval = poll_interval
        self.started_at = started_at
        self._sources: dict[str, SourceHealth] = {name: SourceHealth() for name in sources or []}
        self._pending = 0
        self._leader = True
        self._database_error: str | None = None
        self._storage: dict[str, str] = {}
        self._mutex = threading.Lock()
        metrics.leader.set(1)

    def reconfigure(self, *, sources: list[str], poll_interval: timedelta) -> None:
        """After a config reload: forget removed sources (they would turn stale), add new ones."""
        with self._mutex:
            self._sources = {name: self._sources.get(name, SourceHealth()) for name in sources}
            self.poll_interval = poll_interval

    def set_leader(self, *, leader: bool, at: datetime) -> None:
        """Standing by (False) or leading since `at` (True): sources must succeed from then on."""
        with self._mutex:
            if leader and not self._leader:
                self.started_at = at
            self._leader = leader
        self.metrics.leader.set(1 if leader else 0)

    def set_database_error(self, error: str | None) -> None:
        """The database could not be reached (`error`), or could again (None)."""
        with self._mutex:
            self._database_error = error

    def set_storage_error(self, where: str, error: str | None) -> None:
        """`where` ("database", "outbox") is full (`error`: the failed write's line), or could be
        written again (None)."""
        with self._mutex:
            if error is None:
                self._storage.pop(where, None)
            else:
                self._storage[where] = error

    def poll_finished(
        self,
        *,
        source: str,
        at: datetime,
        seconds: float,
        error: str | None = None,
        requests: int = 0,
        changes: Mapping[str, int] | None = None,
    ) -> None:
        """One poll of `source` ended at `at`, failed if `error` is given."""
        self.metrics.polls.labels(source=source, result="error" if error else "ok").inc()
        self.metrics.poll_duration.labels(source=source).observe(seconds)
        self.metrics.requests.labels(source=source).inc(requests)
        for kind, count in (changes or {}).items():
            self.metrics.changes.labels(kind=kind).inc(count)
        with self._mutex:
            previous = self._sources.get(source, SourceHealth())
            if error:
                self._sources[source] = SourceHealth(last_success=previous.last_success, last_error=error)
            else:
                self._sources[source] = SourceHealth(last_success=at, last_error=None)
                self.metrics.last_success.labels(source=source).set(at.timestamp())

    def delivery_finished(self, *, sent: int, failed: int, seconds: float) -> None:
        """A digest run sent `sent` and failed `failed` messages in `seconds` (a run with neither is not timed)."""
        self.metrics.deliveries.labels(result="ok").inc(sent)
        self.metrics.deliveries.labels(result="error").inc(failed)
        if sent or failed:
            self.metrics.delivery_duration.observe(seconds)

    def set_pending_deliveries(self, *, count: int) -> None:
        with self._mutex:
            self._pending = count
        self.metrics.pending_deliveries.set(count)

    def status(self, *, now: datetime) -> HealthStatus:
        """Healthy when no source's last success (or the start, before one) is older than the limit."""
        limit = self.poll_interval * STALE_AFTER_POLLS
        with self._mutex:
            sources, pending, leader, started = dict(self._sources), self._pending, self._leader, self.started_at
            database_error, storage = self._database_error, dict(self._storage)
        stale = [name for name, s in sources.items() if now - max(s.last_success or started, started) > limit]
        return HealthStatus(
            healthy=(not leader or not stale) and database_error is None and not storage, sources=sources,
            pending_deliveries=pending, leader=leader, database_error=database_error, storage=storage,
        )  # fmt: skip


def health_routes(*, metrics: Metrics, health: Callable[[], HealthStatus]) -> list[BaseRoute]:
    """`GET /healthz` (JSON, 200 or 503) and `GET /metrics` (Prometheus text), for any Starlette app."""

    async def healthz(request: Request) -> Response:
        detailed = asked_on_this_host(request)
        try:
            status = health()
        except Exception as exc:  # a broken health callback must answer 503, not hang up
            log.exception("health check failed")
            body = {"status": "failing", "error": f"{type(exc).__name__}: {exc}"} if detailed else {"status": "failing"}
            return _json(503, body)
        return _json(200 if status.healthy else 503, status.as_json() if detailed else status.summary_json())

    async def metrics_text(_request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)

    return [Route("/healthz", healthz, methods=["GET"]), Route("/metrics", metrics_text, methods=["GET"])]


def asked_on_this_host(request: Request) -> bool:
    """Whether the request came from this host itself (a loopback address, through no proxy):
    the container's health check, an operator's curl. Only those see sources and errors."""
    host = request.client.host if request.client else ""
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _json(code: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status_code=code, media_type="application/json", headers=NO_STORE)


async def _not_found(_request: Request, _exc: Exception) -> Response:
    return PlainTextResponse("not found: try /healthz or /metrics\n", status_code=404, headers=NO_STORE)


WebApp = Callable[[Sequence[BaseRoute]], Any]
"""Builds the web app around the given routes (/healthz and /metrics): the CLI passes one, the
daemon never imports the web package."""


class HealthServer(AsgiServer):
    """`/healthz` and `/metrics`, with the web app around them when `web` is given, served by
    uvicorn on a daemon thread (watcher.daemon.server)."""

    def __init__(
        self,
        *,
        listen: str,
        metrics: Metrics,
        health: Callable[[], HealthStatus],
        web: WebApp | None = None,
        forwarded_allow_ips: str = "127.0.0.1",
    ) -> None:
        self.metrics, self.health = metrics, health
        routes = health_routes(metrics=metrics, health=health)
        app = web(routes) if web is not None else Starlette(routes=routes, exception_handlers={404: _not_found})
        super().__init__(listen=listen, app=app, name="HTTP server", forwarded_allow_ips=forwarded_allow_ips)

    def __enter__(self) -> HealthServer:
        self.start()
        return self
