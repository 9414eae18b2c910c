"""The recipients' pages in a real browser (Debian's Chromium through Selenium, headless): the
manage page and the unsubscribe page as a recipient uses them from a mail, no account, at 1280
and 360 px (screenshots into $TRIALWATCH_SCREENSHOTS when set)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.web_support import FILE_WATCH
from watcher.recipient_token import make_token
from watcher.store import db, people, recipients
from watcher.store.watch_keys import active_ids_of
from watcher.watch import WatchConfig

ONC = "onc@example.org"
SECOND = WatchConfig(
    name="RCC CAR-T and other cell therapies in clear-cell renal cell carcinoma",
    conditions=["renal cell carcinoma"], terms=["CAR-T"], recipients=[ONC, "nurse@example.org"], digest="weekly",
)  # fmt: skip


def token_for(site: Any, watches: list[str]) -> str:
    with db.transaction(site.engine) as session:
        key = people.session_key(session=session, now=site.clock.now())
        ids = active_ids_of(session=session, names=watches)
    return make_token(key.encode(), ONC, ids)


def state(site: Any, watch: str) -> Any:
    with db.transaction(site.engine) as session:
        return {
            row.watch: row
            for row in recipients.receiving(
                session=session, watches=[(w.name, w.digest, w.recipients) for w in (FILE_WATCH, SECOND)],
                now=site.clock.now(), recipient=ONC,
            )
        }[watch]  # fmt: skip


def wait_for_text(browser: Any, css: str, text: str) -> None:
    """Wait until the element's text holds `text`, through the page load a form submit starts
    (an element of the page being left goes stale: try again)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    passing = (NoSuchElementException, StaleElementReferenceException)
    WebDriverWait(browser.driver, 20, ignored_exceptions=passing).until(lambda driver: text in browser.find(css).text)


def at_360(browser: Any) -> bool:
    """Whether the page, laid out 360 px wide, sticks out sideways."""
    browser.driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 360, "height": 800, "deviceScaleFactor": 1, "mobile": True}
    )
    try:
        return browser.page_overflows()
    finally:
        browser.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_the_manage_page_in_a_browser(browser, browser_site):
    browser_site.provision(FILE_WATCH, SECOND)
    token = token_for(browser_site, [FILE_WATCH.name])
    browser.open(f"/m/{token}")
    assert browser.find("h1").text == "Your alerts"
    legends = [element.text for element in browser.find_all("fieldset.watch-choice > legend")]
    assert legends == [FILE_WATCH.name, SECOND.name]
    assert not at_360(browser)
    browser.screenshot("recipient-manage")

    from selenium.webdriver.support.ui import Select

    Select(browser.find("#schedule-0")).select_by_value("weekly")
    resume = (browser_site.clock.now() + timedelta(days=10)).date().isoformat()
    browser.driver.execute_script("arguments[0].value = arguments[1]", browser.find("#paused_until-1"), resume)
    browser.find("input[name='pause_changes-1'][value='skip']").click()
    browser.find("form[action^='/m/'] button[type=submit]").click()
    wait_for_text(browser, ".alert.ok", "Saved.")
    assert f"Paused until {resume}, its news skipped" in browser.find("body").text
    assert state(browser_site, FILE_WATCH.name).own_schedule == "weekly"
    second = state(browser_site, SECOND.name)
    assert second.paused_until is not None and second.pause_changes == "skip"
    assert not at_360(browser)
    browser.screenshot("recipient-manage-saved")

    browser.find("input[name='subscribed-1'][value='no']").click()
    browser.find("form[action^='/m/'] button[type=submit]").click()
    wait_for_text(browser, "body", "Unsubscribed since")
    assert state(browser_site, SECOND.name).unsubscribed_at is not None
    assert not at_360(browser)
    browser.screenshot("recipient-manage-unsubscribed")


def test_the_unsubscribe_page_in_a_browser(browser, browser_site):
    browser_site.provision(FILE_WATCH, SECOND)
    token = token_for(browser_site, [FILE_WATCH.name, SECOND.name])
    browser.open(f"/u/{token}")
    assert browser.find("h1").text == "Unsubscribe"
    assert [li.text for li in browser.find_all(".watch-list li")] == [FILE_WATCH.name, SECOND.name]
    assert state(browser_site, FILE_WATCH.name).unsubscribed_at is None  # opening the page changed nothing
    assert not at_360(browser)
    browser.screenshot("recipient-unsubscribe")
    browser.find(".unsubscribe-form button").click()
    wait_for_text(browser, "h1", "You are unsubscribed")
    assert state(browser_site, FILE_WATCH.name).unsubscribed_at is not None
    assert state(browser_site, SECOND.name).unsubscribed_at is not None
    assert not at_360(browser)
    browser.screenshot("recipient-unsubscribed")
    browser.open(f"/u/{token[:-2]}")
    assert browser.find("h1").text == "This link does not work"
    browser.screenshot("recipient-link-invalid")

    browser_site.add_user("admin@example.org", role="admin")  # the watch's page lists the opt-outs
    browser.sign_in("admin@example.org")
    browser.wait_for(lambda driver: browser.path == "/")
    browser.open("/watches/RCC%20file%20watch")
    wait_for_text(browser, "#watch-recipients table", "opted out since")
    assert "onc@example.org" in browser.find("#watch-recipients table").text
    assert not at_360(browser)
    browser.screenshot("watch-page-recipients")
