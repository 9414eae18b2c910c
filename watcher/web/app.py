"""`create_app`: the Starlette app of trialwatch, its route groups and its middleware.

The daemon (`trialwatch run`, `trialwatch web`) builds one with a `WebContext` and serves it with
uvicorn, adding /healthz and /metrics as `extra_routes` (those stay public). See the package
docstring for how to add a page group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

import watcher.config
from watcher.config import Secrets
from watcher.errors import ConfigError
from watcher.store import people
from watcher.store.db import transaction
from watcher.web import (
    routes_account,
    routes_api,
    routes_atom,
    routes_auth,
    routes_home,
    routes_landscape,
    routes_recipients,
    routes_studies,
    routes_timeline,
    routes_watches,
)
from watcher.web.errors import EXCEPTION_HANDLERS
from watcher.web.headers import SecurityHeadersMiddleware
from watcher.web.sessions import SessionCookieMiddleware, SessionKeys

STATIC_DIR = Path(__file__).resolve().parent / "static"
MIN_SECRET_LENGTH = 32


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class WebContext:
    """What the app works with: the database, the current config (a SIGHUP swaps it: call it
    each time), and the clock."""

    engine: sqlalchemy.Engine
    config: Callable[[], watcher.config.Config]
    now: Callable[[], datetime] = field(default=_utc_now)


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
]


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
        middleware=[Middleware(SecurityHeadersMiddleware), Middleware(SessionCookieMiddleware)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.context = context
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
