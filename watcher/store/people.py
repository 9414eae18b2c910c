"""The people of the web app: users and their passwords (argon2id), API tokens (shown once, kept
as sha256), the session signing key every replica shares, the one-time setup token that creates
the first admin (the failed sign-ins that throttle guessing: watcher.store.throttle; sessions:
watcher.store.web_sessions).

Small keyword-only functions that take the session; no commits here. Passwords and tokens are
never logged or put in an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from watcher.errors import TrialwatchError
from watcher.store.models import ApiTokenRow, SetupToken, UserRow, WebSecret, WebSessionRow
from watcher.watch import check_address

ROLES = ("admin", "member")
MIN_PASSWORD_LENGTH = 10
SETUP_VALID_FOR = timedelta(hours=24)
SESSION_KEY_NAME = "session_key"
FULL_SCOPE, READ_SCOPE = "full", "read"
"""Token scopes: "full" acts as its user everywhere (every token made before scopes existed);
"read" reads only (GET under /api/v1, the Atom feeds): what a feed reader's stored URL carries."""

# argon2id with OWASP's recommended parameters (19 MiB, 2 passes, 1 lane): about 0.15 s a hash on
# a small 2-core server. Hashes made with other parameters are upgraded at the next sign-in.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)
_DUMMY_HASH = _hasher.hash("not a password anyone has")


class PeopleError(TrialwatchError):
    """A user or token operation was refused; the message says why."""


class UserExists(PeopleError):
    pass


class UserNotFound(PeopleError):
    pass


class BadPassword(PeopleError):
    pass


class SetupLinkGone(PeopleError):
    pass


@dataclass(frozen=True)
class Person:
    """A signed-in user as the web app and the CLI see it (never the password hash)."""

    id: int
    email: str
    role: str
    session_version: int

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class TokenInfo:
    id: int
    email: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    scope: str = FULL_SCOPE

    @property
    def read_only(self) -> bool:
        return self.scope == READ_SCOPE


def _person(row: UserRow) -> Person:
    assert row.id is not None
    return Person(id=row.id, email=row.email, role=row.role, session_version=row.session_version)


def normal_email(email: str) -> str:
    """The address as stored: trimmed, lower case, checked."""
    try:
        return check_address(email.strip().lower())
    except ValueError as exc:
        raise PeopleError(str(exc)) from exc


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadPassword(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise BadPassword("the password is longer than 1024 characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


def digest(text: str) -> str:
    """sha256 hex of a token: what is stored instead of the token."""
    return hashlib.sha256(text.encode()).hexdigest()


# users


def _user_row(session: Session, email: str) -> UserRow | None:
    return session.exec(select(UserRow).where(UserRow.email == email.strip().lower())).first()


def add_user(*, session: Session, email: str, password: str, role: str, now: datetime) -> Person:
    if role not in ROLES:
        raise PeopleError(f"unknown role {role!r}: use admin or member")
    address = normal_email(email)
    if _user_row(session, address) is not None:
        raise UserExists(f"a user {address!r} exists already")
    row = UserRow(email=address, password_hash=hash_password(password), role=role, created_at=now)
    session.add(row)
    session.flush()
    return _person(row)


def list_users(*, session: Session) -> list[Person]:
    return [_person(row) for row in session.exec(select(UserRow).order_by(col(UserRow.email)))]


def count_users(*, session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(UserRow)).one())


def get_user(*, session: Session, user_id: int) -> Person | None:
    row = session.get(UserRow, user_id)
    return _person(row) if row is not None else None


def user_by_email(*, session: Session, email: str) -> Person | None:
    row = _user_row(session, email)
    return _person(row) if row is not None else None


def remove_user(*, session: Session, email: str) -> None:
    """Delete the user, their tokens and sessions; the watches they created stay (their owner is kept)."""
    row = _user_row(session, email)
    if row is None or row.id is None:
        raise UserNotFound(f"no user {email.strip().lower()!r}")
    session.execute(delete(ApiTokenRow).where(col(ApiTokenRow.user_id) == row.id))
    end_sessions(session=session, user_id=row.id)
    session.delete(row)


def set_password(*, session: Session, email: str, password: str, revoke_tokens: bool = False) -> Person:
    """A new password; every session signed in before ends (and every API token of the user
    with `revoke_tokens`)."""
    row = _user_row(session, email)
    if row is None or row.id is None:
        raise UserNotFound(f"no user {email.strip().lower()!r}")
    row.password_hash = hash_password(password)
    row.session_version += 1
    session.add(row)
    end_sessions(session=session, user_id=row.id)
    if revoke_tokens:
        session.execute(delete(ApiTokenRow).where(col(ApiTokenRow.user_id) == row.id))
    return _person(row)


def end_sessions(*, session: Session, user_id: int) -> int:
    """Sign the user out everywhere (watcher.store.web_sessions keeps the sessions); how many ended."""
    result = session.execute(delete(WebSessionRow).where(col(WebSessionRow.user_id) == user_id))
    return int(getattr(result, "rowcount", 0) or 0)


def authenticate(*, session: Session, email: str, password: str) -> Person | None:
    """The user whose address and password these are, else None (as slow either way)."""
    row = _user_row(session, email)
    try:
        _hasher.verify(row.password_hash if row else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    if _hasher.check_needs_rehash(row.password_hash):
        row.password_hash = _hasher.hash(password)
        session.add(row)
    return _person(row)


# API tokens


def create_token(
    *, session: Session, email: str, name: str, now: datetime, read_only: bool = False
) -> tuple[TokenInfo, str]:
    """A new token for the user: (its description, the token text, shown this once only)."""
    row = _user_row(session, email)
    if row is None or row.id is None:
        raise UserNotFound(f"no user {email.strip().lower()!r}")
    text = "tw_" + secrets.token_urlsafe(32)
    scope = READ_SCOPE if read_only else FULL_SCOPE
    token = ApiTokenRow(user_id=row.id, name=name.strip()[:200], token_hash=digest(text), created_at=now, scope=scope)
    session.add(token)
    session.flush()
    assert token.id is not None
    return TokenInfo(token.id, row.email, token.name, token.created_at, None, scope), text


def list_tokens(*, session: Session, user_id: int | None = None) -> list[TokenInfo]:
    query = select(ApiTokenRow, UserRow.email).join(UserRow, col(UserRow.id) == col(ApiTokenRow.user_id))
    if user_id is not None:
        query = query.where(ApiTokenRow.user_id == user_id)
    rows = session.exec(query.order_by(col(ApiTokenRow.id)))
    return [TokenInfo(t.id or 0, email, t.name, t.created_at, t.last_used_at, t.scope) for t, email in rows]


def revoke_token(*, session: Session, token_id: int, user_id: int | None = None) -> bool:
    """Delete the token (only if it is `user_id`'s, when given); False when there was none."""
    token = session.get(ApiTokenRow, token_id)
    if token is None or (user_id is not None and token.user_id != user_id):
        return False
    session.delete(token)
    return True


def user_for_token(*, session: Session, token: str, now: datetime) -> Person | None:
    """The user a bearer token belongs to, whatever its scope (see `token_user`)."""
    found = token_user(session=session, token=token, now=now)
    return found[0] if found is not None else None


def token_user(*, session: Session, token: str, now: datetime) -> tuple[Person, bool] | None:
    """The user a bearer token belongs to and whether it may write (its scope is "full"), or
    None; notes when it was last used (once a minute at most)."""
    row = session.exec(select(ApiTokenRow).where(ApiTokenRow.token_hash == digest(token))).first()
    if row is None:
        return None
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now
        session.add(row)
    person = get_user(session=session, user_id=row.user_id)
    return (person, row.scope == FULL_SCOPE) if person is not None else None


# the session key


def session_key(*, session: Session, now: datetime) -> str:
    """The key that signs session cookies, generated once and shared by every replica."""
    stored = session.get(WebSecret, SESSION_KEY_NAME)
    if stored is not None:
        return stored.value
    try:
        with session.begin_nested():
            session.add(WebSecret(name=SESSION_KEY_NAME, value=secrets.token_urlsafe(48), created_at=now))
    except IntegrityError:  # another replica stored one first: use theirs
        pass
    stored = session.get(WebSecret, SESSION_KEY_NAME)
    assert stored is not None
    return stored.value


# the first admin


def ensure_setup_token(*, session: Session, now: datetime) -> str | None:
    """With no user yet, a new one-time setup token (valid 24 hours) to print; else None."""
    session.execute(delete(SetupToken).where(col(SetupToken.created_at) < now - SETUP_VALID_FOR))
    if count_users(session=session):
        session.execute(delete(SetupToken))
        return None
    text = secrets.token_urlsafe(32)
    session.add(SetupToken(token_hash=digest(text), created_at=now))
    return text


def setup_token_valid(*, session: Session, token: str, now: datetime) -> bool:
    if count_users(session=session):
        return False
    row = session.exec(select(SetupToken).where(SetupToken.token_hash == digest(token))).first()
    return row is not None and now - row.created_at < SETUP_VALID_FOR


def complete_setup(*, session: Session, token: str, email: str, password: str, now: datetime) -> Person:
    """Create the first admin with a valid setup token, spending it first in one statement (of
    simultaneous submissions one deletes the row, the others find it gone: one admin); the
    address and password are checked before, so a typo does not spend the link."""
    normal_email(email)
    check_password(password)
    spent = session.execute(
        delete(SetupToken).where(col(SetupToken.token_hash) == digest(token)).returning(col(SetupToken.created_at))
    ).all()
    if not spent or now - spent[0][0] >= SETUP_VALID_FOR or count_users(session=session):
        raise SetupLinkGone("this setup link has expired or was used already")
    person = add_user(session=session, email=email, password=password, role="admin", now=now)
    session.execute(delete(SetupToken))
    return person


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
