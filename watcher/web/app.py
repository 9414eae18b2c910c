"""`create_app`: the Starlette app of trialwatch, its route groups and its middleware.

The daemon (`trialwatch run`, `trialwatch web`) builds one with a `WebContext` and serves it with
uvicorn, adding /healthz and /metrics as `extra_routes` (those stay public). See the package
docstring for how to add a page group.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from watcher.config import Secrets
from watcher.errors import ConfigError
from watcher.store import people
from watcher.store.db import transaction
from watcher.web import (
    routes_account,
    routes_api,
    routes_atom,
    routes_auth,
    routes_calendar,
    routes_home,
    routes_landscape,
    routes_recipients,
    routes_studies,
    routes_timeline,
    routes_watches,
)
from watcher.web.context import WebContext
from watcher.web.errors import EXCEPTION_HANDLERS
from watcher.web.headers import SecurityHeadersMiddleware
from watcher.web.limits import BodyLimitMiddleware
from watcher.web.previews import PreviewRunner
from watcher.web.sessions import SessionCookieMiddleware, SessionKeys

__all__ = ["WebContext", "create_app", "setup_url"]  # WebContext lives in watcher.web.context

STATIC_DIR = Path(__file__).resolve().parent / "static"
MIN_SECRET_LENGTH = 32


# One line per page group: each module has `routes: list[BaseRoute]`.
ROUTE_GROUPS: list[Sequence[BaseRoute]] = [
    routes_auth.routes,
    routes_home.routes,
    routes_landscape.routes,  # /watches/<name>/studies (+ .csv, .xlsx, /api/v1 twin): before /watches/{name:path}
    routes_watches.routes,
    routes_account.routes,
    routes_api.routes,
    routes_recipients.routes,  # public: the signed links of every mail
    routes_timeline.routes,  # /changes, /articles, /sources
    routes_studies.routes,  # /studies/<NCT id>, its diff, and their /api/v1 twins
    routes_atom.routes,  # /atom/<watch>.atom?token=
    routes_calendar.routes,  # /calendar/<watch>.ics?token=
]


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    """When the server stops, the previews' pool stops too (its threads would hold the exit)."""
    yield
    app.state.previews.shutdown()


def create_app(context: WebContext, *, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The web app over `context`; `extra_routes` (the daemon's /healthz, /metrics) stay public."""
    routes: list[BaseRoute] = [*extra_routes, Mount("/static", StaticFiles(directory=STATIC_DIR), name="static")]
    for group in ROUTE_GROUPS:
        routes.extend(group)
    secret = Secrets().secret_key
    if secret is not None and len(secret.get_secret_value()) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"TRIALWATCH_SECRET_KEY is shorter than {MIN_SECRET_LENGTH} characters",
            hint="make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))', or unset it",
        )
    app = Starlette(
        routes=routes,
        lifespan=_lifespan,
        middleware=[
            Middleware(SecurityHeadersMiddleware, https=lambda: context.config().server.secure_cookies),
            Middleware(BodyLimitMiddleware),
            Middleware(SessionCookieMiddleware),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.context = context
    app.state.previews = PreviewRunner()
    app.state.session_keys = SessionKeys(secret.get_secret_value() if secret else None)
    return app


def setup_url(context: WebContext) -> str | None:
    """At start, with no user yet: the one-time URL (valid 24 hours) whose page creates the first
    admin, for the log; None once someone can sign in. Each call makes a new token."""
    with transaction(context.engine) as session:
        token = people.ensure_setup_token(session=session, now=context.now())
    if token is None:
        return None
    base = context.config().server.public_url or "http://127.0.0.1:8080"
    return f"{base}/setup/{token}"
