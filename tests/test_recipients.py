"""Recipients in charge of their own mail (issue 13), at the mail level: the List-Unsubscribe
headers and footer links with a token that reads back; opt-outs (nothing more from that watch,
unsent changes skipped and listed with why, kept when the address leaves the file and comes
back); a recipient's own schedule; pauses whose changes come in one digest after them or are
skipped; `trialwatch recipients` and `check`. Real SMTP (aiosmtpd), both databases."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.harness import posted
from watcher.cli.shared import make_service
from watcher.config import load_config
from watcher.recipient_token import TokenWatches, read_token
from watcher.store import db, recipients
from watcher.store.watch_keys import active_ids_of

PUBLIC = "https://trialwatch.example.org/tw"
SERVER = f'listen = "127.0.0.1:0"\npublic_url = "{PUBLIC}"'
SECRET = "a secret key for the tests only, 48 characters long"
BISPECIFICS, CART = "RCC bispecifics", "RCC CAR-T"
ONC, COORDINATOR = "onc@example.org", "coordinator@example.org"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("TRIALWATCH_SECRET_KEY", SECRET)
    return SECRET.encode()


def store(cli: Any, action: Any) -> Any:
    """Run `action(session)` in a transaction on the CLI's database (as the web pages do)."""
    engine = make_service(load_config(cli.config)).engine
    with db.transaction(engine) as session:
        return action(session)


def watch_ids(cli: Any, *names: str) -> list[int]:
    """The ids of these watches (a message's links name them by id)."""
    return store(cli, lambda session: active_ids_of(session=session, names=names))


def another_status_change(registry: Any, own_study: Any, status: str, day: str = "2026-11-21") -> None:
    record = own_study("study_NCT09000001_v2")
    record["protocolSection"]["statusModule"]["overallStatus"] = status
    registry.put(posted(record, day))


def by_recipient(received: list[Any]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for item in received:
        found.setdefault(item.rcpt_tos[0], []).append(item.message)
    return found


def test_every_message_carries_one_click_headers_and_footer_links(changed, smtp, secret, database_url):
    cli = changed(smtp=smtp, server=SERVER, database_url=database_url)
    preview = cli("digest", "--now", "--dry-run")
    cli("digest", "--now")
    received = smtp.wait_for(2)
    watches = {ONC: [BISPECIFICS, CART], COORDINATOR: [BISPECIFICS]}
    for item in received:
        message, recipient = item.message, item.rcpt_tos[0]
        header = str(message["List-Unsubscribe"])
        assert re.fullmatch(rf"<{PUBLIC}/u/[A-Za-z0-9_.-]+>", header), header
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert b"\r\nList-Unsubscribe: <https://" in item.data  # one plain line, never an encoded word
        token = header.removeprefix(f"<{PUBLIC}/u/").removesuffix(">")
        assert read_token(secret, token) == TokenWatches(recipient, ids=watch_ids(cli, *watches[recipient]))
        text = message.get_body(("plain",)).get_content()
        assert f"Manage your alerts: {PUBLIC}/m/{token}" in text and f"Unsubscribe: {PUBLIC}/u/{token}" in text
        assert f"Unsubscribe: {PUBLIC}/u/{token}" in preview  # --dry-run shows the very links that go out
        html = message.get_body(("html",)).get_content()
        assert f'<a href="{PUBLIC}/m/{token}"' in html and ">Manage your alerts</a>" in html
        assert f'<a href="{PUBLIC}/u/{token}"' in html and ">Unsubscribe</a>" in html


def test_a_nothing_new_note_carries_the_links_too(cli_for, registry, own_study, smtp, secret):
    registry.put(own_study("study_NCT09000001_v1"))
    watches = (
        f'[[watch]]\nname = "{CART}"\nconditions = ["renal cell carcinoma"]\nterms = ["CAR-T"]\n'
        f'recipients = ["{ONC}"]\ndigest = "daily"\nsend_empty = true\n'
    )
    cli = cli_for(smtp=smtp, watches=watches, server=SERVER)
    cli("poll")
    cli.now = "2026-11-22T07:01:00+00:00"
    cli("digest")
    (note,) = smtp.wait_for(1)
    assert note.message["Subject"] == f"[trialwatch] {CART}: nothing new, all sources healthy"
    token = str(note.message["List-Unsubscribe"]).removeprefix(f"<{PUBLIC}/u/").removesuffix(">")
    assert read_token(secret, token) == TokenWatches(ONC, ids=watch_ids(cli, CART))


@pytest.mark.parametrize(
    ("server", "why"),
    [
        ("", "[server] listen is not set: the web app is not served"),
        ('listen = "127.0.0.1:0"', "[server] public_url is not set: mails cannot link to the web app"),
        (f'public_url = "{PUBLIC}"', "[server] listen is not set: the web app is not served"),
    ],
)
def test_without_a_public_web_app_no_header_no_link_and_check_warns(changed, smtp, secret, server, why):
    cli = changed(smtp=smtp, server=server)
    cli("digest", "--now")
    for item in smtp.wait_for(2):
        assert item.message["List-Unsubscribe"] is None and item.message["List-Unsubscribe-Post"] is None
        text = item.message.get_body(("plain",)).get_content()
        assert "Unsubscribe" not in text and "/u/" not in text and "trialwatch check" in text
    assert f"warning: recipients cannot unsubscribe themselves: {why}" in cli("check")


def test_a_short_secret_key_is_refused_before_anything_is_signed(changed, smtp, monkeypatch):
    cli = changed(smtp=smtp, server=SERVER)
    monkeypatch.setenv("TRIALWATCH_SECRET_KEY", "too short")
    assert "TRIALWATCH_SECRET_KEY is shorter than 32 characters" in cli("digest", "--now", code=2)
    assert smtp.received == []


def test_a_public_url_must_be_http(cli_for):
    cli = cli_for(server='listen = "127.0.0.1:0"\npublic_url = "ftp://example.org"')
    output = cli("check", code=2)
    assert "[server]: key 'public_url': public_url 'ftp://example.org' must start with http:// or https://" in output


def test_an_opt_out_stops_that_watch_for_that_recipient_alone(changed, smtp, secret, database_url, registry, own_study):
    cli = changed(smtp=smtp, server=SERVER, database_url=database_url)
    at = utc("2026-11-21T10:05:00")
    left = store(cli, lambda s: recipients.unsubscribe(session=s, recipient="Onc@Example.org", watches=[BISPECIFICS],
                                                      now=at))  # fmt: skip
    assert left == [BISPECIFICS]
    cli("digest", "--now")
    got = by_recipient(smtp.wait_for(2))
    assert got[COORDINATOR][0]["Subject"].startswith(f"[trialwatch] {BISPECIFICS}: 1 status change")
    assert got[ONC][0]["Subject"].startswith(f"[trialwatch] {CART}: 1 status change")  # the other watch goes on
    assert BISPECIFICS not in got[ONC][0].get_body(("plain",)).get_content().split("--")[0]
    (skipped,) = json.loads(cli("deliveries", "--status", "skipped", "--json"))
    assert (skipped["recipient"], skipped["changes"]) == (ONC, 3)
    assert skipped["skip_reason"] == f"unsubscribed from '{BISPECIFICS}' on 2026-11-21 10:05 UTC"
    assert f"skipped onc@example.org 3 change(s) — unsubscribed from '{BISPECIFICS}'" in cli("deliveries")

    another_status_change(registry, own_study, "COMPLETED")  # found after the opt-out: not even owed
    cli("poll")
    cli("digest", "--now")
    got = by_recipient(smtp.wait_for(4))
    assert len(got[COORDINATOR]) == 2 and len(got[ONC]) == 2
    assert got[ONC][1]["Subject"] == f"[trialwatch] {CART}: 1 status change"
    assert len(json.loads(cli("deliveries", "--status", "skipped", "--json"))) == 1
    assert "nothing to deliver" in cli("digest", "--now")


def test_a_message_waiting_for_a_retry_loses_the_watch_left(changed, smtp, secret):
    cli = changed(smtp=smtp, server=SERVER)
    smtp.mode = "tempfail"
    cli("digest", "--now", code=1)
    store(cli, lambda s: recipients.unsubscribe(session=s, recipient=COORDINATOR, watches=[BISPECIFICS],
                                               now=utc("2026-11-21T10:01:00")))  # fmt: skip
    smtp.mode = "accept"
    cli.now = "2026-11-21T10:30:00+00:00"
    cli("digest")
    (only,) = smtp.wait_for(1)
    assert only.rcpt_tos == [ONC]
    statuses = {(d["recipient"], d["status"], d["changes"]) for d in json.loads(cli("deliveries", "--json"))}
    assert statuses == {(ONC, "sent", 6), (COORDINATOR, "skipped", 3)}


def test_an_opt_out_outlives_leaving_the_file_and_ends_when_they_subscribe_again(
    changed, smtp, secret, registry, own_study
):
    cli = changed(smtp=smtp, server=SERVER)
    store(cli, lambda s: recipients.unsubscribe(session=s, recipient=COORDINATOR, watches=[BISPECIFICS],
                                               now=utc("2026-11-21T10:01:00")))  # fmt: skip
    original = cli.config.read_text()
    cli.config.write_text(original.replace(f'"{ONC}", "{COORDINATOR}"', f'"{ONC}"'))
    assert COORDINATOR not in cli("check")
    cli.config.write_text(original)  # added back
    assert f"opted out of {BISPECIFICS}: {COORDINATOR} (unsubscribed since 2026-11-21 10:01 UTC)" in cli("check")
    another_status_change(registry, own_study, "COMPLETED")
    cli("poll")
    cli("digest", "--now")
    assert [item.rcpt_tos for item in smtp.wait_for(1)] == [[ONC]]

    assert store(cli, lambda s: recipients.subscribe(session=s, recipient=COORDINATOR, watch=BISPECIFICS,
                                                     now=utc("2026-11-21T10:10:00")))  # fmt: skip
    another_status_change(registry, own_study, "TERMINATED", day="2026-11-22")
    cli.now = "2026-11-22T10:00:00+00:00"
    cli("poll")
    cli("digest", "--now")
    latest = by_recipient(smtp.wait_for(3))
    assert latest[COORDINATOR][0]["Subject"] == f"[trialwatch] {BISPECIFICS}: 1 status change"


def test_own_schedule_overrides_the_watch_for_that_recipient_only(changed, smtp, secret, database_url):
    cli = changed(smtp=smtp, server=SERVER, database_url=database_url)
    store(cli, lambda s: recipients.set_schedule(
        session=s, watch=BISPECIFICS, recipient=ONC, schedule="weekly", paused_until=None, pause_changes="deliver",
        now=utc("2026-11-21T10:01:00"),
    ))  # fmt: skip
    cli.now = "2026-11-22T07:01:00+00:00"  # a Sunday: the watch's daily digest
    cli("digest")
    assert [item.rcpt_tos for item in smtp.wait_for(1)] == [[COORDINATOR]]
    cli.now = "2026-11-23T07:01:00+00:00"  # Monday: onc's own weekly digest, with the weekly CAR-T watch
    cli("digest")
    (_, onc) = smtp.wait_for(2)
    assert onc.rcpt_tos == [ONC] and onc.message["Subject"].startswith(f"[trialwatch] {BISPECIFICS}: 1 status")
    assert CART in onc.message["Subject"]
    cli.now = "2026-11-23T07:30:00+00:00"
    assert "nothing to deliver" in cli("digest")
    listed = cli("recipients", "--watch", BISPECIFICS)
    assert f"{ONC}: weekly (their own)" in listed and f"{COORDINATOR}: daily (the watch's)" in listed


def test_a_paused_recipient_gets_the_pause_in_one_digest_after_it(changed, smtp, secret, database_url):
    cli = changed(smtp=smtp, server=SERVER, database_url=database_url)
    store(cli, lambda s: recipients.set_schedule(
        session=s, watch=BISPECIFICS, recipient=ONC, schedule=None, paused_until=utc("2026-11-25T00:00:00"),
        pause_changes="deliver", now=utc("2026-11-21T10:01:00"),
    ))  # fmt: skip
    rows = json.loads(cli("recipients", "--json"))
    assert {
        "watch": BISPECIFICS, "recipient": ONC, "schedule": "daily", "own_schedule": False,
        "paused_until": "2026-11-25T00:00:00+00:00", "pause_changes": "deliver", "unsubscribed_at": None,
    } in rows  # fmt: skip
    sent_on: dict[str, list[str]] = {}
    for day in ("22", "23", "24", "25", "26"):
        cli.now = f"2026-11-{day}T07:01:00+00:00"
        before = len(smtp.received)
        cli("digest")
        sent_on[day] = [f"{m.rcpt_tos[0]} {m.message['Subject']}" for m in smtp.received[before:]]
    assert sent_on["22"] == [f"{COORDINATOR} [trialwatch] {BISPECIFICS}: 1 status change, 1 date change, 1 site change"]
    assert sent_on["23"] == [f"{ONC} [trialwatch] {CART}: 1 status change, 1 date change, 1 site change"]  # weekly
    assert sent_on["24"] == []
    assert sent_on["25"] == [f"{ONC} [trialwatch] {BISPECIFICS}: 1 status change, 1 date change, 1 site change"]
    assert sent_on["26"] == []


def test_a_pause_whose_changes_are_skipped(cli_for, registry, own_study, smtp, secret, database_url):
    registry.put(own_study("study_NCT09000001_v1"))
    cli = cli_for(smtp=smtp, server=SERVER, database_url=database_url)
    cli("poll")
    store(cli, lambda s: recipients.set_schedule(
        session=s, watch=BISPECIFICS, recipient=ONC, schedule=None, paused_until=utc("2026-11-23T00:00:00"),
        pause_changes="skip", now=utc("2026-11-21T09:59:00"),
    ))  # fmt: skip
    registry.put(own_study("study_NCT09000001_v2"))
    cli("poll")  # found during the pause
    cli.now = "2026-11-22T07:01:00+00:00"
    cli("digest")
    assert [item.rcpt_tos for item in smtp.wait_for(1)] == [[COORDINATOR]]
    (skipped,) = json.loads(cli("deliveries", "--status", "skipped", "--json"))
    assert (skipped["recipient"], skipped["changes"]) == (ONC, 3)
    assert skipped["skip_reason"] == (
        f"found while {ONC} paused '{BISPECIFICS}' until 2026-11-23 00:00 UTC (they chose to skip the pause's changes)"
    )
    cli.now = "2026-11-23T07:01:00+00:00"  # after the pause: the weekly CAR-T digest, no bispecifics
    cli("digest")
    assert smtp.wait_for(2)[1].message["Subject"].startswith(f"[trialwatch] {CART}:")
    assert len(smtp.received) == 2


def test_a_schedule_or_pause_choice_is_checked():
    with pytest.raises(ValueError, match="schedule 'hourly': expected one of immediate, daily, weekly"):
        recipients.set_schedule(
            session=None,  # type: ignore[arg-type]
            watch=BISPECIFICS, recipient=ONC, schedule="hourly", paused_until=None, pause_changes="deliver",
            now=utc("2026-11-21T10:00:00"),
        )  # fmt: skip
