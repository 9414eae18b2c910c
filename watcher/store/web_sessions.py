"""Signed-in browsers, kept on the server: the cookie carries a random session id, the database
its sha256 (`WebSessionRow`), the user, when it began and when it was last seen.

A session ends when its user signs out (the row is deleted: a copy of the cookie is worthless
from then on), after `IDLE_LIFETIME` without a visit, `ABSOLUTE_LIFETIME` after signing in
whatever the visits, when the user signs out everywhere, changes their password or is removed.
Small keyword-only functions that take the session; no commits here.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_
from sqlmodel import Session, col, select

from watcher.store.models import WebSessionRow
from watcher.store.people import Person, digest, end_sessions, get_user

__all__ = ["count_sessions", "end_session", "end_sessions", "session_user", "start_session"]

IDLE_LIFETIME = timedelta(days=14)
ABSOLUTE_LIFETIME = timedelta(days=30)
SEEN_EVERY = timedelta(minutes=1)
"""`last_seen_at` is written at most this often (a page view is not a write each time)."""


def start_session(*, session: Session, user_id: int, now: datetime) -> str:
    """A new session for the user: its id, for the cookie only (the database keeps its hash).
    Sessions that ended by time, anyone's, are swept here."""
    session.execute(
        delete(WebSessionRow).where(
            or_(
                col(WebSessionRow.last_seen_at) < now - IDLE_LIFETIME,
                col(WebSessionRow.created_at) < now - ABSOLUTE_LIFETIME,
            )
        )
    )
    token = secrets.token_urlsafe(32)
    session.add(WebSessionRow(id_hash=digest(token), user_id=user_id, created_at=now, last_seen_at=now))
    return token


def session_user(*, session: Session, token: str, now: datetime) -> Person | None:
    """The user signed in with this session id, or None (unknown, signed out, or too old: then
    the row is deleted). Notes the visit (once a minute at most)."""
    row = session.get(WebSessionRow, digest(token))
    if row is None:
        return None
    if now - row.last_seen_at > IDLE_LIFETIME or now - row.created_at > ABSOLUTE_LIFETIME:
        session.delete(row)
        return None
    if now - row.last_seen_at > SEEN_EVERY:
        row.last_seen_at = now
        session.add(row)
    return get_user(session=session, user_id=row.user_id)


def end_session(*, session: Session, token: str) -> None:
    """Sign this session out (nothing happens when it has ended already)."""
    session.execute(delete(WebSessionRow).where(col(WebSessionRow.id_hash) == digest(token)))


def count_sessions(*, session: Session, user_id: int, now: datetime) -> int:
    """How many browsers the user is signed in on (sessions that have not ended by time)."""
    query = (
        select(func.count())
        .select_from(WebSessionRow)
        .where(
            col(WebSessionRow.user_id) == user_id,
            col(WebSessionRow.last_seen_at) >= now - IDLE_LIFETIME,
            col(WebSessionRow.created_at) >= now - ABSOLUTE_LIFETIME,
        )
    )
    return int(session.exec(query).one())
