"""Issue #23 in the web app: the counts of results overdue and due soon on `/watches/<name>`, the
overdue count on the dashboard, each study's verdict explained in words on its page; over HTTP on
both databases and in the browser at 1280 and 360 px. The records are the real NCT05805501,
NCT05127824 and NCT04514484, their primary completion set relative to the app's clock (real time)
so that one is overdue, one due soon, one not applicable."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

from tests.harness import REAL_0216
from watcher.registry.client import CtgovClient
from watcher.registry.pipeline import Plan, poll_watch
from watcher.watch import WatchConfig

WATCH = WatchConfig(
    name="RCC due dates",
    nct_ids=["NCT05805501", "NCT05127824", "NCT04514484"],
    recipients=["onc@example.org"],
)


def completed(record: dict[str, Any], day: str) -> dict[str, Any]:
    copied = copy.deepcopy(record)
    copied["protocolSection"]["statusModule"]["primaryCompletionDateStruct"] = {"date": day, "type": "ACTUAL"}
    return copied


def seeded(site: Any, registry: Any, real_study: Any) -> dict[str, str]:
    today = site.clock.now().date()
    overdue_pc = (today - timedelta(days=365 + 60)).isoformat()  # due 60 days ago: overdue for 30
    soon_pc = (today - timedelta(days=365 - 20)).isoformat()  # due in 20 days
    registry.put(completed(real_study(REAL_0216), overdue_pc))
    registry.put(completed(real_study("study_NCT05127824_kidney_cancer_recruiting.json"), soon_pc))
    registry.put(real_study("study_NCT04514484_rcc_io_2026-02-10.json"))
    site.provision(WATCH)
    report = poll_watch(
        engine=site.engine, client=CtgovClient(site.config.clinicaltrials), watch=WATCH, plan=Plan("baseline"),
        now=datetime.now(UTC),
    )  # fmt: skip
    assert report.ok, report.error
    return {"overdue_pc": overdue_pc, "due": (today - timedelta(days=60)).isoformat()}


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_watch_page_dashboard_and_study_page_show_what_is_late(web_server, registry, real_study):
    dates = seeded(web_server, registry, real_study)
    client = web_server.signed_in("reader@example.org")
    watch = text_of(client.get("/watches/RCC%20due%20dates").text)
    assert "Results overdue 1 Results due soon 1" in watch
    assert "/calendar/RCC%20due%20dates.ics?token=" in watch
    card = client.get("/").text.split('data-watch="RCC due dates"')[1].split("</li>")[0]
    assert "Results overdue 1" in text_of(card) and "due soon" not in text_of(card)
    study = text_of(client.get("/studies/NCT05805501").text)
    overdue_from = (datetime.fromisoformat(dates["due"]) + timedelta(days=31)).date()
    assert (
        f"US results overdue since {overdue_from}: due {dates['due']}, no results submitted: "
        f"primary completion {dates['overdue_pc']} (actual) + 1 year; FDA-regulated drug; phase 2"
    ) in study
    phase1 = text_of(client.get("/studies/NCT04514484").text)
    assert "US results US results reporting does not apply: phase 1 only" in phase1


def test_due_counts_in_the_browser(signed_in_browser, browser_site, registry, real_study):
    seeded(browser_site, registry, real_study)
    signed_in_browser.open("/")
    card = signed_in_browser.find('li[data-watch="RCC due dates"]')
    assert "Results overdue" in card.text
    signed_in_browser.screenshot("dashboard-due")
    signed_in_browser.open("/watches/RCC%20due%20dates")
    assert "Results due soon" in signed_in_browser.find(".due-facts").text
    signed_in_browser.screenshot("watch-due")
    signed_in_browser.open("/studies/NCT05805501")
    assert "no results submitted" in signed_in_browser.find(".due-verdict").text
    signed_in_browser.screenshot("study-due")
