"""Shared fixtures: real local servers, real and own data, a fresh database per test."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from tests.servers import FakeRegistry, SmtpSink

REPO = Path(__file__).resolve().parent.parent
OWN_DATA = Path(__file__).resolve().parent / "data"
POSTGRES_ENV = "TRIALWATCH_TEST_POSTGRES_URL"


def real_fixtures_path() -> Path:
    configured = os.environ.get("TRIALWATCH_FIXTURES")
    return Path(configured) if configured else REPO.parent / "shared" / "fixtures"


@pytest.fixture
def real_fixtures_dir() -> Path:
    path = real_fixtures_path()
    if not (path / "ctgov").is_dir():
        pytest.skip(f"real fixtures not found at {path}: set TRIALWATCH_FIXTURES or check out shared/ beside the repo")
    return path


@pytest.fixture
def feeds_dir(real_fixtures_dir: Path) -> Path:
    """The real journal feeds (../shared/fixtures/feeds)."""
    path = real_fixtures_dir / "feeds"
    if not path.is_dir():
        pytest.skip(f"real feed fixtures not found at {path}")
    return path


@pytest.fixture
def real_study(real_fixtures_dir: Path) -> Callable[[str], dict[str, Any]]:
    """Load a real API v2 record from ../shared/fixtures/ctgov (a fresh copy each call)."""

    def load(name: str) -> dict[str, Any]:
        return json.loads((real_fixtures_dir / "ctgov" / name).read_text(encoding="utf-8"))

    return load


@pytest.fixture
def own_study() -> Callable[[str], dict[str, Any]]:
    """Load one of our own small records from tests/data (a fresh copy each call)."""

    def load(name: str) -> dict[str, Any]:
        return json.loads((OWN_DATA / f"{name}.json").read_text(encoding="utf-8"))

    return load


@pytest.fixture
def registry(httpserver: HTTPServer) -> FakeRegistry:
    return FakeRegistry(httpserver)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set: PostgreSQL tests run in CI (.ci/run)")
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(base)
    name = f"trialwatch_test_{uuid.uuid4().hex[:12]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage test runs on a fresh SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'trialwatch.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def cli_for(tmp_path: Path, registry: Any) -> Any:
    def make(**kwargs: Any) -> Any:
        from tests.harness import Cli, write_config

        return Cli(write_config(tmp_path, registry, **kwargs))

    return make


@pytest.fixture
def changed(cli_for, registry, own_study):
    """A CLI whose watches took their baseline on v1 of NCT09000001 and then polled v2."""

    def make(**kwargs: Any) -> Any:
        registry.put(own_study("study_NCT09000001_v1"))
        cli = cli_for(**kwargs)
        cli("poll")
        registry.put(own_study("study_NCT09000001_v2"))
        cli.last_poll = cli("poll")
        return cli

    return make


@pytest.fixture
def web_server(database_url: str, registry: FakeRegistry) -> Iterator[Any]:
    """The web app served by uvicorn on 127.0.0.1 (port 0) over a fresh database, both kinds
    (tests/web_support.WebSite: .url, .client(), .signed_in(email), .token(email), .engine)."""
    from tests.web_support import close_site, make_site

    site = make_site(database_url, registry.base_url)
    yield site
    close_site(site)


@pytest.fixture
def browser_site(tmp_path: Path, registry: FakeRegistry) -> Iterator[Any]:
    """The web app for the browser tests, on a fresh SQLite file."""
    from tests.web_support import close_site, make_site

    site = make_site(f"sqlite:///{tmp_path / 'web.db'}", registry.base_url)
    yield site
    close_site(site)


@pytest.fixture
def browser(browser_site: Any) -> Iterator[Any]:
    """A headless Chromium (Debian's) on a fresh profile, signed out; skipped only outside CI."""
    from tests.web_support import Browser, chromium_or_skip

    chromium_or_skip()
    driver = Browser(browser_site.url)
    yield driver
    driver.close()


@pytest.fixture
def signed_in_browser(browser: Any, browser_site: Any) -> Any:
    """The browser signed in as admin@example.org (an admin)."""
    browser_site.add_user("admin@example.org", role="admin")
    browser.sign_in("admin@example.org")
    browser.wait_for(lambda driver: browser.path == "/")
    return browser
