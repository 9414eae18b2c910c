"""Channels in the web app and the API (#24), on both databases: masked in every answer and page, a
masked URL sent back keeps the stored secret, a bad URL is a 422 naming the position, "Send a
test" reaches the webhook, /sources shows each channel's health."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import select

from tests.webhook_server import Webhook, start_webhook_server
from watcher import channels
from watcher.store import db
from watcher.store.models import AuditEntry, Delivery, WatchRow

SECRET = "S3cretPassw0rdXYZ"


@pytest.fixture
def hook_server() -> Iterator[object]:
    server = start_webhook_server()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def hook(hook_server) -> Webhook:
    return Webhook(hook_server)


def new_watch(url: str) -> dict[str, object]:
    return {
        "name": "RCC chat",
        "conditions": ["renal cell carcinoma"],
        "recipients": ["onc@example.org"],
        "notify": [url],
    }


def stored_notify(site) -> list[str]:
    with db.transaction(site.engine) as session:
        return list(session.exec(select(WatchRow).where(WatchRow.name == "RCC chat")).one().definition["notify"])


def test_the_api_masks_and_a_masked_url_sent_back_keeps_the_secret(web_server, hook):
    api = web_server.api(web_server.token("member@example.org"))
    secret_url = hook.url(auth=f"trial:{SECRET}")

    created = api.post("/api/v1/watches", json=new_watch(secret_url))
    read = api.get("/api/v1/watches/RCC%20chat")
    listed = api.get("/api/v1/watches")

    assert created.status_code == 201, created.text
    for answer in (created, read, listed):
        assert SECRET not in answer.text
    [shown] = read.json()["notify"]
    assert shown.startswith("json://trial:****@127.0.0.1")

    body = {key: value for key, value in read.json().items()}
    body["digest"] = "weekly"
    assert api.put("/api/v1/watches/RCC%20chat", json=body).status_code == 200
    assert stored_notify(web_server) == [secret_url]  # sent back masked: the secret stays

    other = hook.url(auth="trial:AnotherSecret99")
    assert api.put("/api/v1/watches/RCC%20chat", json={**body, "notify": [other]}).status_code == 200
    assert stored_notify(web_server) == [other]  # a new URL replaces it
    with db.transaction(web_server.engine) as session:
        audit = " ".join(str(entry.changes) for entry in session.exec(select(AuditEntry)))
    assert SECRET not in audit and "AnotherSecret99" not in audit and "****" in audit


def test_a_bad_url_is_422_naming_the_position_never_the_url(web_server):
    api = web_server.api(web_server.token("member@example.org"))
    body = new_watch("json://127.0.0.1/ok")
    body["notify"] = ["json://127.0.0.1/ok", f"nosuch://{SECRET}"]

    answer = api.post("/api/v1/watches", json=body)

    assert answer.status_code == 422
    [error] = answer.json()["errors"]
    assert error["field"] == "notify" and "notify URL 2" in error["message"]
    assert SECRET not in answer.text


def test_the_form_shows_channels_masked_and_saving_as_shown_keeps_them(web_server, hook):
    client = web_server.signed_in("member@example.org")
    secret_url = hook.url(auth=f"trial:{SECRET}")
    form = {
        "name": "RCC chat",
        "conditions": "renal cell carcinoma",
        "recipients": "onc@example.org",
        "notify": secret_url,
        "digest": "daily",
        "action": "save",
    }
    assert client.submit("/watches/new", form).status_code == 303

    page = client.get("/watches/RCC%20chat")
    assert SECRET not in page.text and "json://trial:****@127.0.0.1" in page.text
    shown = channels.masked(secret_url)
    saved = client.submit("/watches/RCC%20chat", {**form, "notify": shown, "digest": "weekly"})
    assert saved.status_code == 303
    assert stored_notify(web_server) == [secret_url]

    tested = client.submit("/watches/RCC%20chat", {"action": "notify-test"})
    assert tested.status_code == 200 and "accepted" in tested.text and SECRET not in tested.text
    assert [post["title"] for post in hook.received] == ["[trialwatch] test message"]


def test_sources_show_each_channels_health(web_server, hook_server):
    broken = Webhook(hook_server, path="/broken")
    api = web_server.api(web_server.token("member@example.org"))
    assert api.post("/api/v1/watches", json=new_watch(broken.url(auth=f"trial:{SECRET}"))).status_code == 201
    now = web_server.clock.now()
    with db.transaction(web_server.engine) as session:
        session.add(
            Delivery(
                recipient=channels.address(broken.url(auth=f"trial:{SECRET}")), message_id="<m1@x>", status="pending",
                attempts=2, last_error="json://trial:****@127.0.0.1: Internal Server Error (500)",
                created_at=now - timedelta(hours=1), next_attempt_at=now + timedelta(minutes=10),
            )
        )  # fmt: skip

    page = web_server.signed_in("reader@example.org").get("/sources")

    assert page.status_code == 200 and SECRET not in page.text
    assert "json://trial:****@127.0.0.1" in page.text and "Internal Server Error (500)" in page.text
    assert "RCC chat" in page.text
