"""Sign-in throttling over HTTP (issue 25, W2-W5): parallel guesses get no more password checks
than the limit, a guesser is stopped for their (account, address) pair before the whole account
(strangers cannot lock an admin out), an address longer than the column still accumulates its
failures, the current password on /account/password is throttled too, and `[server]
forwarded_allow_ips` decides whose X-Forwarded-For is believed. A real uvicorn, both databases."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pydantic
import pytest
from sqlalchemy import func
from sqlmodel import select

from tests.web_support import PASSWORD, WebClient, csrf_of
from watcher.config import ServerConfig
from watcher.daemon.health import HealthServer, HealthStatus, Metrics
from watcher.store import db, throttle
from watcher.store.models import SignInFailure
from watcher.web.app import create_app

PARALLEL = 60


def from_address(client: WebClient, address: str) -> WebClient:
    client.session.headers["X-Forwarded-For"] = address  # uvicorn believes it from 127.0.0.1
    return client


def test_sixty_parallel_guesses_check_no_more_passwords_than_the_limit(web_server):
    web_server.add_user("ann@example.org")
    clients = [from_address(web_server.client(), "198.51.100.60") for _ in range(PARALLEL)]
    tokens = [csrf_of(client.get("/login").text) for client in clients]
    start = threading.Barrier(PARALLEL)

    def guess(number: int) -> int:
        data = {"csrf_token": tokens[number], "email": "ann@example.org", "password": f"guess {number}"}
        start.wait()
        return clients[number].post("/login", data=data).status_code

    with ThreadPoolExecutor(PARALLEL) as pool:
        answers = list(pool.map(guess, range(PARALLEL)))
    checked = answers.count(401)
    assert answers.count(429) == PARALLEL - checked, answers
    assert checked <= throttle.PAIR_FAILURES, f"{checked} passwords checked"
    with db.transaction(web_server.engine) as session:  # each checked one counted, the refused forgotten
        stored = session.exec(select(func.count()).select_from(SignInFailure)).one()
    assert stored == checked


def test_strangers_guessing_cannot_lock_the_admin_out(web_server):
    web_server.add_user("boss@example.org", role="admin")
    for stranger in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        client = from_address(web_server.client(), stranger)
        for _attempt in range(throttle.PAIR_FAILURES):
            assert client.sign_in("boss@example.org", "wrong password").status_code == 401
        assert client.sign_in("boss@example.org", "another guess").status_code == 429
    admin = from_address(web_server.client(), "198.51.100.20")
    assert admin.sign_in("boss@example.org").status_code == 303


def test_an_address_longer_than_the_column_still_accumulates_failures(web_server):
    web_server.add_user("ann@example.org")
    client = from_address(web_server.client(), "a" * 65)
    for attempt in range(throttle.ADDRESS_FAILURES):
        assert client.sign_in(f"guess{attempt}@example.org", "wrong password").status_code == 401
    assert client.sign_in("ann@example.org").status_code == 429


def test_the_current_password_on_the_account_page_is_throttled(web_server):
    client = from_address(web_server.signed_in("ann@example.org"), "198.51.100.30")
    new = "another long password"
    for attempt in range(throttle.PAIR_FAILURES):
        data = {"current_password": f"guess {attempt}", "new_password": new, "new_password_again": new}
        response = client.submit("/account", data, action="/account/password")
        assert response.status_code == 422 and "This is not your current password." in response.text
    data = {"current_password": PASSWORD, "new_password": new, "new_password_again": new}
    response = client.submit("/account", data, action="/account/password")
    assert response.status_code == 429 and response.headers["retry-after"] == "900"
    assert "Too many failed sign-ins" in response.text
    elsewhere = from_address(web_server.client(), "198.51.100.31")
    assert elsewhere.sign_in("ann@example.org", new).status_code == 401, "the password was not changed"
    assert elsewhere.sign_in("ann@example.org").status_code == 303


@pytest.mark.parametrize(("allowed", "seen"), [("127.0.0.1", "203.0.113.50"), ("10.0.0.0/8", "127.0.0.1")])
def test_forwarded_allow_ips_decides_whose_forwarded_address_is_believed(web_server, caplog, allowed, seen):
    caplog.set_level("INFO", logger="watcher.web")
    context = web_server.app.state.context
    server = HealthServer(
        listen="127.0.0.1:0",
        metrics=Metrics(),
        health=lambda: HealthStatus(healthy=True),
        web=lambda routes: create_app(context, extra_routes=routes),
        forwarded_allow_ips=ServerConfig(forwarded_allow_ips=allowed).forwarded_allow_ips,
    )
    with server:
        client = from_address(WebClient(server.url), "203.0.113.50")
        assert client.sign_in("nobody@example.org", "wrong password").status_code == 401
    assert f"failed sign-in for 'nobody@example.org' from {seen}" in caplog.text


def test_forwarded_allow_ips_must_be_addresses_or_networks():
    assert ServerConfig(forwarded_allow_ips=" 172.18.0.0/16, 10.0.0.2 ").forwarded_allow_ips == "172.18.0.0/16,10.0.0.2"
    assert ServerConfig(forwarded_allow_ips="*").forwarded_allow_ips == "*"
    with pytest.raises(pydantic.ValidationError, match="'proxy.local' is not an IP address or network"):
        ServerConfig(forwarded_allow_ips="proxy.local")
