"""/account: change one's password; create and revoke one's API tokens (a new token is shown
once, on the page that created it)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from watcher.inputs import whole_number
from watcher.store import people
from watcher.store.people import Person
from watcher.store.web_sessions import count_sessions
from watcher.web.auth import context_of, end_session, form_of, in_db, require_user, start_session
from watcher.web.render import render
from watcher.web.throttling import BLOCKED, RETRY_AFTER, throttled_check


async def account_page(request: Request) -> Response:
    user = await require_user(request)
    notice = {"password": "Your password was changed.", "revoked": "The token was revoked."}
    return await _account(request, user, notice=notice.get(request.query_params.get("done", ""), ""))


async def _account(request: Request, user: Person, status: int = 200, **extra: Any) -> Response:
    tokens = await in_db(request, lambda session: people.list_tokens(session=session, user_id=user.id))
    now = context_of(request).now()
    sessions = await in_db(request, lambda session: count_sessions(session=session, user_id=user.id, now=now))
    users = await in_db(request, lambda session: people.list_users(session=session)) if user.is_admin else []
    context = {"tokens": tokens, "sessions": sessions, "users": users, "errors": {}, "new_token": None, "notice": ""}
    context.setdefault("new_feed_url", None)
    context.update(extra)
    return render(request, "account.html", context, status_code=status)


async def change_password(request: Request) -> Response:
    user = await require_user(request)
    form = await form_of(request)
    current, new = str(form.get("current_password", "")), str(form.get("new_password", ""))
    if new != str(form.get("new_password_again", "")):
        return await _account(request, user, 422, errors={"new_password_again": "The two new passwords differ."})

    checked = await throttled_check(
        request, user.email, lambda session: people.authenticate(session=session, email=user.email, password=current)
    )
    if checked.blocked:
        response = await _account(request, user, 429, errors={"current_password": BLOCKED})
        response.headers["Retry-After"] = RETRY_AFTER
        return response
    if checked.value is None:
        return await _account(request, user, 422, errors={"current_password": "This is not your current password."})

    def change(session: Session) -> Person | dict[str, str]:
        try:
            return people.set_password(session=session, email=user.email, password=new)
        except people.BadPassword as exc:
            return {"new_password": str(exc)}

    result = await in_db(request, change)
    if isinstance(result, dict):
        return await _account(request, user, 422, errors=result)
    await start_session(request, result)  # every session ended with the change; this browser stays
    return RedirectResponse("/account?done=password", status_code=303)


async def create_token(request: Request) -> Response:
    user = await require_user(request)
    form = await form_of(request)
    name, now = str(form.get("name", "")).strip() or "browser", context_of(request).now()
    read_only = form.get("read_only") == "on"
    info, text = await in_db(
        request,
        lambda session: people.create_token(session=session, email=user.email, name=name, now=now, read_only=read_only),
    )
    return await _account(request, user, new_token=text, new_token_name=info.name)


async def create_feed_address(request: Request) -> Response:
    """A watch's Atom address (`kind` "atom") or calendar address ("calendar") with a new read-only
    token in it (shown once): what a feed reader or a calendar app stores can read, never change
    anything."""
    user = await require_user(request)
    form = await form_of(request)
    watch, now = str(form.get("watch", "")).strip()[:200], context_of(request).now()
    kind = "calendar" if form.get("kind") == "calendar" else "feed"
    if not watch:
        return await _account(request, user, 422, notice="Choose a watch on the changes page first.")
    info, text = await in_db(
        request,
        lambda session: people.create_token(
            session=session, email=user.email, name=f"{kind}: {watch}", now=now, read_only=True
        ),
    )
    base = (context_of(request).config().server.public_url or str(request.base_url)).rstrip("/")
    path = f"/calendar/{quote(watch, safe='')}.ics" if kind == "calendar" else f"/atom/{quote(watch, safe='')}.atom"
    url = f"{base}{path}?token={text}"
    return await _account(request, user, new_feed_url=url, new_feed_watch=watch, new_token_name=info.name)


async def revoke_token(request: Request) -> Response:
    user = await require_user(request)
    form = await form_of(request)
    token_id = whole_number(str(form.get("token_id", "")), name="token_id")  # InputError: 400
    await in_db(request, lambda session: people.revoke_token(session=session, token_id=token_id, user_id=user.id))
    return RedirectResponse("/account?done=revoked", status_code=303)


async def sign_out_everywhere(request: Request) -> Response:
    """Every session of the user ends, this one included (a stolen cookie with them)."""
    user = await require_user(request)
    await form_of(request)
    await in_db(request, lambda session: people.end_sessions(session=session, user_id=user.id))
    await end_session(request)
    return RedirectResponse("/login", status_code=303)


routes: list[BaseRoute] = [
    Route("/account", account_page, methods=["GET"]),
    Route("/account/password", change_password, methods=["POST"]),
    Route("/account/sign-out-everywhere", sign_out_everywhere, methods=["POST"]),
    Route("/account/tokens", create_token, methods=["POST"]),
    Route("/account/feed-address", create_feed_address, methods=["POST"]),
    Route("/account/tokens/revoke", revoke_token, methods=["POST"]),
]
