"""The registry's version history in the browser and the API: each stored version with its registry
number, the comparison links, the chart's points, a history that could not be read, and the
backfill's progress on /sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import real_fixtures_path
from tests.harness import Cli, write_config
from tests.servers import Fault
from tests.test_registry_history import watch_of

GOOD, FAILING = "NCT07011550", "NCT05935098"  # four versions, RECRUITING -> SUSPENDED; a history that 403s


@pytest.fixture
def history_dir() -> Path:
    path = real_fixtures_path() / "registry-history"
    if not (path / GOOD / "history.json").is_file():
        pytest.skip(f"registry history fixtures not found at {path}")
    return path


def backfilled(site: Any, registry: Any, history_dir: Path, tmp_path: Path, database_url: str) -> None:
    """A baseline of both studies and their backfill, into the site's database: FAILING's history
    answers 403 (its backfill comes first: by id)."""
    registry.load_history(history_dir / GOOD)
    registry.load_history(history_dir / FAILING)
    registry.fail_history(Fault.status(403, "Forbidden"))
    folder = tmp_path / "cli"
    folder.mkdir()
    config = write_config(folder, registry, database_url=database_url, watches=watch_of(GOOD, FAILING), history=True)
    assert "1 studies backfilled (3 versions" in Cli(config)("poll")


def test_study_page_api_and_sources_show_the_registry_history(web_server, registry, history_dir, tmp_path):
    backfilled(web_server, registry, history_dir, tmp_path, str(web_server.engine.url.render_as_string(False)))
    client = web_server.signed_in("reader@example.org")
    page = client.get(f"/studies/{GOOD}").text
    assert "from the registry's history, submitted 2025-08-20" in page
    assert page.count("registry version ") >= 4 and "registry version 4 ·" in page
    assert "compare versions 1 and 2 on ClinicalTrials.gov" in page
    assert f"https://clinicaltrials.gov/study/{GOOD}?tab=history&amp;a=1&amp;b=2#version-content-panel" in page
    assert "v1 · 2025-08-20 · registry version 1" in page  # the chart's point says its registry version
    assert "4 registry versions stored" in page
    failing = client.get(f"/studies/{FAILING}").text
    assert "history could not be read" in failing and "HTTP 403" in failing
    sources = client.get("/sources").text
    assert "1 studies done" in sources and "1 failing" in sources and "HTTP 403" in sources
    api = web_server.api(web_server.token("robot@example.org"))
    body = api.get(f"/api/v1/studies/{GOOD}").json()
    assert [v["registry_version"] for v in body["versions"]] == [0, 1, 2, 3]
    assert [v["from_history"] for v in body["versions"]] == [True, True, True, False]
    assert body["versions"][1]["compare_url"].endswith("?tab=history&a=1&b=2#version-content-panel")
    assert body["history"]["status"] == "done" and body["history"]["versions"] == 4
    failed = api.get(f"/api/v1/studies/{FAILING}").json()["history"]
    assert failed["status"] == "failing" and "HTTP 403" in failed["last_error"]
    changes = api.get("/api/v1/changes", params={"nct_id": GOOD, "held_back": "1"}).json()
    past = [c for c in changes["changes"] if c["historical"]]
    assert past and all(c["registry_versions"] and not c["alerted"] for c in past)
    assert not [c for c in api.get("/api/v1/changes").json()["changes"] if c["historical"]]


def test_the_study_page_with_its_history_in_the_browser(
    signed_in_browser, browser_site, registry, history_dir, tmp_path
):
    backfilled(browser_site, registry, history_dir, tmp_path, str(browser_site.engine.url.render_as_string(False)))
    signed_in_browser.open(f"/studies/{GOOD}")
    signed_in_browser.wait_for(lambda driver: "Stored versions" in driver.page_source)
    assert "compare versions 3 and 4 on ClinicalTrials.gov" in signed_in_browser.find("ul.versions").text
    signed_in_browser.screenshot("study-history")
    signed_in_browser.open(f"/studies/{FAILING}")
    signed_in_browser.wait_for(lambda driver: "history could not be read" in driver.page_source)
    signed_in_browser.screenshot("study-history-failing")
    signed_in_browser.open("/sources")
    signed_in_browser.wait_for(lambda driver: "version history" in driver.page_source)
    signed_in_browser.screenshot("sources-history")
