"""In a real browser (Debian's Chromium through Selenium, headless): what a person does in the
web app. Screenshots of every page at 1280 and 360 px go to $TRIALWATCH_SCREENSHOTS when set.
Never skipped in CI (CI=true): a missing Chromium fails there."""

from __future__ import annotations

from tests.web_support import PASSWORD


def test_sign_in_with_a_wrong_password_then_the_right_one_then_sign_out(browser, browser_site):
    browser_site.add_user("ann@example.org")
    browser.open("/")
    assert browser.path.startswith("/login")
    browser.screenshot("login")
    browser.sign_in("ann@example.org", "not my password")
    alert = browser.wait_for(lambda driver: browser.find(".alert.error"))
    assert alert.text == "Wrong email address or password."
    assert browser.find("#email").get_attribute("value") == "ann@example.org"
    browser.screenshot("login-wrong-password")
    browser.fill({"password": PASSWORD})
    browser.find("form[action='/login'] button[type=submit]").click()
    browser.wait_for(lambda driver: browser.path == "/")
    assert "Signed in as ann@example.org (member)" in browser.find("footer").text
    assert not browser.page_overflows()
    browser.find("header form[action='/logout'] button").click()
    browser.wait_for(lambda driver: browser.path == "/login")
    browser.open("/")
    assert browser.path.startswith("/login")


def test_create_a_watch_with_its_preview_edit_it_and_see_it_on_the_dashboard(
    signed_in_browser, browser_site, registry, own_study
):
    registry.put(own_study("study_NCT09000001_v1"))
    registry.put(own_study("study_NCT09000002_v1"))
    browser = signed_in_browser
    browser.screenshot("dashboard-config-watch")
    browser.find("header a[href='/watches/new']").click()
    browser.wait_for(lambda driver: browser.path == "/watches/new")
    assert browser.find("#recipients").get_attribute("value") == "admin@example.org"
    browser.screenshot("new-watch")
    browser.fill(
        {
            "name": "RCC bispecifics",
            "conditions": "renal cell carcinoma",
            "terms": "bispecific\ntobemstomig",
            "recipients": "onc@example.org",
        }
    )
    requests_before = registry.request_count("/studies")
    browser.find("#preview-button").click()  # preview.js swaps the preview box in place
    count = browser.wait_for(lambda driver: browser.find_all("#preview .count"))
    assert "2 studies match now" in count[0].text
    studies = browser.find_all("#preview li")
    assert [li.find_element("css selector", "a").text for li in studies] == ["NCT09000001", "NCT09000002"]
    assert "Recruiting" in studies[0].text and "matched" in studies[0].text
    assert registry.request_count("/studies") == requests_before + 1
    assert browser.path == "/watches/new" and browser.find("#name").get_attribute("value") == "RCC bispecifics"
    assert not browser.page_overflows()
    browser.screenshot("new-watch-preview")
    browser.find("#save-button").click()
    browser.wait_for(lambda driver: browser.path.startswith("/watches/RCC%20bispecifics"))
    assert "Saved." in browser.find(".alert.ok").text
    browser.screenshot("watch-saved")

    browser.fill({"terms": "bispecific\ntobemstomig\nFX-101", "recipients": "onc@example.org\nnurse@example.org"})
    browser.find("#save-button").click()
    browser.wait_for(
        lambda driver: "FX-101" in browser.find("#terms").get_attribute("value") and browser.find_all(".alert.ok")
    )
    history = browser.find("table.stack").text
    assert "update" in history and "FX-101" in history
    browser.screenshot("watch-edited")

    mark_failing(browser_site, "RCC file watch")
    browser.find("header a[href='/']").click()
    browser.wait_for(lambda driver: browser.path == "/")
    failing = browser.find("li.watch[data-watch='RCC file watch']")
    assert "failing" in failing.text and "GET https://clinicaltrials.gov/api/v2/studies" in failing.text
    card = browser.find("li.watch[data-watch='RCC bispecifics']")
    assert "FX-101" in card.text and "nurse@example.org" in card.text and "daily at 07:00 (UTC)" in card.text
    assert "waiting for its first poll" in card.text
    assert not browser.page_overflows()
    browser.screenshot("dashboard")


def test_errors_appear_next_to_the_field_in_the_browser(signed_in_browser):
    browser = signed_in_browser
    browser.open("/watches/new")
    browser.fill({"name": "Broken", "conditions": "renal cell carcinoma", "recipients": "not an address"})
    browser.find("#save-button").click()
    error = browser.wait_for(lambda driver: browser.find_all("#recipients-error"))
    assert "not a valid mail address" in error[0].text
    assert browser.find("#recipients").get_attribute("aria-invalid") == "true"
    browser.screenshot("new-watch-errors")


def test_account_and_config_watch_pages(signed_in_browser):
    browser = signed_in_browser
    browser.open("/watches/RCC%20file%20watch")
    assert "managed in" in browser.find(".alert.warn").text
    browser.screenshot("config-watch")
    browser.open("/account")
    browser.fill({"name": "notebook"})
    browser.find(".token-form button").click()
    token = browser.wait_for(lambda driver: browser.find_all("#new-token"))
    assert token[0].text.startswith("tw_")
    assert not browser.page_overflows()
    browser.screenshot("account")


def test_the_setup_link_creates_the_first_admin(browser, browser_site):
    from watcher.store import db, people

    with db.transaction(browser_site.engine) as session:
        token = people.ensure_setup_token(session=session, now=browser_site.clock.now())
    browser.open(f"/setup/{token}")
    browser.screenshot("setup")
    browser.fill({"email": "boss@example.org", "password": PASSWORD, "password_again": PASSWORD})
    browser.find("form button[type=submit]").click()
    browser.wait_for(lambda driver: browser.path == "/")
    assert "boss@example.org (admin)" in browser.find("footer").text
    browser.open("/logout")
    browser.screenshot("logout")
    browser.find("main form button").click()
    browser.wait_for(lambda driver: browser.path == "/login")
    browser.open(f"/setup/{token}")
    assert "expired or was used already" in browser.find(".message").text
    browser.screenshot("setup-used")


def mark_failing(site, name):
    """The watch's polls fail since an hour ago (as the daemon records it), a long error included."""
    from datetime import timedelta

    from watcher.store import db
    from watcher.store.models import WatchState

    now = site.clock.now()
    error = "GET https://clinicaltrials.gov/api/v2/studies?query.cond=%22renal+cell+carcinoma%22&pageSize=1000: 503"
    with db.transaction(site.engine) as session:
        session.add(
            WatchState(
                name=name, last_poll_at=now, last_success_at=now - timedelta(days=1),
                failing_since=now - timedelta(hours=1), last_error=error,
            )
        )  # fmt: skip


def test_the_database_unreachable_page(tmp_path):
    from tests.web_support import Browser, Clock, UvicornThread, chromium_or_skip
    from watcher.config import Config
    from watcher.store import db
    from watcher.web.app import WebContext, create_app

    chromium_or_skip()
    engine = db.make_engine("postgresql+psycopg://trialwatch@127.0.0.1:1/trialwatch?connect_timeout=2")
    config = Config()
    server = UvicornThread(create_app(WebContext(engine=engine, config=lambda: config, now=Clock().now)))
    browser = Browser(server.start())
    try:
        browser.open("/")
        assert "The database cannot be reached right now; trialwatch keeps trying" in browser.find(".message").text
        browser.screenshot("database-unreachable")
    finally:
        browser.close()
        server.stop()
        engine.dispose()


def test_the_rules_section_opens_and_saves_a_threshold_and_a_country(signed_in_browser, browser_site):
    browser = signed_in_browser
    browser.open("/watches/new")
    rules = browser.find("details#rules")
    assert rules.get_attribute("open") is None  # closed while no rule is set
    assert not browser.find("#min_slip_days").is_displayed()
    browser.screenshot("new-watch-rules-closed")
    browser.find("details#rules > summary").click()
    browser.wait_for(lambda driver: browser.find("#min_slip_days").is_displayed())
    browser.fill({"name": "Dallas RCC", "conditions": "renal cell carcinoma", "recipients": "site@example.org"})
    browser.fill({"min_slip_days": "30", "countries": "United States"})
    browser.find("#alert_on input[value='dates']").click()
    browser.find("#alert_on input[value='status']").click()
    browser.screenshot("new-watch-rules-open")
    browser.find("#save-button").click()
    browser.wait_for(lambda driver: browser.path.startswith("/watches/Dallas%20RCC"))
    assert browser.find("#min_slip_days").get_attribute("value") == "30"
    assert browser.find("#countries").get_attribute("value") == "United States"
    assert browser.find("details#rules").get_attribute("open") is not None  # open: rules are set
    words = browser.find("dd.rules-words").text
    assert words == "mails: status, dates; dates only when they move 30 days or more, or become actual; " \
        "sites in United States"  # fmt: skip
    browser.screenshot("watch-rules-saved")
    browser.fill({"min_slip_days": "0", "near_lat": "95", "near_lon": "-96.8", "near_radius_km": "100"})
    browser.find("#save-button").click()
    error = browser.wait_for(lambda driver: browser.find_all("#min_slip_days-error"))
    assert error[0].text == "min_slip_days must be a whole number of at least 1, not 0"
    assert browser.find("#near_lat-error").text == "near.lat must be between -90 and 90, not 95"
    assert browser.find("#near_lat").get_attribute("aria-invalid") == "true"
    browser.screenshot("watch-rules-errors")
    browser.open("/")
    card = browser.find("li.watch[data-watch='Dallas RCC']")
    assert "sites in United States" in card.text
    browser.screenshot("dashboard-rules")
