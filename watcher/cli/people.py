"""`trialwatch user add|list|remove|passwd` and `trialwatch token create|list|revoke`: the people of
the web app and their API tokens. Passwords are read hidden (twice) or from stdin, never echoed
or logged; a token is printed once, when it is created."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from watcher.cli.shared import State, err, fail, guarded, now, out

if TYPE_CHECKING:  # each command imports what it uses when it runs: `--help` and `version` stay quick
    from sqlalchemy import Engine

user_app = typer.Typer(
    help="People who sign in to the web app.\n\nExample: trialwatch user add ann@example.org --admin",
    no_args_is_help=True,
)
token_app = typer.Typer(
    help="API tokens (Authorization: Bearer TOKEN).\n\nExample: trialwatch token create ann@example.org --name nb",
    no_args_is_help=True,
)

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin (for scripts).")
]


def _engine() -> Engine:
    from watcher.config import load_config
    from watcher.store import db

    config = load_config(State.config_path)
    engine = db.make_engine(config.database.url)
    db.upgrade(engine)
    return engine


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            fail("--password-stdin: stdin held no password")
        return password
    first = typer.prompt("Password", hide_input=True)
    if first != typer.prompt("Password again", hide_input=True):
        fail("the two passwords differ")
    return str(first)


@user_app.command("add")
def user_add(
    email: Annotated[str, typer.Argument(help="The person's mail address (they sign in with it).")],
    admin: Annotated[bool, typer.Option("--admin", help="An admin (users, every watch); default a member.")] = False,
    password_stdin: PasswordStdin = False,
) -> None:
    """Add a person who can sign in. Members read everything and edit the watches they create.

    Example: trialwatch user add ann@example.org --admin   (in a script: add --password-stdin)
    """

    from watcher.store import db, people

    def action() -> int:
        engine = _engine()
        people.check_password(password := _password(password_stdin))
        role = "admin" if admin else "member"
        with db.transaction(engine) as session:
            person = people.add_user(session=session, email=email, password=password, role=role, now=now())
        out.print(f"added {person.email} ({person.role})", markup=False)
        return 0

    guarded(action)


@user_app.command("list")
def user_list(as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False) -> None:
    """List the people who can sign in, with their role.

    Example: trialwatch user list
    """

    from watcher.store import db, people

    def action() -> int:
        with db.transaction(_engine()) as session:
            listed = people.list_users(session=session)
        if as_json:
            rows = [{"id": p.id, "email": p.email, "role": p.role} for p in listed]
            out.print(json.dumps(rows, indent=2), markup=False)
            return 0
        if not listed:
            out.print("no users: add one with `trialwatch user add EMAIL --admin`", markup=False)
        for person in listed:
            out.print(f"{person.email}  {person.role}", markup=False)
        return 0

    guarded(action)


@user_app.command("remove")
def user_remove(email: Annotated[str, typer.Argument(help="The person's mail address.")]) -> None:
    """Remove a person, their API tokens and sessions (signed out at once); the watches they created stay.

    Example: trialwatch user remove ann@example.org
    """

    from watcher.store import db, people

    def action() -> int:
        with db.transaction(_engine()) as session:
            people.remove_user(session=session, email=email)
        out.print(f"removed {email.strip().lower()}", markup=False)
        return 0

    guarded(action)


@user_app.command("passwd")
def user_passwd(
    email: Annotated[str, typer.Argument(help="The person's mail address.")],
    password_stdin: PasswordStdin = False,
    revoke_tokens: Annotated[
        bool, typer.Option("--revoke-tokens", help="Revoke every API token of theirs too (feed addresses included).")
    ] = False,
) -> None:
    """Set a person's password; every browser signed in as them is signed out.

    Example: trialwatch user passwd ann@example.org --revoke-tokens
    """

    from watcher.store import db, people

    def action() -> int:
        engine = _engine()
        password = _password(password_stdin)
        with db.transaction(engine) as session:
            person = people.set_password(session=session, email=email, password=password, revoke_tokens=revoke_tokens)
        revoked = "; their API tokens are revoked" if revoke_tokens else ""
        out.print(f"password of {person.email} changed{revoked}", markup=False)
        return 0

    guarded(action)


@token_app.command("create")
def token_create(
    email: Annotated[str, typer.Argument(help="Whose token: it acts as this person.")],
    name: Annotated[str, typer.Option(help="What it is for, shown by `token list`.")] = "",
    read_only: Annotated[
        bool, typer.Option("--read-only", help="It only reads: GET under /api/v1 and the Atom feeds.")
    ] = False,
) -> None:
    """Create an API token and print it (only this once; it is stored hashed).

    Example: trialwatch token create ann@example.org --name feeds --read-only
    """

    from watcher.store import db, people

    def action() -> int:
        with db.transaction(_engine()) as session:
            info, text = people.create_token(session=session, email=email, name=name, now=now(), read_only=read_only)
        kind = "read-only token" if read_only else "token"
        err.print(f"{kind} #{info.id} for {info.email}; shown once, keep it safe:", markup=False)
        out.print(text, markup=False)
        return 0

    guarded(action)


@token_app.command("list")
def token_list(as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False) -> None:
    """List API tokens (never their text): id, owner, name, scope (full or read), created, last used.

    Example: trialwatch token list
    """

    from watcher.store import db, people

    def action() -> int:
        with db.transaction(_engine()) as session:
            listed = people.list_tokens(session=session)
        rows = [
            {
                "id": t.id,
                "email": t.email,
                "name": t.name,
                "scope": t.scope,
                "created_at": t.created_at.isoformat(),
                "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
            }
            for t in listed
        ]
        if as_json:
            out.print(json.dumps(rows, indent=2), markup=False)
            return 0
        if not rows:
            out.print("no tokens", markup=False)
        for row in rows:
            used = row["last_used_at"] or "never used"
            out.print(
                f"#{row['id']}  {row['email']}  {row['name'] or '-'}  {row['scope']}"
                f"  created {row['created_at']}  {used}",
                markup=False,
            )
        return 0

    guarded(action)


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(help="The token's id, from `token list`.")]) -> None:
    """Revoke an API token: requests with it are refused (401) from now on.

    Example: trialwatch token revoke 3
    """

    from watcher.store import db, people

    def action() -> int:
        with db.transaction(_engine()) as session:
            if not people.revoke_token(session=session, token_id=token_id):
                fail(f"no token #{token_id}: see `trialwatch token list`")
        out.print(f"token #{token_id} revoked", markup=False)
        return 0

    guarded(action)
