"""/account: change one's password; create and revoke one's API tokens (a new token is shown
once, on the page that created it)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from watcher.inputs import whole_number
from watcher.store import people
from watcher.store.people import Person
from watcher.web.auth import context_of, form_of, in_db, require_user
from watcher.web.render import render
from watcher.web.sessions import load_session


async def account_page(request: Request) -> Response:
    user = await require_user(request)
    notice = {"password": "Your password was changed.", "revoked": "The token was revoked."}
    return await _account(request, user, notice=notice.get(request.query_params.get("done", ""), ""))


async def _account(request: Request, user: Person, status: int = 200, **extra: Any) -> Response:
    tokens = await in_db(request, lambda session: people.list_tokens(session=session, user_id=user.id))
    users = await in_db(request, lambda session: people.list_users(session=session)) if user.is_admin else []
    context = {"tokens": tokens, "users": users, "errors": {}, "new_token": None, "notice": "", **extra}
    return render(request, "account.html", context, status_code=status)


async def change_password(request: Request) -> Response:
    user = await require_user(request)
    form = await form_of(request)
    current, new = str(form.get("current_password", "")), str(form.get("new_password", ""))
    if new != str(form.get("new_password_again", "")):
        return await _account(request, user, 422, errors={"new_password_again": "The two new passwords differ."})

    def change(session: Session) -> Person | dict[str, str]:
        if people.authenticate(session=session, email=user.email, password=current) is None:
            return {"current_password": "This is not your current password."}
        try:
            return people.set_password(session=session, email=user.email, password=new)
        except people.BadPassword as exc:
            return {"new_password": str(exc)}

    result = await in_db(request, change)
    if isinstance(result, dict):
        return await _account(request, user, 422, errors=result)
    (await load_session(request)).sign_in(user_id=result.id, version=result.session_version)  # this one stays
    return RedirectResponse("/account?done=password", status_code=303)


async def create_token(request: Request) -> Response:
    user = await require_user(request)
    form = await form_of(request)
    name, now = str(form.get("name", "")).strip() or "browser", context_of(request).now()
    info, text = await in_db(
        request, lambda session: people.create_token(session=session, email=user.email, name=name, now=now)
    )
    return await _account(request, user, new_token=text, new_token_name=info.name)


async def revoke_token(request: Request) -> Response:
    user = await require_user(request)
    form = await form_of(request)
    token_id = whole_number(str(form.get("token_id", "")), name="token_id")  # InputError: 400
    await in_db(request, lambda session: people.revoke_token(session=session, token_id=token_id, user_id=user.id))
    return RedirectResponse("/account?done=revoked", status_code=303)


routes: list[BaseRoute] = [
    Route("/account", account_page, methods=["GET"]),
    Route("/account/password", change_password, methods=["POST"]),
    Route("/account/tokens", create_token, methods=["POST"]),
    Route("/account/tokens/revoke", revoke_token, methods=["POST"]),
]
