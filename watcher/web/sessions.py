"""Session cookies and CSRF tokens.

The cookie holds a small JSON object signed with itsdangerous (HMAC, timestamped): the random id
of a server-side session once signed in (watcher.store.web_sessions: the database decides who it
is and whether it still holds; signing out deletes it there), and the CSRF token of every form
(sign-in included). It is HttpOnly, SameSite=Lax, Secure when `[server] public_url` is https, and
re-signed on every page so it expires after `IDLE_TIMEOUT` without a visit. The signing key is
TRIALWATCH_SECRET_KEY, or one generated once and kept in the database (store.people.session_key),
read at the first request that needs it, so a database that is down at start only delays it.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from watcher.store import people
from watcher.store.db import transaction
from watcher.store.web_sessions import IDLE_LIFETIME

COOKIE_NAME = "trialwatch_session"
IDLE_TIMEOUT = IDLE_LIFETIME
SCOPE_KEY = "trialwatch.session"
_SALT = "trialwatch-session"


class SessionKeys:
    """The signing key: the environment's, else the database's, fetched once."""

    def __init__(self, configured: str | None) -> None:
        self._key = configured
        self._lock = threading.Lock()

    def get(self, request: Request) -> str:
        with self._lock:
            if self._key is None:
                context = request.app.state.context
                with transaction(context.engine) as session:
                    self._key = people.session_key(session=session, now=context.now())
            return self._key


class WebSession:
    """The decoded cookie of one request; changes are written back by the middleware."""

    def __init__(self, data: dict[str, Any], serializer: URLSafeTimedSerializer, secure: bool) -> None:
        self.data = data
        self.serializer = serializer
        self.secure = secure
        self.modified = False

    def csrf_token(self) -> str:
        token = self.data.get("csrf")
        if not isinstance(token, str) or len(token) < 20:
            token = secrets.token_urlsafe(32)
            self.data["csrf"] = token
            self.modified = True
        return token

    def sign_in(self, session_id: str) -> None:
        """The cookie of a new server-side session (new CSRF token: nothing from before sign-in
        carries over)."""
        self.data = {"sid": session_id, "csrf": secrets.token_urlsafe(32)}
        self.modified = True

    def clear(self) -> None:
        self.data = {}
        self.modified = True

    @property
    def session_id(self) -> str | None:
        sid = self.data.get("sid")
        return sid if isinstance(sid, str) and 20 <= len(sid) <= 100 else None

    def cookie_header(self) -> str:
        """The Set-Cookie value: the signed data, or an expired cookie when cleared."""
        flags = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if self.secure else "")
        if not self.data:
            return f"{COOKIE_NAME}=; Max-Age=0{flags}"
        value = self.serializer.dumps(self.data)
        assert isinstance(value, str)
        return f"{COOKIE_NAME}={value}; Max-Age={int(IDLE_TIMEOUT.total_seconds())}{flags}"


def _decode(serializer: URLSafeTimedSerializer, cookie: str | None) -> dict[str, Any]:
    if not cookie:
        return {}
    try:
        data = serializer.loads(cookie, max_age=int(IDLE_TIMEOUT.total_seconds()))
    except BadSignature:  # tampered, signed with another key, or idle too long
        return {}
    return data if isinstance(data, dict) else {}


def _serializer(key: str, now: Callable[[], datetime]) -> URLSafeTimedSerializer:
    """Signs with the app's clock (so idle expiry follows `WebContext.now`)."""

    class ClockedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(now().timestamp())

    return URLSafeTimedSerializer(key, salt=_SALT, signer=ClockedSigner)


async def load_session(request: Request) -> WebSession:
    """This request's session (decoded once); needs the key, so it may reach the database."""
    existing = request.scope.get(SCOPE_KEY)
    if isinstance(existing, WebSession):
        return existing
    key = await run_in_threadpool(request.app.state.session_keys.get, request)
    context = request.app.state.context
    serializer = _serializer(key, context.now)
    secure = context.config().server.secure_cookies
    web_session = WebSession(_decode(serializer, request.cookies.get(COOKIE_NAME)), serializer, secure)
    request.scope[SCOPE_KEY] = web_session
    return web_session


def csrf_matches(web_session: WebSession, given: object) -> bool:
    expected = web_session.data.get("csrf")
    if not (isinstance(given, str) and isinstance(expected, str) and expected):
        return False
    return people.same_secret(given, expected)


class SessionCookieMiddleware:
    """Writes the session cookie back when it changed, or to slide a signed-in session's expiry."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                web_session = scope.get(SCOPE_KEY)
                if isinstance(web_session, WebSession) and (web_session.modified or web_session.session_id):
                    MutableHeaders(scope=message).append("Set-Cookie", web_session.cookie_header())
            await send(message)

        await self.app(scope, receive, send_with_cookie)
