"""Signing in and out, and the one-time setup page that creates the first admin."""

from __future__ import annotations

import logging

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from watcher.store import people
from watcher.store.people import Person
from watcher.web.auth import client_address, context_of, current_user, end_session, form_of, in_db, start_session
from watcher.web.render import render
from watcher.web.sessions import load_session
from watcher.web.throttling import BLOCKED, RETRY_AFTER, throttled_check

log = logging.getLogger(__name__)
WRONG = "Wrong email address or password."


def safe_next(target: object) -> str:
    """Where to go after signing in: a path of this site only (never another host)."""
    if isinstance(target, str) and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


async def login_page(request: Request) -> Response:
    if await current_user(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    await load_session(request)
    return render(request, "login.html", {"next": safe_next(request.query_params.get("next")), "email": ""})


async def login_submit(request: Request) -> Response:
    form = await form_of(request)
    email, password = str(form.get("email", "")).strip(), str(form.get("password", ""))
    target, address = safe_next(form.get("next")), client_address(request)
    result = await throttled_check(
        request, email, lambda session: people.authenticate(session=session, email=email, password=password)
    )
    if result.blocked:
        log.warning("web: sign-in refused for %r from %s: too many failures in 15 minutes", email, address)
    elif result.value is None:
        log.warning("web: failed sign-in for %r from %s", email, address)
    else:
        log.info("web: %s signed in from %s", result.value.email, address)
    if result.value is None:
        status, message = (429, BLOCKED) if result.blocked else (401, WRONG)
        response = render(request, "login.html", {"next": target, "email": email, "error": message}, status)
        if result.blocked:
            response.headers["Retry-After"] = RETRY_AFTER
        return response
    await start_session(request, result.value)
    return RedirectResponse(target, status_code=303)


async def logout_page(request: Request) -> Response:
    if await current_user(request) is None:
        return RedirectResponse("/login", status_code=303)
    return render(request, "logout.html")


async def logout_submit(request: Request) -> Response:
    if await current_user(request) is None:  # nobody to sign out
        return RedirectResponse("/login", status_code=303)
    await form_of(request)
    await end_session(request)
    return RedirectResponse("/login", status_code=303)


async def setup_page(request: Request) -> Response:
    token, now = request.path_params["token"], context_of(request).now()
    valid = await in_db(request, lambda session: people.setup_token_valid(session=session, token=token, now=now))
    if not valid:
        return _setup_gone(request)
    await load_session(request)
    return render(request, "setup.html", {"token": token, "email": "", "errors": {}})


async def setup_submit(request: Request) -> Response:
    form = await form_of(request)
    token, now = request.path_params["token"], context_of(request).now()
    email, password = str(form.get("email", "")).strip(), str(form.get("password", ""))
    if password != str(form.get("password_again", "")):
        return _setup_again(request, token, email, {"password_again": "The two passwords differ."})

    def create(session: Session) -> Person | str:
        try:
            return people.complete_setup(session=session, token=token, email=email, password=password, now=now)
        except people.SetupLinkGone:
            return "gone"
        except people.BadPassword as exc:
            return f"password:{exc}"
        except people.PeopleError as exc:
            return f"email:{exc}"

    result = await in_db(request, create)
    if result == "gone":
        return _setup_gone(request)
    if isinstance(result, str):
        field, _, message = result.partition(":")
        return _setup_again(request, token, email, {field: message})
    await start_session(request, result)
    return RedirectResponse("/", status_code=303)


def _setup_again(request: Request, token: str, email: str, errors: dict[str, str]) -> Response:
    return render(request, "setup.html", {"token": token, "email": email, "errors": errors}, status_code=422)


def _setup_gone(request: Request) -> Response:
    message = "This setup link has expired or was used already. Restart trialwatch for a new one, or ask an admin."
    return render(request, "error.html", {"status": 404, "message": message}, status_code=404)


routes: list[BaseRoute] = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login_submit, methods=["POST"]),
    Route("/logout", logout_page, methods=["GET"]),
    Route("/logout", logout_submit, methods=["POST"]),
    Route("/setup/{token}", setup_page, methods=["GET"]),
    Route("/setup/{token}", setup_submit, methods=["POST"]),
]
