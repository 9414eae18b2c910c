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
