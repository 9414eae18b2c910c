"""Issue 25 over HTTP against the real server: the setup link is spent once under simultaneous
submissions (W7), API tokens have a scope and the pages hand out read-only feed addresses (W6),
HSTS when the public URL is https (W14), and /healthz tells anonymous callers only the status and
counts (W16)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from tests.web_support import PASSWORD, csrf_of
from watcher.store import db, people

SIMULTANEOUS = 4


def test_four_simultaneous_submissions_of_the_setup_link_create_one_admin(web_server):
    with db.transaction(web_server.engine) as session:
        token = people.ensure_setup_token(session=session, now=web_server.clock.now())
    clients = [web_server.client() for _ in range(SIMULTANEOUS)]
    forms = [csrf_of(client.get(f"/setup/{token}").text) for client in clients]
    start = threading.Barrier(SIMULTANEOUS)

    def submit(number: int) -> int:
        data = {"csrf_token": forms[number], "email": f"boss{number}@example.org"}
        data |= {"password": PASSWORD, "password_again": PASSWORD}
        start.wait()
        return clients[number].post(f"/setup/{token}", data=data).status_code

    with ThreadPoolExecutor(SIMULTANEOUS) as pool:
        answers = list(pool.map(submit, range(SIMULTANEOUS)))
    assert sorted(answers) == [303] + [404] * (SIMULTANEOUS - 1), answers
    with db.transaction(web_server.engine) as session:
        assert [person.role for person in people.list_users(session=session)] == ["admin"]


def test_a_setup_form_with_a_mistake_does_not_spend_the_link(web_server):
    with db.transaction(web_server.engine) as session:
        token = people.ensure_setup_token(session=session, now=web_server.clock.now())
    client = web_server.client()
    data = {"email": "boss@example.org", "password": "short", "password_again": "short"}
    response = client.submit(f"/setup/{token}", data)
    assert response.status_code == 422 and "at least 10 characters" in response.text
    data = {"email": "boss@example.org", "password": PASSWORD, "password_again": PASSWORD}
    assert client.submit(f"/setup/{token}", data).status_code == 303
