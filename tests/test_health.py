"""/healthz and /metrics served on a real port: JSON, 200 vs 503, Prometheus text after counting."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from watcher.daemon.health import HealthServer, HealthStatus, Metrics, Monitor, parse_listen
from watcher.errors import ConfigError

START = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
INTERVAL = timedelta(hours=6)
SOURCES = ["RCC CAR-T", "RCC bispecifics"]


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def monitor() -> Monitor:
    return Monitor(metrics=Metrics(), poll_interval=INTERVAL, started_at=START, sources=SOURCES)


@pytest.fixture
def server(monitor: Monitor, clock: Clock) -> Iterator[HealthServer]:
    with HealthServer(
        listen="127.0.0.1:0", metrics=monitor.metrics, health=lambda: monitor.status(now=clock())
    ) as running:
        yield running


def get(server: HealthServer, path: str) -> requests.Response:
    return requests.get(f"{server.url}{path}", timeout=10)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    parsed = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            parsed[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return parsed


def test_a_fresh_daemon_is_healthy_before_its_first_poll(server: HealthServer):
    assert server.port > 0
    response = get(server, "/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "status": "ok",
        "role": "leader",
        "sources": {name: {"last_success": None, "last_error": None} for name in SOURCES},
        "pending_deliveries": 0,
    }


def test_never_polled_after_three_intervals_is_failing(server: HealthServer, clock: Clock):
    clock.now = START + 3 * INTERVAL + timedelta(seconds=1)
    response = get(server, "/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "failing"


def test_one_failed_poll_is_reported_but_not_failing(server: HealthServer, monitor: Monitor, clock: Clock):
    for name in SOURCES:
        monitor.poll_finished(source=name, at=START + timedelta(minutes=1), seconds=2.0)
    clock.now = START + INTERVAL + timedelta(minutes=1)
    monitor.poll_finished(source="RCC CAR-T", at=clock.now, seconds=60.0, error="HTTP 503 from clinicaltrials.gov")
    monitor.set_pending_deliveries(count=4)
    response = get(server, "/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["sources"]["RCC CAR-T"] == {
        "last_success": "2026-11-02T07:01:00+00:00",
        "last_error": "HTTP 503 from clinicaltrials.gov",
    }
    assert body["sources"]["RCC bispecifics"]["last_error"] is None
    assert body["pending_deliveries"] == 4


def test_a_source_failing_for_three_intervals_fails_the_check(server: HealthServer, monitor: Monitor, clock: Clock):
    for name in SOURCES:
        monitor.poll_finished(source=name, at=START, seconds=1.0)
    clock.now = START + 3 * INTERVAL + timedelta(minutes=1)
    monitor.poll_finished(source="RCC bispecifics", at=clock.now, seconds=1.0)
    monitor.poll_finished(source="RCC CAR-T", at=clock.now, seconds=1.0, error="timed out")
    response = get(server, "/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "failing"
    monitor.poll_finished(source="RCC CAR-T", at=clock.now, seconds=1.0)
    assert get(server, "/healthz").status_code == 200, "a later success clears the failure"
    assert get(server, "/healthz").json()["sources"]["RCC CAR-T"]["last_error"] is None


def test_a_standby_is_healthy_and_its_sources_count_from_the_takeover(
    server: HealthServer, monitor: Monitor, clock: Clock
):
    monitor.set_leader(leader=False, at=START)
    clock.now = START + 10 * INTERVAL
    response = get(server, "/healthz")
    assert (response.status_code, response.json()["role"]) == (200, "standby")
    monitor.set_leader(leader=True, at=clock.now)
    clock.now += 3 * INTERVAL - timedelta(seconds=1)
    assert get(server, "/healthz").json() == {**response.json(), "role": "leader"}
    clock.now += timedelta(seconds=2)
    assert get(server, "/healthz").status_code == 503
    assert samples(monitor.metrics.render().decode())[("trialwatch_leader", ())] == 1


def test_metrics_text_has_the_counters_and_their_values(server: HealthServer, monitor: Monitor):
    monitor.poll_finished(source="RCC CAR-T", at=START, seconds=2.5, requests=3, changes={"status": 2, "new": 1})
    monitor.poll_finished(source="RCC CAR-T", at=START, seconds=1.0, requests=1, error="boom")
    monitor.delivery_finished(sent=2, failed=0, seconds=0.2)
    monitor.delivery_finished(sent=0, failed=1, seconds=0.1)
    monitor.delivery_finished(sent=0, failed=0, seconds=0.01)
    monitor.set_pending_deliveries(count=5)
    response = get(server, "/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = response.text
    for name in (
        "trialwatch_polls_total",
        "trialwatch_poll_duration_seconds",
        "trialwatch_requests_total",
        "trialwatch_changes_total",
        "trialwatch_deliveries_total",
        "trialwatch_delivery_duration_seconds",
        "trialwatch_pending_deliveries",
        "trialwatch_last_successful_poll_timestamp_seconds",
        "trialwatch_leader",
    ):
        assert f"# HELP {name} " in text, name
    values = samples(text)
    car_t = ("source", "RCC CAR-T")
    assert values[("trialwatch_polls_total", (("result", "ok"), car_t))] == 1
    assert values[("trialwatch_polls_total", (("result", "error"), car_t))] == 1
    assert values[("trialwatch_poll_duration_seconds_count", (car_t,))] == 2
    assert values[("trialwatch_poll_duration_seconds_sum", (car_t,))] == 3.5
    assert values[("trialwatch_requests_total", (car_t,))] == 4
    assert values[("trialwatch_changes_total", (("kind", "status"),))] == 2
    assert values[("trialwatch_changes_total", (("kind", "new"),))] == 1
    assert values[("trialwatch_deliveries_total", (("result", "ok"),))] == 2
    assert values[("trialwatch_deliveries_total", (("result", "error"),))] == 1
    assert values[("trialwatch_delivery_duration_seconds_count", ())] == 2
    assert values[("trialwatch_pending_deliveries", ())] == 5
    assert values[("trialwatch_last_successful_poll_timestamp_seconds", (car_t,))] == START.timestamp()


def test_each_metrics_object_has_its_own_registry():
    first, second = Metrics(), Metrics()
    first.polls.labels(source="a", result="ok").inc()
    assert samples(first.render().decode())[("trialwatch_polls_total", (("result", "ok"), ("source", "a")))] == 1
    assert 'source="a"' not in second.render().decode()


def test_unknown_paths_are_404(server: HealthServer):
    for path in ("/", "/health", "/metrics/x"):
        assert get(server, path).status_code == 404, path
    assert get(server, "/healthz?verbose=1").status_code == 200


def test_a_broken_health_callback_answers_503_with_the_error():
    def broken() -> HealthStatus:
        raise RuntimeError("database gone")

    with HealthServer(listen="127.0.0.1:0", metrics=Metrics(), health=broken) as running:
        response = get(running, "/healthz")
        assert response.status_code == 503
        assert response.json() == {"status": "failing", "error": "RuntimeError: database gone"}
        assert get(running, "/metrics").status_code == 200


def test_stop_closes_the_port(monitor: Monitor, clock: Clock):
    running = HealthServer(listen="127.0.0.1:0", metrics=monitor.metrics, health=lambda: monitor.status(now=clock()))
    running.start()
    url = running.url
    running.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/healthz", timeout=10)
    running.stop()  # a second stop is harmless


def test_ipv6_loopback_is_served(monitor: Monitor, clock: Clock):
    try:
        running = HealthServer(listen="[::1]:0", metrics=monitor.metrics, health=lambda: monitor.status(now=clock()))
        running.start()
    except ConfigError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        assert running.url.startswith("http://[::1]:")
        assert get(running, "/healthz").status_code == 200
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        (":9464", ("", 9464)),
        ("[::]:9464", ("::", 9464)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]):
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["9464", "host:", "host:port", "127.0.0.1:70000", "::1:9464", ""])
def test_bad_listen_addresses_are_config_errors(listen: str):
    with pytest.raises(ValueError, match="listen"):
        parse_listen(listen)
    with pytest.raises(ConfigError, match="listen"):
        HealthServer(listen=listen, metrics=Metrics(), health=lambda: HealthStatus(healthy=True))


def test_a_port_in_use_is_a_config_error(server: HealthServer):
    other = HealthServer(
        listen=f"127.0.0.1:{server.port}", metrics=Metrics(), health=lambda: HealthStatus(healthy=True)
    )
    with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        other.start()


def test_reconfigure_forgets_removed_sources_and_keeps_the_others(monitor: Monitor, clock: Clock):
    monitor.poll_finished(source="RCC CAR-T", at=START, seconds=1.0)
    monitor.reconfigure(sources=["RCC CAR-T", "RCC vaccines"], poll_interval=timedelta(hours=1))
    status = monitor.status(now=START + timedelta(hours=2))
    assert set(status.sources) == {"RCC CAR-T", "RCC vaccines"}
    assert status.sources["RCC CAR-T"].last_success == START
    assert status.healthy
    assert not monitor.status(now=START + timedelta(hours=3, seconds=1)).healthy, "the new interval applies"


def test_the_web_app_is_served_around_healthz_and_metrics(monitor: Monitor, clock: Clock):
    """The daemon never imports the web package: it is handed a factory (the CLI passes
    watcher.web.app's); here a stand-in Starlette app with a page and its own 404."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import BaseRoute, Route

    async def page(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("the dashboard")

    given: list[list[str]] = []

    def web(routes: Sequence[BaseRoute]) -> Starlette:
        given.append([route.path for route in routes if isinstance(route, Route)])
        return Starlette(routes=[*routes, Route("/", page)])

    with HealthServer(
        listen="127.0.0.1:0", metrics=monitor.metrics, health=lambda: monitor.status(now=clock()), web=web
    ) as running:
        assert given == [["/healthz", "/metrics"]]
        assert get(running, "/").text == "the dashboard"
        healthz = get(running, "/healthz")
        assert (healthz.status_code, healthz.json()["role"]) == (200, "leader")
        assert "# HELP trialwatch_leader " in get(running, "/metrics").text
        missing = get(running, "/nowhere")
        assert missing.status_code == 404 and "try /healthz" not in missing.text, "the web app's own 404"


def test_a_web_app_that_cannot_start_is_one_error_line(monitor: Monitor, clock: Clock):
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette

    @asynccontextmanager
    async def broken(_app: Starlette):  # type: ignore[no-untyped-def]
        raise RuntimeError("no templates")
        yield

    server = HealthServer(
        listen="127.0.0.1:0", metrics=monitor.metrics, health=lambda: monitor.status(now=clock()),
        web=lambda routes: Starlette(routes=routes, lifespan=broken),
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"HTTP server on http://127\.0\.0\.1:\d+ did not start"):
        server.start()


def test_a_caller_from_elsewhere_sees_the_status_and_counts_only(server: HealthServer, monitor: Monitor, clock: Clock):
    monitor.poll_finished(source="RCC CAR-T", at=START, seconds=1.0, error="HTTP 503 from clinicaltrials.gov")
    monitor.set_pending_deliveries(count=2)
    monitor.set_database_error("connection refused by db.internal:5432")
    # through a proxy on this host (uvicorn believes its X-Forwarded-For from 127.0.0.1)
    response = requests.get(f"{server.url}/healthz", headers={"X-Forwarded-For": "203.0.113.7"}, timeout=10)
    assert response.status_code == 503
    assert response.json() == {
        "status": "failing",
        "role": "leader",
        "sources": 2,
        "failing_sources": 1,
        "pending_deliveries": 2,
        "database": "unreachable",
    }
    for secret in ("RCC", "clinicaltrials.gov", "db.internal"):
        assert secret not in response.text
    assert "RCC CAR-T" in get(server, "/healthz").text, "a caller on this host still sees the sources"


def test_a_broken_health_callback_tells_a_caller_from_elsewhere_no_error():
    def broken() -> HealthStatus:
        raise RuntimeError("password authentication failed for db.internal")

    with HealthServer(listen="127.0.0.1:0", metrics=Metrics(), health=broken) as running:
        response = requests.get(f"{running.url}/healthz", headers={"X-Forwarded-For": "203.0.113.7"}, timeout=10)
        assert (response.status_code, response.json()) == (503, {"status": "failing"})
