"""The web app's people: users, their API tokens and sessions, the shared secret, the setup link,
failed sign-ins. Part of store.models (which re-exports them); Alembic migrations must agree."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from watcher.store.columns import when as _when


class UserRow(SQLModel, table=True):
    """A person who signs in to the web app: `role` "admin" (everything) or "member" (reads
    everything, edits the watches they created). `session_version` grows when the password
    changes (sessions themselves are `WebSessionRow`s, deleted then). Ids are never reused
    (AUTOINCREMENT on SQLite; PostgreSQL's sequence never goes back), so nothing that names a
    removed user by id can ever point at a new one."""

    __tablename__ = "web_user"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, max_length=320)
    password_hash: str = Field(max_length=200)
    role: str = Field(default="member", max_length=16)
    session_version: int = 1
    created_at: datetime = _when()


class ApiTokenRow(SQLModel, table=True):
    """An API token: shown once, stored as the sha256 of its text. `scope` "full" acts as its user
    everywhere; "read" only reads (the Atom feeds' addresses, GET under /api/v1)."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="web_user.id", index=True)
    name: str = Field(default="", max_length=200)
    token_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = _when()
    last_used_at: datetime | None = _when(nullable=True)
    scope: str = Field(default="full", max_length=16, sa_column_kwargs={"server_default": "full"})  # full | read


class WebSessionRow(SQLModel, table=True):
    """A signed-in browser: the cookie holds a random id, stored here as its sha256. Signing out
    deletes the row, so a copy of the cookie is worthless from then on."""

    __tablename__ = "web_session"

    id_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="web_user.id", index=True)
    created_at: datetime = _when()
    last_seen_at: datetime = _when()


class WebSecret(SQLModel, table=True):
    """Values the web app generates once and every replica shares (the session signing key)."""

    __tablename__ = "web_secret"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=200)
    created_at: datetime = _when()


class SetupToken(SQLModel, table=True):
    """A one-time link that creates the first admin (sha256 stored; valid 24 hours)."""

    __tablename__ = "setup_token"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = _when()


class SignInFailure(SQLModel, table=True):
    """One failed sign-in, counted per account and per client address for throttling."""

    __tablename__ = "sign_in_failure"

    id: int | None = Field(default=None, primary_key=True)
    account: str = Field(index=True, max_length=320)
    address: str = Field(index=True, max_length=64)
    at: datetime = _when(index=True)
