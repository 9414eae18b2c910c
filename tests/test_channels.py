"""Chat channels and webhooks (#24): one message per channel per digest through Apprise, with the
mail's guarantees (an outbox row, retried with backoff, exactly once), and the secret never shown.

A real webhook on loopback (json://127.0.0.1:PORT/hook) stands for Slack, Teams and the others."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path

import pytest
from sqlmodel import select

from tests.harness import WATCHES, Cli, write_config
from tests.webhook_server import Webhook, start_webhook_server
from watcher import channels
from watcher.store import db
from watcher.store.models import Delivery, Notification, WatchRow

SECRET = "S3cretPassw0rdXYZ"


@pytest.fixture
def hook_server() -> Iterator[object]:
    server = start_webhook_server()
    yield server
    server.clear()
    server.stop()


def watches_with(*urls: str) -> str:
    listed = ", ".join(f'"{url}"' for url in urls)
    return WATCHES.replace('digest = "daily"\n', f'digest = "daily"\nnotify = [{listed}]\n', 1)


def changed_cli(tmp_path: Path, registry, own_study, database_url: str, *urls: str) -> Cli:
    """Baseline on v1 of our study, then v2: one watch has changes pending for its channels."""
    registry.put(own_study("study_NCT09000001_v1"))
    cli = Cli(write_config(tmp_path, registry, database_url=database_url, watches=watches_with(*urls)))
    cli("poll")
    registry.put(own_study("study_NCT09000001_v2"))
    cli("poll")
    return cli


def outbox_subjects(tmp_path: Path) -> list[str]:
    return [
        str(message_from_bytes(path.read_bytes(), policy=email_policy.default)["Subject"])
        for path in sorted((tmp_path / "var" / "outbox").glob("*.eml"))
    ]


def channel_deliveries(database_url: str) -> list[Delivery]:
    engine = db.make_engine(database_url)
    try:
        with db.transaction(engine) as session:
            rows = session.exec(select(Delivery).where(Delivery.recipient.startswith("channel:"))).all()
            return [Delivery.model_validate(row) for row in rows]
    finally:
        engine.dispose()


def test_one_post_per_digest_per_channel_with_the_mails_title(tmp_path, registry, own_study, database_url, hook_server):
    hook = Webhook(hook_server)
    cli = changed_cli(tmp_path, registry, own_study, database_url, hook.url())

    cli("digest", "--now")
    cli("digest", "--now")  # nothing new: nothing sent again

    assert len(hook.received) == 1
    post = hook.received[0]
    subjects = [s for s in outbox_subjects(tmp_path) if "RCC CAR-T" not in s]  # coordinator@: this watch alone
    assert post["title"] == subjects[0]  # the mail's subject
    assert "NCT09000001" in post["message"]
    assert post["message"].count("\n- ") <= 20
    [row] = channel_deliveries(database_url)
    assert row.status == "sent" and row.recipient == channels.address(hook.url())


def test_five_hundred_twice_then_ok_delivers_once_after_backoff(
    tmp_path, registry, own_study, database_url, hook_server
):
    hook = Webhook(hook_server, statuses=[500, 500])
    cli = changed_cli(tmp_path, registry, own_study, database_url, hook.url())

    cli("digest", "--now", code=1)  # 500: pending, with the reason
    [row] = channel_deliveries(database_url)
    assert row.status == "pending" and row.attempts == 1 and "500" in (row.last_error or "")
    cli.now = "2026-11-21T10:01:00+00:00"
    cli("digest")  # the backoff (5 minutes) has not passed: not tried
    assert len(hook.received) == 1
    cli.now = "2026-11-21T10:06:00+00:00"
    cli("digest", code=1)  # second 500; next try 10 minutes later
    cli.now = "2026-11-21T10:12:00+00:00"
    cli("digest")
    assert len(hook.received) == 2
    cli.now = "2026-11-21T10:17:00+00:00"
    cli("digest")
    cli.now = "2026-11-21T12:00:00+00:00"
    cli("digest")
    cli("digest", "--now")

    assert len(hook.received) == 3
    [row] = channel_deliveries(database_url)
    assert row.status == "sent" and row.attempts == 3 and row.last_error is None


def test_a_channel_that_always_fails_holds_up_neither_the_mail_nor_the_other_channels(
    tmp_path, registry, own_study, database_url, hook_server
):
    broken = Webhook(hook_server, path="/broken", statuses=[500] * 50)
    good = Webhook(hook_server, path="/good")
    cli = changed_cli(tmp_path, registry, own_study, database_url, broken.url(), good.url())

    output = cli("digest", "--now", code=1)

    assert len(good.received) == 1 and len(broken.received) == 1
    assert "delivered to onc@example.org" in output and "delivered to coordinator@example.org" in output
    assert len(outbox_subjects(tmp_path)) == 2
    statuses = {row.recipient: row.status for row in channel_deliveries(database_url)}
    assert statuses == {channels.address(broken.url()): "pending", channels.address(good.url()): "sent"}


def test_a_channel_is_failed_for_good_after_its_attempts(tmp_path, registry, own_study, database_url, hook_server):
    from watcher.mail.delivery import CHANNEL_MAX_ATTEMPTS

    broken = Webhook(hook_server, path="/broken", statuses=[500] * 50)
    cli = changed_cli(tmp_path, registry, own_study, database_url, broken.url())
    for _ in range(CHANNEL_MAX_ATTEMPTS + 2):
        _digest_any(cli)
    [row] = channel_deliveries(database_url)
    assert row.status == "failed" and row.attempts == CHANNEL_MAX_ATTEMPTS
    assert len(broken.received) == CHANNEL_MAX_ATTEMPTS


def _digest_any(cli: Cli) -> str:
    """`digest --now`, whether it delivered (0) or a delivery failed (1)."""
    from watcher.cli.operating import app

    result = cli.runner.invoke(app, ["--config", str(cli.config), "digest", "--now"])
    assert result.exit_code in (0, 1), result.stdout + result.stderr
    return result.stdout + result.stderr


def test_the_secret_never_reaches_the_logs_even_verbose(
    tmp_path, registry, own_study, database_url, hook_server, caplog
):
    hook = Webhook(hook_server, statuses=[500])
    url = hook.url(auth=f"trial:{SECRET}")
    cli = changed_cli(tmp_path, registry, own_study, database_url, url)

    with caplog.at_level(logging.DEBUG):
        failed = cli("--verbose", "digest", "--now", code=1)
        sent = cli("--verbose", "digest", "--now")
        listed = cli("deliveries") + cli("deliveries", "--json") + cli("check") + cli("audit")

    assert len(hook.received) == 2
    for text in (failed, sent, listed, caplog.text):
        assert SECRET not in text
    assert "json://trial:****@127.0.0.1" in listed  # deliveries name the channel, masked


def test_a_channel_removed_from_every_watch_fails_for_good(tmp_path, registry, own_study, database_url, hook_server):
    hook = Webhook(hook_server, statuses=[500])
    cli = changed_cli(tmp_path, registry, own_study, database_url, hook.url())
    cli("digest", "--now", code=1)
    cli.config.write_text(cli.config.read_text().replace(f'notify = ["{hook.url()}"]\n', ""))

    cli("digest", "--now", code=1)

    [row] = channel_deliveries(database_url)
    assert row.status == "failed" and "no watch sends to this channel" in (row.last_error or "")
    assert len(hook.received) == 1


@pytest.mark.parametrize(
    ("notify", "expected"),
    [
        ('["nosuchservice://abc"]', "watch 'RCC bispecifics': key 'notify': notify URL 1: Apprise does not accept"),
        ('["json://127.0.0.1/a", "slack"]', "notify URL 2: not a URL"),
        ('["${TRIALWATCH_TEST_UNSET_HOOK}"]', "notify URL 1: environment variable TRIALWATCH_TEST_UNSET_HOOK"),
    ],
)
def test_a_bad_url_is_one_check_line_naming_the_watch_and_never_the_secret(tmp_path, registry, notify, expected):
    watches = WATCHES.replace('digest = "daily"\n', f'digest = "daily"\nnotify = {notify}\n', 1)
    cli = Cli(write_config(tmp_path, registry, watches=watches))
    output = cli("check", code=2)
    assert expected in output
    assert "abc" not in output.replace("nosuchservice://abc", "")  # nothing of the URL but its scheme
    assert "nosuchservice://abc" not in output


def test_a_url_from_the_environment(tmp_path, registry, own_study, database_url, hook_server, monkeypatch):
    hook = Webhook(hook_server)
    monkeypatch.setenv("TRIALWATCH_TEST_HOOK", hook.url(auth=f"trial:{SECRET}"))
    cli = changed_cli(tmp_path, registry, own_study, database_url, "${TRIALWATCH_TEST_HOOK}")

    output = cli("digest", "--now") + cli("deliveries")

    assert len(hook.received) == 1 and SECRET not in output
    assert "${TRIALWATCH_TEST_HOOK}" in output  # shown as written: the secret is in the environment


def test_notify_test_sends_one_short_message_and_prints_the_answer(tmp_path, registry, hook_server):
    hook = Webhook(hook_server, path="/t")
    cli = Cli(write_config(tmp_path, registry))
    output = cli("notify-test", hook.url(auth=f"trial:{SECRET}"))
    assert len(hook.received) == 1 and hook.received[0]["title"] == "[trialwatch] test message"
    assert "sent a test message to json://trial:****@127.0.0.1" in output and SECRET not in output

    failing = Webhook(hook_server, path="/f", statuses=[500])
    output = cli("notify-test", failing.url(), code=2)
    assert "error:" in output and "500" in output
    assert "Apprise does not accept" in cli("notify-test", "nosuchservice://x", code=2)


def test_channel_rows_are_the_mails_outbox(tmp_path, registry, own_study, database_url, hook_server):
    """Notifications for a channel are owed at detection, like a recipient's: one per change."""
    hook = Webhook(hook_server)
    changed_cli(tmp_path, registry, own_study, database_url, hook.url())
    engine = db.make_engine(database_url)
    try:
        with db.transaction(engine) as session:
            owed = session.exec(select(Notification).where(Notification.recipient == channels.address(hook.url())))
            mail = session.exec(select(Notification).where(Notification.recipient == "coordinator@example.org"))
            assert len(list(owed)) == len(list(mail)) > 0
            stored = session.exec(select(WatchRow).where(WatchRow.name == "RCC bispecifics")).one()
            assert stored.definition["notify"] == [hook.url()]
    finally:
        engine.dispose()


def test_a_service_that_never_answers_is_a_timeout_not_a_hang():
    """A webhook that takes the connection and says nothing: the send ends within its timeout."""
    import socket

    from watcher.mail.channel import ChannelSender, ChatMessage
    from watcher.mail.transport import DeliveryFailed

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        with pytest.raises(DeliveryFailed) as failed:
            ChannelSender(timeout=1).send(f"json://127.0.0.1:{port}/hook", ChatMessage("t", "b"))
    assert not failed.value.permanent
    assert "json://127.0.0.1" in str(failed.value)


def test_only_the_secret_parts_are_redacted_not_the_host(monkeypatch):
    """A `${NAME}` URL's secrets are redacted from logs; its host, shown by Apprise's privacy
    form, is not (or every later log line naming 127.0.0.1 would lose it)."""
    monkeypatch.setenv("TRIALWATCH_TEST_REDACT", f"json://trial:{SECRET}@127.0.0.1:8080/hook")
    parts = channels.secret_parts("${TRIALWATCH_TEST_REDACT}")
    assert SECRET in parts and "127.0.0.1" not in parts
    redactor = channels.RedactSecrets()
    redactor.add(["${TRIALWATCH_TEST_REDACT}"])
    assert redactor.redact(f"POST to 127.0.0.1 with {SECRET}") == "POST to 127.0.0.1 with ****"
