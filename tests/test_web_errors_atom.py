"""Issue #25, W9 and W10. A 500 still carries the security headers and `no-store`, and under /api
it is JSON (a real server whose app has a route that fails). The Atom feed is well-formed XML
whatever the registry's text or a watch's name holds (parsed back with an XML parser), and a watch
whose name has a "/" has a feed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import quote

import pytest
import requests
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.timeline_data import T0, add_change
from tests.web_support import Clock, UvicornThread, WebSite
from watcher.config import ClinicalTrialsConfig, Config, DatabaseConfig
from watcher.model import ChangeKind
from watcher.store import db
from watcher.watch import WatchConfig
from watcher.web.app import WebContext, create_app
from watcher.web.atom import ATOM_NS, render_atom
from watcher.web.headers import SECURITY_HEADERS

CONTROL = "bell\x07 escape\x1b form\x0c nul\x00 \ufffe end"


async def fails(request: Request) -> Response:
    raise RuntimeError("a bug nobody foresaw")


@pytest.fixture
def failing_site(tmp_path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'trialwatch.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    config = Config(database=DatabaseConfig(url=url), clinicaltrials=ClinicalTrialsConfig(), watch=[])
    app = create_app(
        WebContext(engine=engine, config=lambda: config, now=Clock().now),
        extra_routes=[Route("/broken", fails), Route("/api/v1/broken", fails)],
    )
    server = UvicornThread(app)
    yield server.start()
    server.stop()
    engine.dispose()


def test_a_500_has_the_security_headers_no_store_and_json_under_the_api(failing_site: str):
    page = requests.get(f"{failing_site}/broken", timeout=30)
    api = requests.get(f"{failing_site}/api/v1/broken", timeout=30)
    for answer in (page, api):
        assert answer.status_code == 500
        assert answer.headers["Cache-Control"] == "no-store"
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers[name] == value, name
        assert "nobody foresaw" not in answer.text  # the log has it, not the client
    assert "text/html" in page.headers["content-type"] and "went wrong on our side" in page.text
    assert api.json() == {"error": "Something went wrong on our side; it has been logged. Try again, or tell an admin."}


def test_the_atom_feed_is_well_formed_whatever_the_text_and_a_name_with_a_slash_has_one(web_server: WebSite):
    watch = WatchConfig(name="RCC a/b", conditions=["renal cell carcinoma"], recipients=["onc@example.org"])
    web_server.provision(watch)
    text = CONTROL.replace("\x00", "") if web_server.engine.dialect.name == "postgresql" else CONTROL
    add_change(web_server.engine, watch=watch.name, kind=ChangeKind.STATUS, nct_id="NCT09000001",
               title=f"Title {text}", summary=f"Status {text}", when=T0 + timedelta(days=1))  # fmt: skip
    token = web_server.token("reader@example.org")
    answer = web_server.client().get(f"/atom/{quote(watch.name, safe='')}.atom?token={token}")
    assert answer.status_code == 200, answer.text[:300]
    feed = ET.fromstring(answer.content)  # raises on anything not well-formed
    assert feed.findtext(f"{{{ATOM_NS}}}title") == "trialwatch: RCC a/b"
    entry = feed.find(f"{{{ATOM_NS}}}entry")
    assert entry is not None
    assert entry.findtext(f"{{{ATOM_NS}}}content") == "Status bell escape form nul  end"


def test_a_watch_name_with_control_characters_still_makes_well_formed_atom():
    body = render_atom(watch=f"odd {CONTROL}", changes=[], public_url="https://tw.example.org/", generated_at=T0)
    feed = ET.fromstring(body)
    assert feed.findtext(f"{{{ATOM_NS}}}title") == "trialwatch: odd bell escape form nul  end"
