"""A slow mail server: it accepts the connection, then answers nothing, or a byte at a time.
smtplib's timeout bounds each read, so a trickled answer never tripped it; now every SMTP step
(the greeting, each command's answer) must be complete within [email] timeout. The message stays
pending with the reason, and the run's other messages are left for the next run untried rather
than each waiting its own timeout."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from tests.fault_servers import TricklingSmtp
from tests.harness import write_config
from tests.servers import SmtpSink
from tests.web_support import close_site, make_site
from watcher.cli.shared import make_service
from watcher.config import load_config
from watcher.mail.transport import DeliveryFailed, SmtpTransport
from watcher.store import db
from watcher.store.models import Delivery

NOW = datetime(2026, 11, 21, 10, tzinfo=UTC)


def message() -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"], mail["Message-ID"] = "a@localhost", "b@localhost", "s", "<m@localhost>"
    mail.set_content("hello")
    return mail


def transport(server: TricklingSmtp, timeout: float = 0.5) -> SmtpTransport:
    return SmtpTransport(host=server.host, port=server.port, security="none", timeout=timeout)


def test_a_greeting_trickled_a_byte_at_a_time_times_out_at_the_greeting() -> None:
    late = pytest.raises(DeliveryFailed, match=r"no complete answer to the greeting within 0.5s")
    with TricklingSmtp(interval=0.1) as server, late as failed:  # each answer takes 1-2 s, each byte 0.1 s
        transport(server).send(message())
    assert failed.value.unreachable and not failed.value.permanent


def test_a_server_that_answers_nothing_times_out() -> None:
    with TricklingSmtp(interval=0.1, silent=True) as server, pytest.raises(DeliveryFailed, match="greeting") as failed:
        transport(server).send(message())
    assert failed.value.unreachable


def test_a_slow_but_steady_server_within_the_step_timeout_still_gets_the_message() -> None:
    with TricklingSmtp(interval=0.001) as server:
        transport(server, timeout=10).send(message())  # raises nothing


def test_a_slow_server_leaves_every_message_pending_and_the_next_run_delivers(
    tmp_path: Path, registry: Any, own_study: Any, database_url: str, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    registry.put(own_study("study_NCT09000001_v1"))
    with TricklingSmtp(interval=0.1) as slow:
        config = load_config(write_config(tmp_path, registry, database_url=database_url, smtp=slow))
        service = make_service(config)
        service.poll(NOW)
        registry.put(own_study("study_NCT09000001_v2"))
        service.poll(NOW + timedelta(hours=6), force_full=True)
        service = replace(service, transport=transport(slow))  # [email] timeout = 0.5
        report = service.deliver(NOW + timedelta(days=1), everything=True)
        assert slow.connections == 1, "the second recipient is not kept waiting on the same silent server"
    assert report.sent == [] and len(report.failed) == 2
    with db.transaction(service.engine) as session:
        stored = list(session.exec(select(Delivery).order_by(Delivery.recipient)))
    assert [row.status for row in stored] == ["pending", "pending"]
    assert all("no complete answer to the greeting within 0.5s" in (row.last_error or "") for row in stored)
    assert sum((row.last_error or "").startswith("not tried: ") for row in stored) == 1

    sink = SmtpSink()
    sink.start()
    try:
        config = load_config(write_config(tmp_path, registry, database_url=database_url, smtp=sink))
        later = make_service(config, engine=service.engine)
        assert sorted(later.deliver(NOW + timedelta(days=1, hours=1), everything=True).sent) == [
            "coordinator@example.org", "onc@example.org",
        ]  # fmt: skip
        assert len(sink.wait_for(2)) == 2
    finally:
        sink.stop()


def test_the_web_answers_while_a_delivery_waits_on_a_trickling_server(
    tmp_path: Path, registry: Any, own_study: Any, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    database = f"sqlite:///{tmp_path}/tw.db"
    registry.put(own_study("study_NCT09000001_v1"))
    site = make_site(database, registry.base_url)
    try:
        client = site.signed_in("reader@example.org")
        with TricklingSmtp(interval=1.0) as slow:  # its greeting alone would take 24 s
            service = make_service(load_config(write_config(tmp_path, registry, database_url=database, smtp=slow)))
            service.poll(NOW)
            registry.put(own_study("study_NCT09000001_v2"))
            service.poll(NOW + timedelta(hours=6), force_full=True)
            service = replace(service, transport=transport(slow, timeout=30))
            sending = threading.Thread(
                target=service.deliver, args=(NOW + timedelta(days=1),), kwargs={"everything": True}
            )
            sending.start()
            assert wait_until(lambda: slow.connections == 1), "the delivery reached the server"
            answers = [client.get("/changes").status_code for _ in range(3)]
            still_waiting = sending.is_alive()
            slow.stopping.set()  # let the delivery fail now
            sending.join()
        assert answers == [200, 200, 200] and still_waiting
    finally:
        close_site(site)


def wait_until(condition: Any, limit: float = 10.0) -> bool:
    event = threading.Event()
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        event.wait(0.01)
    return bool(condition())
