"""Issue 25 in the browser: a feed address with a read-only token from a watch's changes, and
"Sign out everywhere" on the account page (looked at at 1280 and 360 px)."""

from __future__ import annotations

from tests.web_support import WebClient


def test_make_a_feed_address_then_sign_out_everywhere(signed_in_browser, browser_site):
    browser = signed_in_browser
    other = WebClient(browser_site.url)  # the same person on another computer
    assert other.sign_in("admin@example.org").status_code == 303
    browser.open("/changes?watch=RCC+file+watch")
    browser.screenshot("changes-feed-address")
    browser.find("form[action='/account/feed-address'] button[type=submit]").click()
    browser.wait_for(lambda driver: browser.find_all("#new-feed-url"))
    url = browser.find("#new-feed-url").text
    assert "/atom/RCC%20file%20watch.atom?token=tw_" in url
    assert "read-only" in browser.find("table").text
    assert "signed in on 2 browsers" in browser.find("main").text
    browser.screenshot("account-feed-address")
    browser.find("form[action='/account/sign-out-everywhere'] button[type=submit]").click()
    browser.wait_for(lambda driver: browser.path.startswith("/login"))
    assert other.get("/").status_code == 303
    browser.open("/account")
    assert browser.path.startswith("/login")
