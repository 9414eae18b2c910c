"""Channels in the browser (#24): the watch form takes a channel, the page shows it masked, Send a
test reaches the webhook and says what it answered; readable at 1280 and 360 px."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.webhook_server import Webhook, start_webhook_server

SECRET = "S3cretPassw0rdXYZ"


@pytest.fixture
def hook_server() -> Iterator[object]:
    server = start_webhook_server()
    yield server
    server.clear()
    server.stop()


def test_a_watch_with_a_channel_and_its_test_message(signed_in_browser, hook_server):
    hook = Webhook(hook_server)
    browser = signed_in_browser
    browser.find("header a[href='/watches/new']").click()
    browser.wait_for(lambda driver: browser.path == "/watches/new")
    browser.fill(
        {
            "name": "RCC chat",
            "conditions": "renal cell carcinoma",
            "recipients": "onc@example.org",
            "notify": hook.url(auth=f"trial:{SECRET}"),
        }
    )
    browser.find("#save-button").click()
    browser.wait_for(lambda driver: browser.path.startswith("/watches/RCC%20chat"))
    assert SECRET not in browser.driver.page_source
    assert "json://trial:****@127.0.0.1" in browser.find("#notify").get_attribute("value")
    browser.screenshot("watch-channels")

    browser.find("#notify-test-button").click()
    results = browser.wait_for(lambda driver: browser.find_all(".channel-tests li"))
    assert "accepted" in results[0].text and SECRET not in browser.driver.page_source
    assert [post["title"] for post in hook.received] == ["[trialwatch] test message"]
    browser.screenshot("watch-channel-tested")
