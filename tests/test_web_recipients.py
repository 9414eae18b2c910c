"""The recipients' pages over HTTP (issue 13), on a real uvicorn over the same database as the
`trialwatch` commands that poll and mail through a real SMTP server (aiosmtpd), both databases:
one click by POST leaves the message's watches, for that recipient alone; a GET changes nothing;
a bad or altered token is a 404 that changes nothing; the manage page saves schedules, pauses and
opt-outs behind a CSRF token; a pause set there gives one digest after it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.harness import posted
from tests.web_support import csrf_of
from watcher.config import load_config
from watcher.recipient_token import make_token
from watcher.store import db, people
from watcher.store.watch_keys import active_ids_of

PUBLIC = "https://trialwatch.example.org"
SERVER = f'listen = "127.0.0.1:0"\npublic_url = "{PUBLIC}"'
BISPECIFICS, CART = "RCC bispecifics", "RCC CAR-T"
ONC, COORDINATOR = "onc@example.org", "coordinator@example.org"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def mailed(web_server, changed, smtp, database_url, monkeypatch) -> Any:
    """The CLI's watches took a baseline and found 3 changes; the web app serves the same
    database (its watches provisioned there); links signed with the key stored in the database."""
    monkeypatch.delenv("TRIALWATCH_SECRET_KEY", raising=False)
    cli = changed(smtp=smtp, server=SERVER, database_url=database_url)
    web_server.provision(*load_config(cli.config).watch)
    cli.site = web_server
    return cli


def token_of(message: Any) -> str:
    return str(message["List-Unsubscribe"]).removeprefix(f"<{PUBLIC}/u/").removesuffix(">")


def first_messages(smtp: Any, count: int) -> dict[str, Any]:
    return {item.rcpt_tos[0]: item.message for item in smtp.wait_for(count)[:count]}


def rows(cli: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["watch"], r["recipient"]): r for r in json.loads(cli("recipients", "--json"))}


def another_change(cli: Any, registry: Any, own_study: Any, status: str, day: str) -> None:
    record = own_study("study_NCT09000001_v2")
    record["protocolSection"]["statusModule"]["overallStatus"] = status
    registry.put(posted(record, day))
    cli("poll")


def test_one_click_stops_the_next_digest_for_that_recipient_alone(mailed, smtp, registry, own_study):
    cli, site = mailed, mailed.site
    cli("digest", "--now")
    token = token_of(first_messages(smtp, 2)[ONC])
    answer = site.client().post(f"/u/{token}", data=ONE_CLICK)  # what a mail client sends: no cookie, no CSRF
    assert answer.status_code == 200, answer.text
    assert "You are unsubscribed" in answer.text and "set-cookie" not in answer.headers
    assert rows(cli)[(BISPECIFICS, ONC)]["unsubscribed_at"] and rows(cli)[(CART, ONC)]["unsubscribed_at"]
    assert rows(cli)[(BISPECIFICS, COORDINATOR)]["unsubscribed_at"] is None

    another_change(cli, registry, own_study, "COMPLETED", "2026-11-21")
    cli("digest", "--now")
    (after,) = smtp.wait_for(3)[2:]
    assert after.rcpt_tos == [COORDINATOR]
    assert after.message["Subject"] == f"[trialwatch] {BISPECIFICS}: 1 status change"
    assert "nothing to deliver" in cli("digest", "--now")
    again = site.client().post(f"/u/{token}", data=ONE_CLICK)  # a second click: still fine, nothing new
    assert again.status_code == 200


def test_a_get_changes_nothing_and_offers_one_button(mailed, smtp, registry, own_study):
    cli, site = mailed, mailed.site
    cli("digest", "--now")
    token = token_of(first_messages(smtp, 2)[COORDINATOR])
    before = rows(cli)
    for _ in range(3):  # a link scanner, a preview, the person
        page = site.client().get(f"/u/{token}")
        assert page.status_code == 200
    assert f'<form method="post" action="/u/{token}"' in page.text
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page.text
    assert f"<li>{BISPECIFICS}</li>" in page.text and CART not in page.text
    assert rows(cli) == before
    another_change(cli, registry, own_study, "COMPLETED", "2026-11-21")
    cli("digest", "--now")
    assert sorted(item.rcpt_tos[0] for item in smtp.wait_for(4)[2:]) == [COORDINATOR, ONC]  # still mailed


def altered(token: str) -> list[str]:
    version, payload, signature = token.split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    forged = make_token(b"somebody else's key", ONC, [1])
    return [
        f"{version}.{flipped}.{signature}",
        f"{version}.{payload}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        token[:-3],
        forged,
        "not-a-token",
    ]


def test_an_altered_token_is_a_404_and_changes_nothing(mailed, smtp):
    cli, site = mailed, mailed.site
    cli("digest", "--now")
    token = token_of(first_messages(smtp, 2)[ONC])
    before = rows(cli)
    client = site.client()
    for bad in altered(token):
        for method, path, data in (
            ("GET", f"/u/{bad}", None),
            ("POST", f"/u/{bad}", ONE_CLICK),
            ("GET", f"/m/{bad}", None),
            ("POST", f"/m/{bad}", {"watch-0": BISPECIFICS, "subscribed-0": "no"}),
        ):
            answer = client.request(method, path, data=data)
            assert answer.status_code == 404, (method, path, answer.status_code)
            assert "This link does not work" in answer.text
    assert rows(cli) == before


def test_one_click_as_multipart_form_data_works_too(mailed, smtp):
    """RFC 8058 allows either form encoding; some mail clients send multipart/form-data."""
    cli, site = mailed, mailed.site
    cli("digest", "--now")
    token = token_of(first_messages(smtp, 2)[COORDINATOR])
    answer = site.client().post(f"/u/{token}", files={"List-Unsubscribe": (None, "One-Click")})
    assert answer.status_code == 200 and "You are unsubscribed" in answer.text
    assert answer.request.headers["content-type"].startswith("multipart/form-data")
    assert rows(cli)[(BISPECIFICS, COORDINATOR)]["unsubscribed_at"] is not None
    assert rows(cli)[(BISPECIFICS, ONC)]["unsubscribed_at"] is None


def test_a_post_without_the_one_click_body_changes_nothing(mailed, smtp):
    cli, site = mailed, mailed.site
    cli("digest", "--now")
    token = token_of(first_messages(smtp, 2)[ONC])
    answer = site.client().post(f"/u/{token}", data={"List-Unsubscribe": "yes please"})
    assert answer.status_code == 400 and "Nothing changed" in answer.text
    assert all(r["unsubscribed_at"] is None for r in rows(cli).values())


def test_the_manage_page_saves_behind_a_csrf_token(mailed, smtp):
    cli, site = mailed, mailed.site
    cli("digest", "--now")
    token = token_of(first_messages(smtp, 2)[COORDINATOR])  # a message naming one watch ...
    onc_token = make_token(_key(site), ONC, _ids(site, BISPECIFICS))
    client = site.client()
    page = client.get(f"/m/{onc_token}")  # ... the page shows every watch the recipient receives
    assert page.status_code == 200 and "Your alerts" in page.text
    assert f"<legend>{BISPECIFICS}</legend>" in page.text and f"<legend>{CART}</legend>" in page.text
    assert "As the watch: daily" in page.text and "As the watch: weekly" in page.text
    choices = {
        "watch-0": BISPECIFICS, "subscribed-0": "yes", "schedule-0": "weekly", "paused_until-0": "",
        "pause_changes-0": "deliver", "watch-1": CART, "subscribed-1": "no", "schedule-1": "",
        "paused_until-1": "", "pause_changes-1": "deliver",
    }  # fmt: skip
    refused = site.client().post(f"/m/{onc_token}", data=choices)  # no CSRF token: refused
    assert refused.status_code == 403
    assert rows(cli)[(BISPECIFICS, ONC)]["own_schedule"] is False
    saved = client.post(f"/m/{onc_token}", data={"csrf_token": csrf_of(page.text), **choices})
    assert saved.status_code == 303 and saved.headers["location"] == f"/m/{onc_token}?saved=1"
    assert "Saved." in client.get(saved.headers["location"]).text
    now = rows(cli)
    assert (now[(BISPECIFICS, ONC)]["schedule"], now[(BISPECIFICS, ONC)]["own_schedule"]) == ("weekly", True)
    assert now[(CART, ONC)]["unsubscribed_at"] is not None
    assert (now[(BISPECIFICS, COORDINATOR)]["own_schedule"], now[(BISPECIFICS, COORDINATOR)]["unsubscribed_at"]) == (
        False, None,
    )  # fmt: skip
    assert site.client().get(f"/m/{token}").status_code == 200  # public: no sign-in asked

    page = client.get(f"/m/{onc_token}")
    again = {**choices, "subscribed-1": "yes", "paused_until-0": "2020-01-01"}
    wrong = client.post(f"/m/{onc_token}", data={"csrf_token": csrf_of(page.text), **again})
    assert wrong.status_code == 400 and "Pick a day after today" in wrong.text
    assert rows(cli)[(CART, ONC)]["unsubscribed_at"] is not None  # nothing saved
    again["paused_until-0"] = ""
    assert client.post(f"/m/{onc_token}", data={"csrf_token": csrf_of(page.text), **again}).status_code == 303
    assert rows(cli)[(CART, ONC)]["unsubscribed_at"] is None  # subscribed again


def _ids(site: Any, *names: str) -> list[int]:
    with db.transaction(site.engine) as session:
        return active_ids_of(session=session, names=names)


def _key(site: Any) -> bytes:
    with db.transaction(site.engine) as session:
        return people.session_key(session=session, now=datetime.now(UTC)).encode()


def test_a_pause_set_on_the_page_gives_one_digest_after_it(mailed, smtp):
    cli, site = mailed, mailed.site
    site.clock.advance(datetime(2026, 11, 21, 10, 5, tzinfo=UTC) - site.clock.now())  # the CLI's day
    token = make_token(_key(site), ONC, _ids(site, BISPECIFICS))
    client = site.client()
    page = client.get(f"/m/{token}")
    form = {
        "csrf_token": csrf_of(page.text), "watch-0": BISPECIFICS, "subscribed-0": "yes", "schedule-0": "",
        "paused_until-0": "2026-11-25", "pause_changes-0": "deliver", "watch-1": CART, "subscribed-1": "yes",
        "schedule-1": "", "paused_until-1": "", "pause_changes-1": "deliver",
    }  # fmt: skip
    assert client.post(f"/m/{token}", data=form).status_code == 303
    assert "Paused until 2026-11-25" in client.get(f"/m/{token}").text
    assert rows(cli)[(BISPECIFICS, ONC)]["paused_until"] == "2026-11-25T00:00:00+00:00"
    sent_on: dict[str, list[str]] = {}
    for day in ("22", "23", "24", "25", "26"):
        cli.now = f"2026-11-{day}T07:01:00+00:00"
        before = len(smtp.received)
        cli("digest")
        sent_on[day] = [f"{m.rcpt_tos[0]} {m.message['Subject'].split(':')[0]}" for m in smtp.received[before:]]
    assert sent_on == {
        "22": [f"{COORDINATOR} [trialwatch] {BISPECIFICS}"],
        "23": [f"{ONC} [trialwatch] {CART}"],
        "24": [],
        "25": [f"{ONC} [trialwatch] {BISPECIFICS}"],  # the pause's changes, in one digest
        "26": [],
    }


def test_the_watch_page_lists_the_opt_outs(web_server):
    from tests.web_support import FILE_WATCH
    from watcher.store import recipients

    at = web_server.clock.now()
    with db.transaction(web_server.engine) as session:
        recipients.unsubscribe(session=session, recipient=ONC, watches=[FILE_WATCH.name], now=at)
    page = web_server.signed_in("reader@example.org").get("/watches/RCC%20file%20watch")
    assert page.status_code == 200
    section = page.text.split("<h2>Recipients</h2>")[1]
    assert f'<td data-label="Recipient">{ONC}</td>' in section
    assert f"opted out since {at:%Y-%m-%d %H:%M} UTC" in section
