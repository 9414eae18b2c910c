"""Server-side sessions over HTTP (issue 25, vulnerability 1 and W1): a removed user's cookie
never signs anyone in, signing out makes a copy of the cookie worthless, a session ends 30 days
after sign-in whatever the visits, "sign out everywhere", and a password change or a removal ends
a user's sessions; user ids are never reused. A real uvicorn over both databases."""

from __future__ import annotations

from datetime import timedelta

from tests.web_support import PASSWORD, WebClient, WebSite, csrf_of
from watcher.store import db, people

COOKIE = "trialwatch_session"


def copy_of(client: WebClient, site: WebSite) -> WebClient:
    """Another browser holding the same cookie (stolen, or copied from a shared machine)."""
    thief = site.client()
    thief.session.cookies.set(COOKIE, client.session.cookies[COOKIE])
    return thief


def test_a_removed_users_cookie_does_not_sign_in_the_next_user_created(web_server):
    web_server.add_user("boss@example.org", role="admin")
    member = web_server.signed_in("mel@example.org")
    removed_id = web_server.add_user("keep@example.org").id - 1  # mel: the highest id before keep
    stolen = copy_of(member, web_server)
    with db.transaction(web_server.engine) as session:
        people.remove_user(session=session, email="keep@example.org")
        people.remove_user(session=session, email="mel@example.org")
    new_admin = web_server.add_user("newboss@example.org", role="admin")
    assert new_admin.id > removed_id + 1, "a removed user's id was handed out again"
    for client in (member, stolen):
        response = client.get("/account")
        assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_user_ids_are_never_reused(web_server):
    first = web_server.add_user("a@example.org")
    second = web_server.add_user("b@example.org")
    with db.transaction(web_server.engine) as session:
        people.remove_user(session=session, email="b@example.org")
    third = web_server.add_user("c@example.org")
    assert first.id < second.id < third.id


def test_signing_out_makes_a_copy_of_the_cookie_worthless(web_server):
    client = web_server.signed_in("ann@example.org")
    thief = copy_of(client, web_server)
    assert thief.get("/account").status_code == 200
    response = client.post("/logout", data={"csrf_token": csrf_of(client.get("/").text)})
    assert response.status_code == 303
    assert thief.get("/account").status_code == 303
    assert client.get("/account").status_code == 303


def test_a_session_ends_30_days_after_sign_in_however_often_it_is_used(web_server):
    client = web_server.signed_in("ann@example.org")
    for _ in range(3):  # a visit every 9 days keeps it from going idle
        web_server.clock.advance(timedelta(days=9))
        assert client.get("/").status_code == 200
    web_server.clock.advance(timedelta(days=3, minutes=1))  # 30 days and a minute after signing in
    assert client.get("/").status_code == 303
    assert client.sign_in("ann@example.org").status_code == 303
    assert client.get("/").status_code == 200


def test_sign_out_everywhere_ends_every_session_of_the_user_only(web_server):
    laptop = web_server.signed_in("ann@example.org")
    phone = web_server.client()
    assert phone.sign_in("ann@example.org").status_code == 303
    other = web_server.signed_in("bob@example.org")
    page = laptop.get("/account").text
    assert "You are signed in on 2 browsers" in page
    response = laptop.post("/account/sign-out-everywhere", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert laptop.get("/").status_code == 303 and phone.get("/").status_code == 303
    assert other.get("/").status_code == 200


def test_sign_out_everywhere_needs_the_csrf_token(web_server):
    client = web_server.signed_in("ann@example.org")
    assert client.post("/account/sign-out-everywhere", data={}).status_code == 403
    assert client.get("/").status_code == 200


def test_changing_the_password_keeps_this_browser_and_ends_the_others(web_server):
    client = web_server.signed_in("ann@example.org")
    other = web_server.client()
    assert other.sign_in("ann@example.org").status_code == 303
    new = "another long password"
    data = {"current_password": PASSWORD, "new_password": new, "new_password_again": new}
    response = client.submit("/account", data, action="/account/password")
    assert response.status_code == 303
    assert client.get("/account").status_code == 200
    assert other.get("/account").status_code == 303


def test_signing_in_again_ends_the_session_the_browser_had(web_server):
    client = web_server.signed_in("ann@example.org")
    thief = copy_of(client, web_server)
    data = {"csrf_token": csrf_of(client.get("/").text), "email": "ann@example.org", "password": PASSWORD}
    assert client.post("/login", data=data).status_code == 303  # /login itself sends a signed-in browser on
    assert client.get("/account").status_code == 200
    assert thief.get("/account").status_code == 303
