"""`trialwatch user ...` and `trialwatch token ...` in-process against a real database (both kinds);
what they store is checked through the store and over HTTP by the web app's sign-in."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from tests.harness import write_config
from watcher.cli.operating import app
from watcher.store import db, people
from watcher.store.models import UserRow

PASSWORD = "a long enough password"


@pytest.fixture
def run(tmp_path, registry, database_url):
    config = write_config(tmp_path, registry, database_url=database_url)
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None, code: int = 0) -> str:
        result = runner.invoke(app, ["--config", str(config), *args], input=stdin)
        output = result.stdout + result.stderr
        assert result.exit_code == code, f"exit {result.exit_code}: {output}\n{result.exception!r}"
        return output

    invoke.engine = lambda: db.make_engine(database_url)  # type: ignore[attr-defined]
    return invoke


def test_user_add_list_passwd_remove(run):
    assert "added ann@example.org (admin)" in run(
        "user", "add", "Ann@Example.org", "--admin", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert "added bob@example.org (member)" in run("user", "add", "bob@example.org", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    listed = json.loads(run("user", "list", "--json"))
    assert [(u["email"], u["role"]) for u in listed] == [("ann@example.org", "admin"), ("bob@example.org", "member")]
    assert "ann@example.org  admin" in run("user", "list")
    engine = run.engine()
    with db.transaction(engine) as session:
        assert people.authenticate(session=session, email="bob@example.org", password=PASSWORD)
        stored = session.exec(select(UserRow)).all()
    assert all(row.password_hash.startswith("$argon2id$") for row in stored)
    assert all(PASSWORD not in row.password_hash for row in stored)
    run("user", "passwd", "bob@example.org", "--password-stdin", stdin="another long password\n")
    with db.transaction(engine) as session:
        assert people.authenticate(session=session, email="bob@example.org", password=PASSWORD) is None
        assert people.authenticate(session=session, email="bob@example.org", password="another long password")
    assert "removed bob@example.org" in run("user", "remove", "bob@example.org")
    assert [u["email"] for u in json.loads(run("user", "list", "--json"))] == ["ann@example.org"]


def test_user_errors_are_one_line(run):
    run("user", "add", "ann@example.org", "--password-stdin", stdin=PASSWORD)
    assert "exists already" in run("user", "add", "ann@example.org", "--password-stdin", stdin=PASSWORD, code=2)
    assert "at least 10 characters" in run("user", "add", "bob@example.org", "--password-stdin", stdin="short", code=2)
    assert "differ" in run("user", "add", "bob@example.org", stdin=f"{PASSWORD}\nsomething else\n", code=2)
    assert "not a valid mail address" in run(
        "user", "add", "not-an-address", "--password-stdin", stdin=PASSWORD, code=2
    )
    assert "no user 'nobody@example.org'" in run("user", "remove", "nobody@example.org", code=2)
    out = run("user", "add", "carl@example.org", "--password-stdin", stdin=PASSWORD)
    assert PASSWORD not in out


def test_token_create_list_revoke(run):
    run("user", "add", "ann@example.org", "--password-stdin", stdin=PASSWORD)
    created = run("token", "create", "ann@example.org", "--name", "notebook")
    (token,) = [line for line in created.splitlines() if line.startswith("tw_")]  # stdout: the token alone
    assert len(token) > 40 and "shown once" in created
    listed = json.loads(run("token", "list", "--json"))
    assert [(t["id"], t["email"], t["name"], t["last_used_at"]) for t in listed] == [
        (1, "ann@example.org", "notebook", None)
    ]
    assert token not in run("token", "list")
    with db.transaction(run.engine()) as session:
        assert people.user_for_token(session=session, token=token, now=people_now()).email == "ann@example.org"
    assert "token #1 revoked" in run("token", "revoke", "1")
    assert "no token #1" in run("token", "revoke", "1", code=2)
    with db.transaction(run.engine()) as session:
        assert people.user_for_token(session=session, token=token, now=people_now()) is None
    assert "no user" in run("token", "create", "nobody@example.org", code=2)


def people_now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_read_only_tokens_and_passwd_revoking_the_tokens(run):
    run("user", "add", "ann@example.org", "--password-stdin", stdin=PASSWORD)
    created = run("token", "create", "ann@example.org", "--name", "feeds", "--read-only")
    assert "read-only token #1" in created
    run("token", "create", "ann@example.org", "--name", "notebook")
    assert [(t["name"], t["scope"]) for t in json.loads(run("token", "list", "--json"))] == [
        ("feeds", "read"),
        ("notebook", "full"),
    ]
    assert "feeds  read  created" in run("token", "list")
    run("user", "passwd", "ann@example.org", "--password-stdin", stdin="another long password\n")
    assert len(json.loads(run("token", "list", "--json"))) == 2, "tokens stay unless asked"
    changed = run("user", "passwd", "ann@example.org", "--password-stdin", "--revoke-tokens", stdin=PASSWORD + "\n")
    assert "their API tokens are revoked" in changed
    assert json.loads(run("token", "list", "--json")) == []
    assert "--read-only" in run("token", "create", "--help") and "--revoke-tokens" in run("user", "passwd", "--help")
