"""What every route reuses: the context, the database in a worker thread, the signed-in user (a
session for pages, a bearer token for the API), roles, and forms checked for their CSRF token.

Failures are exceptions that watcher.web.errors turns into responses: `SignInRequired` (pages:
303 to /login; API: 401) and `Forbidden` (403). Database errors become 503.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request

from watcher.store import people, web_sessions
from watcher.store.db import transaction
from watcher.store.people import Person
from watcher.web.context import WebContext
from watcher.web.limits import read_form
from watcher.web.sessions import csrf_matches, load_session

T = TypeVar("T")
READ_METHODS = frozenset({"GET", "HEAD"})


class SignInRequired(Exception):
    """No valid session (pages) or bearer token (API)."""


class Forbidden(Exception):
    """Signed in, but not allowed: the message says why."""


def context_of(request: Request) -> WebContext:
    context: WebContext = request.app.state.context
    return context


async def in_db(request: Request, work: Callable[[Session], T]) -> T:
    """Run `work(session)` in one transaction, in a worker thread (the event loop never waits
    on the database, so a database that hangs does not hang the other pages)."""
    engine = context_of(request).engine

    def run() -> T:
        with transaction(engine) as session:
            return work(session)

    return await run_in_threadpool(run)


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def current_user(request: Request) -> Person | None:
    """The signed-in user of this page request, or None (a stale session is cleared)."""
    cached = getattr(request.state, "user", None)
    if isinstance(cached, Person):
        return cached
    web_session = await load_session(request)
    sid, now = web_session.session_id, context_of(request).now()
    if sid is None:
        return None
    person = await in_db(request, lambda session: web_sessions.session_user(session=session, token=sid, now=now))
    if person is None:
        web_session.clear()
        return None
    request.state.user = person
    return person


async def start_session(request: Request, person: Person) -> None:
    """Sign this browser in as `person`: a new server-side session, its id in the cookie (the
    session it had before, if any, ends)."""
    web_session, now = await load_session(request), context_of(request).now()
    previous = web_session.session_id

    def start(session: Session) -> str:
        if previous is not None:
            web_sessions.end_session(session=session, token=previous)
        return web_sessions.start_session(session=session, user_id=person.id, now=now)

    web_session.sign_in(await in_db(request, start))


async def end_session(request: Request) -> None:
    """Sign this browser out: its server-side session is deleted, the cookie cleared."""
    web_session = await load_session(request)
    sid = web_session.session_id
    if sid is not None:
        await in_db(request, lambda session: web_sessions.end_session(session=session, token=sid))
    web_session.clear()


async def require_user(request: Request) -> Person:
    """The signed-in user of a page; SignInRequired (303 to /login) without one."""
    person = await current_user(request)
    if person is None:
        raise SignInRequired()
    return person


async def require_api_user(request: Request) -> Person:
    """The owner of the request's `Authorization: Bearer TOKEN`; SignInRequired (401) without one,
    Forbidden (403) when a read-only token asks to change something (any method but GET/HEAD)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise SignInRequired()
    now = context_of(request).now()
    found = await in_db(request, lambda session: people.token_user(session=session, token=token, now=now))
    if found is None:
        raise SignInRequired()
    person, may_write = found
    if not may_write and request.method not in READ_METHODS:
        raise Forbidden("this API token is read-only: create a full one on your account page to change anything")
    request.state.user = person
    return person


def require_admin(person: Person) -> Person:
    if not person.is_admin:
        raise Forbidden("only an admin may do this")
    return person


async def form_of(request: Request) -> FormData:
    """The POSTed form, its CSRF token checked against the session's (Forbidden when it is not)."""
    form = await read_form(request)
    web_session = await load_session(request)
    if not csrf_matches(web_session, form.get("csrf_token")):
        raise Forbidden("the form has expired or did not come from this site: reload the page and try again")
    return form


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
