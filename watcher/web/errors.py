"""Exceptions to responses: an HTML page, or JSON under /api. The database being unreachable is a
503 with a clear message (the daemon keeps trying; the web app keeps answering)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from watcher.errors import StoreError
from watcher.inputs import InputError
from watcher.web.auth import Forbidden, SignInRequired, current_user, is_api
from watcher.web.headers import SECURITY_HEADERS
from watcher.web.previews import TooManyPreviews
from watcher.web.render import render

log = logging.getLogger(__name__)

DATABASE_DOWN = "The database cannot be reached right now; trialwatch keeps trying. Try again in a minute."


def error_response(request: Request, status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    if is_api(request):
        return JSONResponse({"error": message}, status_code=status, headers=dict(headers or {}))
    response = render(request, "error.html", {"status": status, "message": message}, status_code=status)
    response.headers.update(dict(headers or {}))
    return response


async def sign_in_required(request: Request, exc: Exception) -> Response:
    if is_api(request):
        return JSONResponse(
            {"error": "a valid API token is required: Authorization: Bearer TOKEN"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="trialwatch"'},
        )
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)


async def forbidden(request: Request, exc: Exception) -> Response:
    return error_response(request, 403, str(exc) or "You are not allowed to do this.")


async def bad_input(request: Request, exc: Exception) -> Response:
    return error_response(request, 400, str(exc))


async def too_many_previews(request: Request, exc: Exception) -> Response:
    return error_response(request, 429, str(exc), {"Retry-After": "10"})


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "There is no page here.", 405: "This address does not take that method."}
    default = HTTPStatus(exc.status_code).phrase
    message = exc.detail if exc.detail and exc.detail != default else messages.get(exc.status_code, default)
    if not is_api(request):
        try:  # the header shows the signed-in user's navigation on a 404 too
            await current_user(request)
        except Exception:  # noqa: BLE001 (a page that is not there must not fail on the database)
            log.debug("web: no user for the %s page", exc.status_code, exc_info=True)
    return error_response(request, exc.status_code, str(message), exc.headers)


async def database_down(request: Request, exc: Exception) -> Response:
    log.warning("web: %s %s: database unreachable: %s", request.method, request.url.path, _first_line(exc))
    try:
        return error_response(request, 503, DATABASE_DOWN, {"Retry-After": "30"})
    except Exception:  # noqa: BLE001 (rendering must not turn a 503 into a 500)
        return Response(DATABASE_DOWN, status_code=503, media_type="text/plain", headers={"Retry-After": "30"})


SERVER_ERROR = "Something went wrong on our side; it has been logged. Try again, or tell an admin."


async def server_error(request: Request, exc: Exception) -> Response:
    """Any exception nobody handled (Starlette's outermost middleware calls this, outside the
    security-headers middleware): logged; JSON under /api, the error page elsewhere; with the
    security headers and no-store all the same."""
    log.error("web: %s %s: unexpected error", request.method, request.url.path, exc_info=exc)
    try:
        response = error_response(request, 500, SERVER_ERROR)
    except Exception:  # noqa: BLE001 (the error page itself may be what fails)
        response = Response(SERVER_ERROR, status_code=500, media_type="text/plain")
    response.headers.update({**SECURITY_HEADERS, "Cache-Control": "no-store"})
    return response


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


EXCEPTION_HANDLERS: dict[Any, Any] = {
    SignInRequired: sign_in_required,
    Forbidden: forbidden,
    TooManyPreviews: too_many_previews,
    InputError: bad_input,
    HTTPException: http_error,
    OperationalError: database_down,
    InterfaceError: database_down,
    DBAPIError: database_down,
    PoolTimeout: database_down,
    StoreError: database_down,
    500: server_error,
}
