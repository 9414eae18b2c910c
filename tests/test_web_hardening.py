"""Issue 25 over HTTP against the real server: the setup link is spent once under simultaneous
submissions (W7), API tokens have a scope and the pages hand out read-only feed addresses (W6),
HSTS when the public URL is https (W14), and /healthz tells anonymous callers only the status and
counts (W16)."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from html import unescape

from sqlalchemy import text

from tests.web_support import PASSWORD, close_site, csrf_of, make_site
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


NEW_WATCH = {"name": "RCC by token", "conditions": ["renal cell carcinoma"], "recipients": ["onc@example.org"]}
FEED = "/atom/RCC%20file%20watch.atom"


def _token(site, email: str, *, read_only: bool) -> str:
    with db.transaction(site.engine) as session:
        _info, text = people.create_token(
            session=session, email=email, name="t", now=site.clock.now(), read_only=read_only
        )
    return text


def test_a_read_only_token_reads_the_api_and_feeds_and_changes_nothing(web_server):
    web_server.add_user("ann@example.org", role="admin")
    api = web_server.api(_token(web_server, "ann@example.org", read_only=True))
    assert api.get("/api/v1/watches").status_code == 200
    assert web_server.client().get(f"{FEED}?token={api.session.headers['Authorization'][7:]}").status_code == 200
    for response in (
        api.post("/api/v1/watches", json=NEW_WATCH),
        api.put("/api/v1/watches/RCC%20file%20watch", json=NEW_WATCH),
        api.delete("/api/v1/watches/RCC%20file%20watch"),
        api.post("/api/v1/preview", json={"conditions": ["renal cell carcinoma"]}),
    ):
        assert response.status_code == 403
        assert response.json()["error"].startswith("this API token is read-only")
    assert [w["name"] for w in api.get("/api/v1/watches").json()["watches"]] == ["RCC file watch"]


def test_a_token_made_before_scopes_keeps_working_for_feeds_and_the_api(web_server):
    user = web_server.add_user("ann@example.org", role="admin")
    token = "tw_made-before-scopes-existed-0123456789"
    with web_server.engine.begin() as connection:  # stored without a scope, as rows were before 0014
        connection.execute(
            text("INSERT INTO api_token (user_id, name, token_hash, created_at) VALUES (:user, 'feeds', :hash, :at)"),
            {"user": user.id, "hash": people.digest(token), "at": web_server.clock.now().replace(tzinfo=None)},
        )
    assert web_server.client().get(f"{FEED}?token={token}").status_code == 200
    assert web_server.api(token).post("/api/v1/watches", json=NEW_WATCH).status_code == 201


def test_the_changes_page_hands_out_a_read_only_feed_address(web_server):
    client = web_server.signed_in("ann@example.org")
    page = client.get("/changes?watch=RCC+file+watch")
    assert 'action="/account/feed-address"' in page.text
    response = client.post("/account/feed-address", data={"csrf_token": csrf_of(page.text), "watch": "RCC file watch"})
    assert response.status_code == 200 and "shown this once only" in response.text
    match = re.search(r'<code class="token" id="new-feed-url">([^<]+)</code>', response.text)
    assert match, response.text
    url = unescape(match.group(1))
    assert url.startswith(f"{web_server.config.server.public_url}{FEED}?token=tw_")  # [server] public_url
    path, token = url.removeprefix(web_server.config.server.public_url or ""), url.split("token=", 1)[1]
    assert web_server.client().get(path).status_code == 200
    assert web_server.api(token).post("/api/v1/watches", json=NEW_WATCH).status_code == 403
    assert "read-only" in client.get("/account").text


def test_the_account_page_creates_a_read_only_token_when_asked(web_server):
    client = web_server.signed_in("ann@example.org")
    response = client.submit("/account", {"name": "reader", "read_only": "on"}, action="/account/tokens")
    token = re.search(r'id="new-token">([^<]+)<', response.text).group(1)
    assert web_server.api(token).get("/api/v1/watches").status_code == 200
    assert web_server.api(token).post("/api/v1/watches", json=NEW_WATCH).status_code == 403
    response = client.submit("/account", {"name": "writer"}, action="/account/tokens")
    token = re.search(r'id="new-token">([^<]+)<', response.text).group(1)
    assert web_server.api(token).post("/api/v1/watches", json=NEW_WATCH).status_code == 201


def test_hsts_on_every_response_when_the_public_url_is_https(tmp_path, registry):
    site = make_site(f"sqlite:///{tmp_path / 'https.db'}", registry.base_url, public_url="https://trials.example.org")
    try:
        client = site.client()
        for path in ("/login", "/", "/static/style.css", "/api/v1/watches", "/no-such-page"):
            assert client.get(path).headers["strict-transport-security"] == "max-age=31536000", path
    finally:
        close_site(site)


def test_no_hsts_when_the_public_url_is_http(web_server):
    for path in ("/login", "/static/style.css"):
        assert "strict-transport-security" not in web_server.client().get(path).headers
