"""The web app under test: served by a real uvicorn on 127.0.0.1 port 0 in a thread, over a real
database, with the registry pointed at the local fake one; HTTP clients that sign in and carry
CSRF tokens like a browser does; and a real Chromium driven by Selenium.

Fixtures (tests/conftest.py): `web_server` (a `WebSite` on SQLite and on PostgreSQL),
`browser_site` (a `WebSite` on SQLite for the browser tests), `browser` (a Chromium `Browser`
signed out), `signed_in_browser` (signed in as an admin).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from sqlalchemy import Engine
from starlette.applications import Starlette

from watcher.config import ClinicalTrialsConfig, Config, DatabaseConfig, ServerConfig
from watcher.store import db, people
from watcher.store.watches import provision_watches
from watcher.watch import WatchConfig
from watcher.web.app import WebContext, create_app

PASSWORD = "correct horse battery"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FILE_WATCH = WatchConfig(
    name="RCC file watch", conditions=["renal cell carcinoma"], terms=["nivolumab"], recipients=["onc@example.org"]
)


class Clock:
    """The app's clock: real time moved on by `advance` (the throttling window, idle sessions)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


class UvicornThread:
    """A real uvicorn server for `app` on 127.0.0.1, port 0, in a daemon thread."""

    def __init__(self, app: Starlette) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="web-test-server", daemon=True)

    def start(self) -> str:
        self.thread.start()
        started = threading.Event()
        while not self.server.started:  # wait on the condition, bounded by the thread's life
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            started.wait(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


class WebClient:
    """A requests session against the site, following no redirects unless asked."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        return self.session.get(self.base_url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        return self.session.post(self.base_url + path, timeout=30, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        return self.session.request(method, self.base_url + path, timeout=30, **kwargs)

    def submit(self, page: str, data: dict[str, Any], action: str | None = None) -> requests.Response:
        """GET `page`, then POST `data` with the page's CSRF token to `action` (default: `page`)."""
        token = csrf_of(self.get(page).text)
        return self.post(action or page, data={"csrf_token": token, **data})

    def sign_in(self, email: str, password: str = PASSWORD) -> requests.Response:
        return self.submit("/login", {"email": email, "password": password})


@dataclass
class WebSite:
    """The app served for real, with its database, config and clock at hand."""

    url: str
    engine: Engine
    config: Config
    clock: Clock
    app: Starlette
    server: UvicornThread | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    def add_user(self, email: str, *, role: str = "member", password: str = PASSWORD) -> people.Person:
        with db.transaction(self.engine) as session:
            return people.add_user(session=session, email=email, password=password, role=role, now=self.clock.now())

    def client(self) -> WebClient:
        return WebClient(self.url)

    def signed_in(self, email: str, *, role: str = "member") -> WebClient:
        """A client signed in as a new user `email`."""
        self.add_user(email, role=role)
        client = self.client()
        response = client.sign_in(email)
        assert response.status_code == 303, response.text
        return client

    def token(self, email: str, *, role: str = "member") -> str:
        """A bearer token of a new user `email`."""
        self.add_user(email, role=role)
        with db.transaction(self.engine) as session:
            _info, text = people.create_token(session=session, email=email, name="tests", now=self.clock.now())
        return text

    def api(self, token: str) -> WebClient:
        client = self.client()
        client.session.headers["Authorization"] = f"Bearer {token}"
        return client

    def provision(self, *watches: WatchConfig) -> None:
        """The config file's watches synced into the database, as the daemon does at start."""
        with db.transaction(self.engine) as session:
            provision_watches(session=session, watches=list(watches), now=self.clock.now(), where="trialwatch.toml")


def make_site(database_url: str, registry_url: str, *, public_url: str | None = None) -> WebSite:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    config = Config(
        database=DatabaseConfig(url=database_url),
        clinicaltrials=ClinicalTrialsConfig(
            base_url=registry_url, requests_per_second=0, max_attempts=2, backoff_seconds=0.01
        ),
        server=ServerConfig(listen="127.0.0.1:0", public_url=public_url),
        watch=[FILE_WATCH],
    )
    clock = Clock()
    holder = {"config": config}
    app = create_app(WebContext(engine=engine, config=lambda: holder["config"], now=clock.now))
    server = UvicornThread(app)
    site = WebSite(url=server.start(), engine=engine, config=config, clock=clock, app=app, server=server)
    site.provision(FILE_WATCH)
    return site


def close_site(site: WebSite) -> None:
    if site.server is not None:
        site.server.stop()
    site.engine.dispose()


# the browser


def chromium_or_skip() -> None:
    """Browser tests need Debian's chromium and chromium-driver; in CI (CI=true) they must run."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if not missing:
        return
    message = f"{' and '.join(missing)} missing: apt-get install -y chromium chromium-driver"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


class Browser:
    """A headless Chromium on a fresh profile, against one site."""

    def __init__(self, base_url: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.base_url = base_url
        self.profile = tempfile.mkdtemp(prefix="trialwatch-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={self.profile}",
            "--window-size=1280,900",
        ):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
        self.driver.set_page_load_timeout(30)

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    @property
    def path(self) -> str:
        url = str(self.driver.current_url)
        return url[len(self.base_url) :] if url.startswith(self.base_url) else url

    def wait_for(self, condition: Any, timeout: float = 20) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout).until(condition)

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def fill(self, fields: dict[str, str]) -> None:
        """Type into the inputs and textareas named in `fields` (cleared first)."""
        for name, value in fields.items():
            element = self.find(f'[name="{name}"]')
            element.clear()
            element.send_keys(value)

    def sign_in(self, email: str, password: str = PASSWORD) -> None:
        self.open("/login")
        self.fill({"email": email, "password": password})
        self.find("form[action='/login'] button[type=submit]").click()

    def screenshot(self, name: str) -> list[Path]:
        """The page at 1280 px and 360 px wide: nothing may stick out sideways at either width;
        whole-page PNGs go to $TRIALWATCH_SCREENSHOTS when it is set."""
        folder = os.environ.get("TRIALWATCH_SCREENSHOTS")
        saved = []
        for width in (1280, 360):
            metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 600}
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            assert not self.page_overflows(), f"{name}: the page is wider than {width} px"
            if folder:
                height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
                metrics["height"] = max(height, 600)
                self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
                Path(folder).mkdir(parents=True, exist_ok=True)
                path = Path(folder) / f"{name}-{width}.png"
                self.driver.save_screenshot(str(path))
                saved.append(path)
        self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        return saved

    def page_overflows(self) -> bool:
        """True when the page is wider than the window (something sticks out sideways)."""
        return bool(
            self.driver.execute_script(
                "return document.documentElement.scrollWidth > document.documentElement.clientWidth"
            )
        )

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
