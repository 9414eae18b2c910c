"""Alerts people read: SMTP security and authentication against a real aiosmtpd server, retries
with backoff, permanent failures listed by `trialwatch deliveries`, "nothing new" notes, the
failing-sources footer, daily digests across daylight-saving days, and the golden text part."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from typing import Any

import pytest

from tests.harness import WATCHES
from tests.servers import Fault, SmtpSink, self_signed_certificate
from watcher.cli.shared import make_service
from watcher.config import load_config

GOLDEN = Path(__file__).parent / "golden"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path)


@pytest.fixture
def secure_smtp(certificate: tuple[Path, Path]) -> Any:
    sinks: list[SmtpSink] = []

    def make(*, implicit_tls: bool = False) -> SmtpSink:
        sink = SmtpSink(tls=certificate, implicit_tls=implicit_tls, credentials=("alice", PASSWORD))
        sink.start()
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.stop()


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_and_auth_from_the_environment(changed, secure_smtp, certificate, monkeypatch, security):
    monkeypatch.setenv("TRIALWATCH_SMTP_USERNAME", "alice")
    monkeypatch.setenv("TRIALWATCH_SMTP_PASSWORD", PASSWORD)
    server = secure_smtp(implicit_tls=security == "ssl")
    cli = changed(smtp=server, security=security, extra_email=f'ca_file = "{certificate[0]}"')
    output = cli("digest", "--now")
    received = server.wait_for(2)
    assert all(r.tls and r.login == "alice" for r in received)
    assert server.logins == [("alice", True), ("alice", True)]
    assert PASSWORD not in output and "delivered to onc@example.org" in output


def test_wrong_password_keeps_the_mail_and_never_shows_the_password(changed, secure_smtp, certificate, monkeypatch):
    monkeypatch.setenv("TRIALWATCH_SMTP_USERNAME", "alice")
    monkeypatch.setenv("TRIALWATCH_SMTP_PASSWORD", "wrong " + PASSWORD)
    server = secure_smtp()
    cli = changed(smtp=server, security="starttls", extra_email=f'ca_file = "{certificate[0]}"')
    output = cli("digest", "--now", code=1)
    assert "login refused (535)" in output and "TRIALWATCH_SMTP_PASSWORD" in output
    assert PASSWORD not in output and PASSWORD not in cli("deliveries")
    assert [row["status"] for row in json.loads(cli("deliveries", "--json"))] == ["pending", "pending"]
    monkeypatch.setenv("TRIALWATCH_SMTP_PASSWORD", PASSWORD)
    cli("digest", "--now")
    assert len(server.wait_for(2)) == 2


def test_untrusted_certificate_is_a_clear_temporary_failure(changed, secure_smtp):
    server = secure_smtp()
    output = changed(smtp=server, security="starttls")("digest", "--now", code=1)
    assert "CERTIFICATE_VERIFY_FAILED" in output
    assert server.received == []


def test_the_systems_certificates_load_at_the_first_message_a_ca_file_at_once(tmp_path, certificate):
    import ssl

    from watcher.config import EmailConfig, Secrets
    from watcher.errors import NotifyError
    from watcher.mail.transport import SmtpTransport, make_transport

    system = make_transport(EmailConfig(smtp_host="mail.example.org"), Secrets())
    assert isinstance(system, SmtpTransport) and system.ssl_context is None  # a command sending nothing loads none
    context = system.tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname and system.tls_context() is context
    private = make_transport(EmailConfig(smtp_host="mail.example.org", ca_file=certificate[0]), Secrets())
    assert isinstance(private, SmtpTransport) and private.ssl_context is not None
    assert private.ssl_context.cert_store_stats()["x509"] == 1 and private.tls_context() is private.ssl_context
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    with pytest.raises(NotifyError, match="garbage.pem: cannot load certificates"):
        make_transport(EmailConfig(smtp_host="mail.example.org", ca_file=tmp_path / "garbage.pem"), Secrets())


def test_temporary_failure_backs_off_then_retries(changed, smtp):
    cli = changed(smtp=smtp)
    smtp.mode = "tempfail"
    assert "451" in cli("digest", "--now", code=1)
    pending = json.loads(cli("deliveries", "--json"))
    assert [(d["status"], d["attempts"]) for d in pending] == [("pending", 1), ("pending", 1)]
    assert all(d["next_attempt_at"].startswith("2026-11-21T10:0") for d in pending)  # 5 minutes later
    smtp.mode = "accept"
    cli.now = "2026-11-21T10:02:00+00:00"
    assert "nothing to deliver" in cli("digest")  # the backoff has not passed: no attempt
    assert smtp.received == []
    cli.now = "2026-11-21T10:06:00+00:00"
    assert "delivered to onc@example.org" in cli("digest")
    assert len(smtp.wait_for(2)) == 2
    assert {d["status"] for d in json.loads(cli("deliveries", "--json"))} == {"sent"}


def test_permanent_failure_is_listed_with_the_server_answer(changed, smtp):
    cli = changed(smtp=smtp)
    smtp.mode, smtp.reject_recipients = "reject", {"coordinator@example.org"}
    cli("digest", "--now", code=1)
    (failed,) = json.loads(cli("deliveries", "--status", "failed", "--json"))
    assert failed["recipient"] == "coordinator@example.org" and failed["changes"] == 3
    assert "550 5.1.1 <coordinator@example.org>: Mailbox unavailable" in failed["last_error"]
    text = cli("deliveries")
    assert "failed  coordinator@example.org 3 change(s) — SMTP" in text
    assert "sent    onc@example.org" in text
    assert "expected pending, sending, sent or failed" in cli("deliveries", "--status", "lost", code=2)


QUIET = WATCHES.replace('digest = "weekly"', 'digest = "daily"\nsend_empty = true')


def test_send_empty_says_nothing_new_and_the_footer_names_failing_sources(cli_for, registry, own_study, smtp):
    registry.put(own_study("study_NCT09000001_v1"))
    cli = cli_for(smtp=smtp, watches=QUIET)
    cli("poll")
    cli.now = "2026-11-22T07:01:00+00:00"
    cli("digest")
    (note,) = smtp.wait_for(1)
    assert note.rcpt_tos == ["onc@example.org"]  # only the CAR-T watch has send_empty
    assert note.message["Subject"] == "[trialwatch] RCC CAR-T: nothing new, all sources healthy"
    assert "Nothing new since the last digest; all sources healthy." in note.message.get_body(("plain",)).get_content()

    registry.fail_next(*[Fault.status(503)] * 3)
    cli.now = "2026-11-22T12:00:00+00:00"
    cli("poll", code=1)
    cli.now = "2026-11-23T07:01:00+00:00"
    cli("digest")
    second = smtp.wait_for(2)[1].message
    assert second["Subject"] == "[trialwatch] RCC CAR-T: nothing new, 1 source failing"
    text = second.get_body(("plain",)).get_content()
    assert "Sources failing now" in text
    assert "ClinicalTrials.gov (RCC bispecifics, RCC CAR-T): ClinicalTrials.gov /version: GET" in text, text
    assert "HTTP 503" in text and "(failing since 2026-11-22 12:00 UTC)" in text
    assert "1 source failing" in second.get_body(("html",)).get_content()
    cli.now = "2026-11-23T07:30:00+00:00"
    assert "nothing to deliver" in cli("digest")  # one note per slot


def test_daily_digests_across_daylight_saving_changes(cli_for, registry, own_study, tmp_path):
    """07:00 Europe/Paris on the days clocks go back (2026-10-25) and forward (2027-03-28)."""
    registry.put(own_study("study_NCT09000001_v1"))
    cli = cli_for(watches=QUIET, digest='time = "07:00"\ntimezone = "Europe/Paris"')
    outbox = tmp_path / "var" / "outbox"

    def sent() -> int:
        return len(list(outbox.glob("*.eml")))

    for start, slots in (
        ("2026-10-23T12:00:00+00:00", ["2026-10-24T05:00", "2026-10-25T06:00", "2026-10-26T06:00"]),
        ("2027-03-26T12:00:00+00:00", ["2027-03-27T06:00", "2027-03-28T05:00", "2027-03-29T05:00"]),
    ):
        cli.now = start
        cli("poll")
        cli("digest")  # whatever slot passed before `start` (the months between) goes out now
        for slot in slots:
            before = sent()
            for minutes in (-31, -1):  # just before the slot: nothing due
                cli.now = _utc(slot, minutes)
                cli("digest")
            assert sent() == before, f"a digest went out before {slot}Z"
            for minutes in (0, 30, 59):  # at and after it: exactly one
                cli.now = _utc(slot, minutes)
                cli("digest")
            assert sent() == before + 1, f"expected exactly one digest for the slot {slot}Z"


def _utc(slot: str, minutes: int) -> str:
    return (datetime.fromisoformat(slot + "+00:00") + timedelta(minutes=minutes)).isoformat()


def test_text_part_matches_the_golden_file(changed, tmp_path):
    cli = changed()
    cli("digest", "--now")
    files = sorted((tmp_path / "var" / "outbox").glob("*.eml"))
    messages = [message_from_bytes(f.read_bytes(), policy=email_policy.default) for f in files]
    onc = next(m for m in messages if m["To"] == "onc@example.org")
    text = onc.get_body(("plain",)).get_content().replace("\r\n", "\n")
    golden = GOLDEN / "digest_onc.txt"
    if os.environ.get("TRIALWATCH_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
        golden.with_suffix(".subject").write_text(str(onc["Subject"]) + "\n", encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")
    assert onc["Subject"] == golden.with_suffix(".subject").read_text(encoding="utf-8").strip()


def test_html_export_for_a_browser(changed, tmp_path):
    cli = changed()
    output = cli("digest", "--now", "--html", str(tmp_path / "digest.html"))
    assert f"wrote {tmp_path / 'digest-onc@example.org.html'}" in output
    html = (tmp_path / "digest-onc@example.org.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "Status changed from Recruiting" in html
    assert "nothing to deliver" not in cli("digest", "--now", "--dry-run")  # --html delivered nothing
    assert "No such file or directory" in cli("digest", "--now", "--html", str(tmp_path / "no" / "x.html"), code=2)


def test_two_delivery_runs_at_once_send_each_change_once(changed, smtp, tmp_path):
    """The daemon's poll job (immediate watches) and digest job are threads: they may overlap."""
    cli = changed(smtp=smtp)
    service = make_service(load_config(cli.config))
    at = datetime(2026, 11, 21, 10, 1, tzinfo=UTC)
    smtp.mode = "hold"
    first = threading.Thread(target=service.deliver, args=(at,), kwargs={"everything": True})
    first.start()
    assert smtp.wait_for_data(1)  # the first run is inside its SMTP transaction
    second = threading.Thread(target=service.deliver, args=(at,), kwargs={"everything": True})
    second.start()
    overlapped = smtp.wait_for_data(3, timeout=1.0)  # would be reached if the second run sent too
    smtp.release.set()
    first.join(30)
    second.join(30)
    assert not overlapped
    received = smtp.wait_for(2)
    assert sorted(r.rcpt_tos[0] for r in received) == ["coordinator@example.org", "onc@example.org"]
    assert len({r.message["Message-ID"] for r in received}) == 2 and len(smtp.received) == 2


def digest_killed_after_the_server_took_the_message(cli: Any, smtp: SmtpSink) -> Any:
    """Run `digest --now` in a process killed while the server, holding the message, has not yet
    answered 250: the message went, trialwatch never recorded it. Returns what the server got."""
    smtp.mode = "hold"
    process = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(cli.config), "digest", "--now"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert smtp.wait_for_data(1)
    process.kill()
    process.wait(30)
    smtp.release.set()
    (crashed,) = smtp.wait_for(1)
    smtp.mode = "accept"
    return crashed


def test_a_crash_after_sending_resends_with_the_same_message_id(changed, smtp, tmp_path):
    """The documented window: killed after the server has the message, before `sent` is recorded."""
    cli = changed(smtp=smtp)
    crashed = digest_killed_after_the_server_took_the_message(cli, smtp)
    assert "delivered to" in cli("digest", "--now")
    received = smtp.wait_for(3)
    resent = [r for r in received[1:] if r.rcpt_tos == crashed.rcpt_tos]
    assert [r.message["Message-ID"] for r in resent] == [crashed.message["Message-ID"]]
    assert "nothing to deliver" in cli("digest", "--now")
    assert len(smtp.received) == 3


def test_a_refused_sender_keeps_every_message_for_after_the_fix(changed, smtp):
    cli = changed(smtp=smtp)
    smtp.mode = "reject_sender"
    output = cli("digest", "--now", code=1)
    assert "refused the sender trialwatch@localhost (550 5.7.1 Sender address rejected" in output
    assert "check [email] sender" in output
    assert {d["status"] for d in json.loads(cli("deliveries", "--json"))} == {"pending"}
    smtp.mode = "accept"
    cli("digest", "--now")
    assert len(smtp.wait_for(2)) == 2


def test_a_connection_cut_after_the_message_was_accepted_is_not_a_failure(changed, smtp):
    cli = changed(smtp=smtp)
    smtp.mode = "drop_at_quit"
    assert "delivered to onc@example.org" in cli("digest", "--now")
    assert len(smtp.wait_for(2)) == 2
    assert "nothing to deliver" in cli("digest", "--now")
    assert len(smtp.received) == 2


def test_failed_messages_can_be_queued_again(changed, smtp):
    cli = changed(smtp=smtp)
    smtp.mode, smtp.reject_recipients = "reject", {"coordinator@example.org"}
    cli("digest", "--now", code=1)
    smtp.mode = "accept"
    assert "nothing to deliver" in cli("digest", "--now")  # failed for good: not retried by itself
    assert "1 failed message(s) queued again" in cli("deliveries", "--retry-failed")
    assert "delivered to coordinator@example.org" in cli("digest", "--now")
    assert [r.rcpt_tos[0] for r in smtp.wait_for(2)] == ["onc@example.org", "coordinator@example.org"]


def test_a_message_left_sending_by_a_dead_process_waits_then_goes_once(changed, smtp):
    """Another process may still be sending it: a daemon leaves it alone for 15 minutes."""
    cli = changed(smtp=smtp)
    crashed = digest_killed_after_the_server_took_the_message(cli, smtp)
    sending = [d for d in json.loads(cli("deliveries", "--json")) if d["status"] == "sending"]
    assert [d["recipient"] for d in sending] == crashed.rcpt_tos
    started = datetime.now(UTC)  # the killed process ran on the real clock
    cli.now = (started + timedelta(minutes=5)).isoformat()
    cli("digest")  # the other recipient's message goes; the one "sending" is left alone
    assert [r.rcpt_tos for r in smtp.wait_for(2)][1] != crashed.rcpt_tos
    cli.now = (started + timedelta(minutes=20)).isoformat()
    assert f"delivered to {crashed.rcpt_tos[0]}" in cli("digest")
    resent = smtp.wait_for(3)[2]
    assert resent.message["Message-ID"] == crashed.message["Message-ID"]
    assert "nothing to deliver" in cli("digest", "--now") and len(smtp.received) == 3
