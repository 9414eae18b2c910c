"""store.people on both databases: argon2id hashes, tokens kept as sha256, the shared session key,
the setup token, throttling counts; and the web app's templates keep to the CSP (no inline
script or style)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from watcher.config import Config, ServerConfig
from watcher.store import db, people, throttle
from watcher.store.models import ApiTokenRow, SetupToken, UserRow
from watcher.web.app import WebContext, setup_url

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
PASSWORD = "correct horse battery"


@pytest.fixture
def engine(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    yield engine
    engine.dispose()


def test_passwords_are_argon2id_and_tokens_sha256(engine):
    with db.transaction(engine) as session:
        people.add_user(session=session, email=" Ann@Example.org ", password=PASSWORD, role="admin", now=NOW)
        _info, token = people.create_token(session=session, email="ann@example.org", name="nb", now=NOW)
    with db.transaction(engine) as session:
        user = session.exec(select(UserRow)).one()
        stored = session.exec(select(ApiTokenRow)).one()
        assert user.email == "ann@example.org" and user.password_hash.startswith("$argon2id$")
        assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest() and token not in stored.token_hash
        assert people.authenticate(session=session, email="ANN@example.org", password=PASSWORD).is_admin
        assert people.authenticate(session=session, email="ann@example.org", password=PASSWORD + "x") is None
        assert people.authenticate(session=session, email="nobody@example.org", password=PASSWORD) is None
        with pytest.raises(people.UserExists):
            people.add_user(session=session, email="ann@example.org", password=PASSWORD, role="member", now=NOW)
        with pytest.raises(people.PeopleError, match="unknown role"):
            people.add_user(session=session, email="b@example.org", password=PASSWORD, role="owner", now=NOW)


def test_removing_a_user_removes_their_tokens(engine):
    with db.transaction(engine) as session:
        people.add_user(session=session, email="ann@example.org", password=PASSWORD, role="member", now=NOW)
        _info, token = people.create_token(session=session, email="ann@example.org", name="", now=NOW)
    with db.transaction(engine) as session:
        people.remove_user(session=session, email="ann@example.org")
    with db.transaction(engine) as session:
        assert people.user_for_token(session=session, token=token, now=NOW) is None
        assert session.exec(select(ApiTokenRow)).all() == []


def test_the_session_key_is_made_once_and_kept(engine):
    with db.transaction(engine) as session:
        first = people.session_key(session=session, now=NOW)
    with db.transaction(engine) as session:
        assert people.session_key(session=session, now=NOW) == first
    assert len(first) >= 48


def test_setup_tokens_exist_only_while_nobody_can_sign_in(engine):
    context = WebContext(
        engine=engine, config=lambda: Config(server=ServerConfig(listen="127.0.0.1:8080")), now=lambda: NOW
    )
    url = setup_url(context)
    assert url is not None and re.fullmatch(r"http://127\.0\.0\.1:8080/setup/[A-Za-z0-9_-]{40,}", url)
    token = url.rsplit("/", 1)[1]
    with db.transaction(engine) as session:
        assert people.setup_token_valid(session=session, token=token, now=NOW + timedelta(hours=23))
        assert not people.setup_token_valid(session=session, token=token, now=NOW + timedelta(hours=24))
        assert not people.setup_token_valid(session=session, token=token + "x", now=NOW)
        people.complete_setup(session=session, token=token, email="boss@example.org", password=PASSWORD, now=NOW)
    assert setup_url(context) is None
    with db.transaction(engine) as session:
        assert session.exec(select(SetupToken)).all() == []
        with pytest.raises(people.PeopleError, match="expired or was used"):
            people.complete_setup(session=session, token=token, email="two@example.org", password=PASSWORD, now=NOW)


def _attempt(engine, account: str, address: str, at: datetime) -> bool:
    """A password check as the web does it: stored and committed first, then counted."""
    with db.transaction(engine) as session:
        attempt = throttle.reserve_attempt(session=session, account=account, address=address, now=at)
    with db.transaction(engine) as session:
        return throttle.attempt_allowed(session=session, attempt_id=attempt, account=account, address=address, now=at)


def test_throttling_counts_the_last_15_minutes_per_pair_address_and_account(engine):
    for minute in range(5):
        assert _attempt(engine, "Ann@example.org", "10.0.0.1", NOW + timedelta(minutes=minute))
    at = NOW + timedelta(minutes=5)
    assert not _attempt(engine, "ann@example.org", "10.0.0.1", at), "the pair"
    assert _attempt(engine, "ann@example.org", "10.9.9.9", at), "the same account from elsewhere"
    assert _attempt(engine, "ann@example.org", "10.0.0.1", NOW + timedelta(minutes=15, seconds=1))
    for number in range(throttle.ADDRESS_FAILURES):
        assert _attempt(engine, f"guess{number}@example.org", "10.7.7.7", at)
    assert not _attempt(engine, "bob@example.org", "10.7.7.7", at), "one address over many accounts"
    for number in range(throttle.ACCOUNT_FAILURES - 1):
        assert _attempt(engine, "cat@example.org", f"10.1.{number // 200}.{number % 200}", at)
    assert _attempt(engine, "cat@example.org", "10.2.0.1", at)
    assert not _attempt(engine, "cat@example.org", "10.2.0.2", at), "one account over many addresses"


def test_stored_and_looked_up_addresses_compare_the_same_way(engine):
    address = "2001:db8::" + "f" * 60  # longer than the column
    for number in range(throttle.ADDRESS_FAILURES):
        assert _attempt(engine, f"guess{number}@example.org", address, NOW)
    assert not _attempt(engine, "bob@example.org", address, NOW)


TEMPLATES = Path(__file__).resolve().parent.parent / "watcher" / "web" / "templates"


def test_templates_have_no_inline_script_style_or_handlers():
    for template in sorted(TEMPLATES.glob("*.html")):
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), template.name
        assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", text), template.name
        assert "|safe" not in text.replace(" ", ""), template.name
