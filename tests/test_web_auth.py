"""Signing in and out over HTTP, the setup page, sessions, CSRF, throttling and the headers every
response carries; a real uvicorn over both databases."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.web_support import PASSWORD, close_site, csrf_of, make_site
from watcher.store import db, people, throttle
from watcher.web.headers import CONTENT_SECURITY_POLICY

PAGES = ["/", "/watches/new", "/watches/RCC%20file%20watch", "/account", "/logout"]


def test_every_page_but_login_and_setup_needs_a_session(web_server):
    client = web_server.client()
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login"), path
    assert client.get("/login").status_code == 200
    assert client.get("/static/style.css").status_code == 200


def test_the_api_answers_401_without_a_valid_token(web_server):
    client = web_server.client()
    assert client.get("/api/v1/watches").status_code == 401
    client.session.headers["Authorization"] = "Bearer tw_not-a-token"
    response = client.get("/api/v1/watches")
    assert response.status_code == 401
    assert response.json()["error"].startswith("a valid API token is required")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_security_headers_on_pages_redirects_api_and_static(web_server):
    client = web_server.client()
    for response in (
        client.get("/login"),
        client.get("/"),
        client.get("/api/v1/watches"),
        client.get("/static/style.css"),
    ):
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
        assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"


def test_sign_in_sets_a_signed_httponly_lax_cookie_and_out_clears_it(web_server):
    web_server.add_user("ann@example.org")
    client = web_server.client()
    response = client.sign_in("ann@example.org")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=1209600" in cookie
    assert "Secure" not in cookie  # public_url is http here
    assert client.get("/").status_code == 200
    page = client.get("/").text
    response = client.post("/logout", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert client.get("/").status_code == 303


def test_the_cookie_is_secure_when_the_public_url_is_https(tmp_path, registry):
    site = make_site(f"sqlite:///{tmp_path / 'secure.db'}", registry.base_url, public_url="https://trials.example.org")
    try:
        site.add_user("ann@example.org")
        response = site.client().get("/login")
        assert "; Secure" in response.headers["set-cookie"]
    finally:
        close_site(site)


def test_a_tampered_cookie_is_no_session(web_server):
    client = web_server.signed_in("ann@example.org")
    value = client.session.cookies["trialwatch_session"]
    client.session.cookies.set("trialwatch_session", value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert client.get("/").status_code == 303


def test_the_session_ends_after_14_idle_days_and_slides_with_use(web_server):
    client = web_server.signed_in("ann@example.org")
    web_server.clock.advance(timedelta(days=13))
    assert client.get("/").status_code == 200  # a visit re-signs the cookie
    web_server.clock.advance(timedelta(days=13))
    assert client.get("/").status_code == 200
    web_server.clock.advance(timedelta(days=14, seconds=5))
    assert client.get("/").status_code == 303


def test_a_password_change_ends_other_sessions(web_server):
    client = web_server.signed_in("ann@example.org")
    with db.transaction(web_server.engine) as session:
        people.set_password(session=session, email="ann@example.org", password="another long password")
    assert client.get("/").status_code == 303


def test_wrong_password_and_unknown_account_look_the_same(web_server, caplog):
    caplog.set_level("INFO")
    web_server.add_user("ann@example.org")
    wrong = web_server.client().sign_in("ann@example.org", "not the password")
    unknown = web_server.client().sign_in("nobody@example.org", "not the password")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Wrong email address or password." in response.text
        assert "trialwatch_session" not in response.cookies or "uid" not in response.text
    assert "failed sign-in for 'ann@example.org'" in caplog.text
    assert "not the password" not in caplog.text  # a password is never logged
    web_server.client().sign_in("ann@example.org")
    assert "ann@example.org signed in" in caplog.text and PASSWORD not in caplog.text


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_a_form_post_without_a_valid_csrf_token_is_refused(web_server, token):
    web_server.add_user("ann@example.org")
    client = web_server.client()
    client.get("/login")
    data = {"email": "ann@example.org", "password": PASSWORD}
    if token is not None:
        data["csrf_token"] = token
    response = client.post("/login", data=data)
    assert response.status_code == 403
    assert client.get("/").status_code == 303  # not signed in


def test_sign_out_needs_the_csrf_token(web_server):
    client = web_server.signed_in("ann@example.org")
    assert client.post("/logout", data={}).status_code == 403
    assert client.get("/").status_code == 200


def test_five_failures_for_one_account_from_one_address_throttle_that_pair_for_15_minutes(web_server):
    web_server.add_user("ann@example.org")
    client = web_server.client()
    client.session.headers["X-Forwarded-For"] = "198.51.100.1"  # uvicorn trusts X-Forwarded-For from loopback
    for _attempt in range(5):
        assert client.sign_in("ann@example.org", "wrong password").status_code == 401
    response = client.sign_in("ann@example.org")  # even the right password
    assert response.status_code == 429
    assert response.headers["retry-after"] == "900"
    assert "Too many failed sign-ins" in response.text
    web_server.clock.advance(timedelta(minutes=14))
    assert client.sign_in("ann@example.org").status_code == 429
    web_server.clock.advance(timedelta(minutes=1, seconds=1))
    assert client.sign_in("ann@example.org").status_code == 303


def test_twenty_failures_from_one_address_throttle_it(web_server):
    web_server.add_user("ann@example.org")
    client = web_server.client()
    client.session.headers["X-Forwarded-For"] = "203.0.113.9"
    for attempt in range(throttle.ADDRESS_FAILURES):
        assert client.sign_in(f"guess{attempt}@example.org", "wrong password").status_code == 401
    assert client.sign_in("ann@example.org").status_code == 429
    other = web_server.client()
    other.session.headers["X-Forwarded-For"] = "203.0.113.10"
    assert other.sign_in("ann@example.org").status_code == 303


def test_sign_in_goes_back_to_the_page_asked_for_but_never_off_site(web_server):
    web_server.add_user("ann@example.org")
    client = web_server.client()
    token = csrf_of(client.get("/login?next=/account").text)
    data = {"csrf_token": token, "email": "ann@example.org", "password": PASSWORD}
    assert client.post("/login", data={**data, "next": "/account"}).headers["location"] == "/account"
    client = web_server.client()
    token = csrf_of(client.get("/login").text)
    data["csrf_token"] = token
    assert client.post("/login", data={**data, "next": "//evil.example.org/"}).headers["location"] == "/"


def test_setup_link_creates_the_first_admin_once(web_server):
    now = web_server.clock.now()
    with db.transaction(web_server.engine) as session:
        token = people.ensure_setup_token(session=session, now=now)
    assert token
    client = web_server.client()
    page = client.get(f"/setup/{token}")
    assert page.status_code == 200 and "Create the admin account" in page.text
    data = {"email": "boss@example.org", "password": PASSWORD, "password_again": "different password"}
    response = client.post(f"/setup/{token}", data={"csrf_token": csrf_of(page.text), **data})
    assert response.status_code == 422 and "The two passwords differ." in response.text
    data["password_again"] = PASSWORD
    response = client.post(f"/setup/{token}", data={"csrf_token": csrf_of(response.text), **data})
    assert response.status_code == 303
    assert "boss@example.org (admin)" in client.get("/").text
    assert web_server.client().get(f"/setup/{token}").status_code == 404
    with db.transaction(web_server.engine) as session:
        assert people.ensure_setup_token(session=session, now=now) is None


def test_a_setup_link_expires_after_24_hours(web_server):
    with db.transaction(web_server.engine) as session:
        token = people.ensure_setup_token(session=session, now=web_server.clock.now())
    assert web_server.client().get(f"/setup/{token}").status_code == 200
    web_server.clock.advance(timedelta(hours=24, seconds=1))
    response = web_server.client().get(f"/setup/{token}")
    assert response.status_code == 404 and "expired" in response.text
    assert web_server.client().get("/setup/not-a-token").status_code == 404


def test_everything_from_a_user_is_escaped(web_server):
    web_server.add_user("ann@example.org")
    response = web_server.client().sign_in('"><script>alert(1)</script>@example.org', "x")
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;" in response.text or "&#34;&gt;&lt;script&gt;" in response.text


def test_an_unreachable_database_answers_503_with_a_clear_message(tmp_path):
    from tests.web_support import Clock, UvicornThread
    from watcher.config import Config
    from watcher.web.app import WebContext, create_app

    engine = db.make_engine("postgresql+psycopg://trialwatch@127.0.0.1:1/trialwatch?connect_timeout=2")
    config = Config()
    server = UvicornThread(create_app(WebContext(engine=engine, config=lambda: config, now=Clock().now)))
    url = server.start()
    try:
        from tests.web_support import WebClient

        client = WebClient(url)
        for path in ("/", "/login"):
            page = client.get(path)
            assert page.status_code == 503, path
            assert "The database cannot be reached right now; trialwatch keeps trying" in page.text
            assert page.headers["content-type"].startswith("text/html")
        client.session.headers["Authorization"] = "Bearer tw_whatever"
        api = client.get("/api/v1/watches")
        assert api.status_code == 503
        assert api.json()["error"].startswith("The database cannot be reached right now")
        assert client.get("/static/style.css").status_code == 200
    finally:
        server.stop()
        engine.dispose()


# a new public page is added here, on purpose: /u and /m are the signed links of every mail (issue 13)
PUBLIC = {"/login", "/setup/{token}", "/u/{token}", "/m/{token}"}
PUBLIC |= {"/atom/{filename:path}"}  # feed readers: an API token in the address, else 404 (tests/test_web_timeline.py)
PUBLIC |= {"/calendar/{filename}"}  # calendar apps: an API token in the address, else 404 (tests/test_calendar.py)


def test_every_route_the_app_has_needs_a_session_or_a_token_unless_public(web_server):
    from starlette.routing import Route

    client = web_server.client()
    checked = []
    for route in web_server.app.routes:
        if not isinstance(route, Route) or route.path in PUBLIC:
            continue
        path = re.sub(r"\{[^}]+\}", "RCC%20file%20watch", route.path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            response = client.request(method, path, data={} if method == "POST" else None)
            expected = 401 if route.path.startswith("/api/") else 303
            assert response.status_code == expected, f"{method} {route.path}: {response.status_code}"
            if expected == 303:
                assert response.headers["location"].startswith("/login"), f"{method} {route.path}"
            checked.append(f"{method} {route.path}")
    assert len(checked) >= 15, checked


def test_sessions_outlive_a_restart_and_work_on_every_replica(web_server, database_url, registry):
    client = web_server.signed_in("ann@example.org")
    replica = make_site(database_url, registry.base_url)  # another process's app over the same database
    try:
        client.base_url = replica.url  # the cookie jar sends the same cookie (cookies ignore the port)
        assert client.get("/").status_code == 200
    finally:
        close_site(replica)


def test_the_secret_key_from_the_environment_signs_and_nothing_is_stored(tmp_path, registry, monkeypatch):
    from sqlmodel import select

    from watcher.errors import ConfigError
    from watcher.store.models import WebSecret

    monkeypatch.setenv("TRIALWATCH_SECRET_KEY", "k" * 40)
    site = make_site(f"sqlite:///{tmp_path / 'env-key.db'}", registry.base_url)
    try:
        assert site.signed_in("ann@example.org").get("/").status_code == 200
        with db.transaction(site.engine) as session:
            assert session.exec(select(WebSecret)).all() == []
    finally:
        close_site(site)
    monkeypatch.setenv("TRIALWATCH_SECRET_KEY", "too short")
    with pytest.raises(ConfigError, match="TRIALWATCH_SECRET_KEY is shorter than 32 characters"):
        make_site(f"sqlite:///{tmp_path / 'short-key.db'}", registry.base_url)
