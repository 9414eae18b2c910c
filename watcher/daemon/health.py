"""Optional HTTP endpoints for operators: `GET /healthz` (JSON) and `GET /metrics` (Prometheus).

Healthy means: every source has had a successful poll within the last `STALE_AFTER_POLLS` poll
intervals, where a source that has not succeeded yet counts from the daemon's start. So a fresh
daemon is healthy until its first polls had time to run, one failed poll (the registry has an
outage now and then) does not fail the check, and a source that keeps failing or stopped being
polled fails it after three intervals. Pending deliveries are reported but never fail the check:
they wait for their digest schedule. `last_error` is the error of the latest poll when it failed,
and null once a later poll succeeded. A standby replica (PostgreSQL, waiting for the leader lock)
is healthy: it polls nothing, and the clock of its sources starts when it takes over.

Metrics live in their own `CollectorRegistry` per `Metrics` object (never the global one), so
several daemons, or several tests, can exist in one process.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from watcher.config import parse_listen
from watcher.errors import ConfigError

log = logging.getLogger(__name__)

NAMESPACE = "trialwatch"
STALE_AFTER_POLLS = 3
POLL_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


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

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.healthy else "failing",
            "role": "leader" if self.leader else "standby",
            "sources": {name: source.as_json() for name, source in sorted(self.sources.items())},
            "pending_deliveries": self.pending_deliveries,
        }


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
        stale = [name for name, s in sources.items() if now - max(s.last_success or started, started) > limit]
        return HealthStatus(healthy=not leader or not stale, sources=sources, pending_deliveries=pending, leader=leader)


class HealthServer:
    """`/healthz` and `/metrics` served by a ThreadingHTTPServer on a daemon thread."""

    def __init__(self, *, listen: str, metrics: Metrics, health: Callable[[], HealthStatus]) -> None:
        try:
            self.host, self._requested_port = parse_listen(listen)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        self.metrics = metrics
        self.health = health
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for); only while started."""
        if self._server is None:
            raise RuntimeError("health server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"owner": self})
        server_class = _IPv6Server if ":" in self.host else ThreadingHTTPServer
        try:
            self._server = server_class((self.host, self._requested_port), handler)
        except OSError as exc:
            raise ConfigError(f"health server cannot listen on {self.host}:{self._requested_port}: {exc}") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="health-server", daemon=True
        )
        self._thread.start()
        log.info("health endpoints on %s/healthz and %s/metrics", self.url, self.url)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    owner: HealthServer
    server_version = "trialwatch"

    def do_GET(self) -> None:  # noqa: N802 (the http.server naming)
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._healthz()
        elif path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, self.owner.metrics.render())
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n")

    def _healthz(self) -> None:
        try:
            status = self.owner.health()
        except Exception as exc:  # a broken health callback must answer 503, not hang up
            log.exception("health check failed")
            body: dict[str, Any] = {"status": "failing", "error": f"{type(exc).__name__}: {exc}"}
            self._send(503, "application/json", json.dumps(body).encode())
            return
        self._send(200 if status.healthy else 503, "application/json", json.dumps(status.as_json()).encode())

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the http.server signature)
        log.debug("%s %s", self.address_string(), format % args)
