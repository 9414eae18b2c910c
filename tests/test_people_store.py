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
from watcher.store import db, people
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


def test_throttling_counts_the_last_15_minutes_per_account_and_per_address(engine):
    with db.transaction(engine) as session:
        for minute in range(5):
            people.record_sign_in_failure(
                session=session, account="Ann@example.org", address="10.0.0.1", now=NOW + timedelta(minutes=minute)
            )
    with db.transaction(engine) as session:
        at = NOW + timedelta(minutes=5)
        assert people.sign_in_blocked(session=session, account="ann@example.org", address="10.9.9.9", now=at)
        assert people.sign_in_blocked(session=session, account="bob@example.org", address="10.0.0.1", now=at)
        assert not people.sign_in_blocked(session=session, account="bob@example.org", address="10.9.9.9", now=at)
        assert not people.sign_in_blocked(
            session=session, account="ann@example.org", address="10.9.9.9", now=NOW + timedelta(minutes=15)
        )
        people.clear_sign_in_failures(session=session, account="ann@example.org")
        assert not people.sign_in_blocked(session=session, account="ann@example.org", address="10.9.9.9", now=at)


TEMPLATES = Path(__file__).resolve().parent.parent / "watcher" / "web" / "templates"


def test_templates_have_no_inline_script_style_or_handlers():
    for template in sorted(TEMPLATES.glob("*.html")):
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), template.name
        assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", text), template.name
        assert "|safe" not in text.replace(" ", ""), template.name
