"""The watch pages: /watches/new and /watches/<name> (the form, its Preview, saving, deleting,
the audit). Forms work without JavaScript; static/preview.js only updates the preview in place
(it asks for the fragment with `X-Requested-With: preview`)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from sqlmodel import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from watcher.store.dashboard import watch_summary
from watcher.store.milestones import due_counts
from watcher.store.people import Person
from watcher.store.watches import (
    WatchNameTaken,
    archive_watch,
    audit_entries,
    create_watch,
    get_watch_row,
    update_watch,
)
from watcher.web.auth import Forbidden, context_of, form_of, in_db, require_user
from watcher.web.channel_tests import send_test
from watcher.web.previews import preview_for
from watcher.web.render import render
from watcher.web.routes_recipients import watch_recipients
from watcher.web.rules_form import PREVIEW_RULE_FIELDS, RULE_FIELDS
from watcher.web.watch_data import (
    PREVIEW_FIELDS,
    WatchInvalid,
    form_to_data,
    form_values,
    may_edit,
    validate_preview,
    validate_watch,
)

FORM_FIELDS = (
    "name", "conditions", "terms", "exclude", "nct_ids", "recipients", "notify", "digest", "send_empty", "feeds",
)  # fmt: skip
SHOWN_FIELDS = (*FORM_FIELDS, *RULE_FIELDS)  # with the rules section (#15) and PubMed (#16)


def watch_path(name: str) -> str:
    return "/watches/" + quote(name, safe="")


def any_name_route(path: str, endpoint: Callable[[Request], Any], method: str) -> Route:
    """A route whose `{name:path}` matches every name, a line break too (Starlette's `.*` stops at
    one): a watch stored with a bad name before the rule (#25) can still be read and archived."""
    route = Route(path, endpoint, methods=[method])
    route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)
    return route


def name_param(request: Request) -> str:
    """The watch name of the path; 404 for one holding NUL, which no stored name holds (PostgreSQL
    stores none, and a name is checked before it is stored)."""
    name = str(request.path_params["name"])
    if "\x00" in name:
        raise HTTPException(404, f"There is no watch named {name!r}.")
    return name


def managed_in_file(request: Request, name: str) -> str:
    return f"watch {name!r} is managed in {context_of(request).config().path}; edit it there"


async def new_page(request: Request) -> Response:
    user = await require_user(request)
    values = form_values({"recipients": [user.email]})
    return render(request, "watch_edit.html", {"values": values, "errors": {}, "editing": None, "preview": None})


async def new_submit(request: Request) -> Response:
    user = await require_user(request)
    form = await form_of(request)
    data = form_to_data(form)
    if form.get("action") == "preview":
        return await _previewed(request, user, data, editing=None)
    try:
        watch = validate_watch(data)
    except WatchInvalid as exc:
        return _form_again(request, data, exc.by_field(), editing=None)
    now = context_of(request).now()
    try:
        await in_db(request, lambda session: create_watch(session=session, watch=watch, owner=user.email, now=now))
    except WatchNameTaken as exc:
        return _form_again(request, data, {"name": str(exc)}, editing=None, status=409)
    return RedirectResponse(watch_path(watch.name) + "?saved=1", status_code=303)


async def watch_page(request: Request) -> Response:
    return await _show_watch(request, await require_user(request), {})


async def _show_watch(request: Request, user: Person, extra: dict[str, Any]) -> Response:
    name = name_param(request)
    now = context_of(request).now()

    soon = context_of(request).config().milestones.due_soon_days

    def load(session: Session) -> tuple[Any, list[Any], dict[str, int]]:
        due = due_counts(session=session, watches=[name], today=now.date(), due_soon_days=soon)[name]
        return (
            watch_summary(session=session, name=name, now=now),
            audit_entries(session=session, watch=name, limit=50),
            due,
        )

    summary, audit, due = await in_db(request, load)
    if summary is None:
        raise HTTPException(404, f"There is no watch named {name!r}.")
    editable = may_edit(user, summary)
    values = form_values({"name": summary.name, **summary.definition})
    receivers = await watch_recipients(request, summary.name, summary.definition)
    return render(
        request,
        "watch_edit.html" if editable else "watch_view.html",
        {
            "summary": summary,
            "values": values,
            "errors": {},
            "editing": summary.name,
            "audit": audit,
            "preview": None,
            "saved": request.query_params.get("saved") == "1",
            "config_path": str(context_of(request).config().path),
            "receivers": receivers,
            "channel_tests": [],
            "may_test": editable or user.is_admin,
            **extra,
            "due": due,  # results overdue and due soon (#23)
            "calendar_path": "/calendar/" + quote(summary.name, safe="") + ".ics",
        },
    )


async def watch_submit(request: Request) -> Response:
    user = await require_user(request)
    form = await form_of(request)
    name = name_param(request)
    row = await in_db(request, lambda session: get_watch_row(session=session, name=name))
    if row is None or row.archived_at is not None:
        raise HTTPException(404, f"There is no watch named {name!r}.")
    action = form.get("action")
    if action == "notify-test":
        return await _notify_test(request, user, row)
    _check_may_edit(request, user, row)
    if action == "delete":
        now = context_of(request).now()
        await in_db(request, lambda session: archive_watch(session=session, name=name, actor=user.email, now=now))
        return RedirectResponse("/?deleted=" + quote(name, safe=""), status_code=303)
    data = form_to_data(form, base=row.definition)
    if action == "preview":
        return await _previewed(request, user, data, editing=name)
    return await _save_edit(request, user, name, data)


async def _save_edit(request: Request, user: Person, name: str, data: dict[str, Any]) -> Response:
    try:
        watch = validate_watch(data)
    except WatchInvalid as exc:
        return _form_again(request, data, exc.by_field(), editing=name)
    now = context_of(request).now()
    try:
        await in_db(
            request, lambda session: update_watch(session=session, name=name, watch=watch, actor=user.email, now=now)
        )
    except WatchNameTaken as exc:
        return _form_again(request, data, {"name": str(exc)}, editing=name, status=409)
    return RedirectResponse(watch_path(watch.name) + "?saved=1", status_code=303)


async def _notify_test(request: Request, user: Person, row: Any) -> Response:
    """ "Send a test": one short message to each of the watch's channels, in the channel threads
    (never the event loop nor the pages' pool), and the page again with what each answered."""
    if not (user.is_admin or may_edit(user, row)):
        raise Forbidden(f"only {row.owner or 'an admin'} or an admin may send test messages for {row.name!r}")
    urls = [str(url) for url in row.definition.get("notify") or []]
    results = await asyncio.gather(*(send_test(url, row.name) for url in urls))
    return await _show_watch(request, user, {"channel_tests": results})


def _check_may_edit(request: Request, user: Person, row: Any) -> None:
    if row.source != "web":
        raise Forbidden(managed_in_file(request, row.name))
    if not may_edit(user, row):
        raise Forbidden(f"watch {row.name!r} was created by {row.owner}; only they or an admin may change it")


async def _previewed(request: Request, user: Person, data: dict[str, Any], *, editing: str | None) -> Response:
    """The form again with the registry's answer beside it (or only that, for preview.js)."""
    try:
        asked = {key: data.get(key, []) for key in PREVIEW_FIELDS}
        asked |= {key: data[key] for key in PREVIEW_RULE_FIELDS if data.get(key)}  # its join rules apply
        watch = validate_preview(asked)
    except WatchInvalid as exc:
        return _form_again(request, data, exc.by_field(), editing=editing)
    preview = await preview_for(request, user, watch)
    if request.headers.get("x-requested-with") == "preview":
        return render(request, "_preview.html", {"preview": preview})
    return _form_again(request, data, {}, editing=editing, preview=preview, status=200)


def _form_again(
    request: Request,
    data: dict[str, Any],
    errors: dict[str, str],
    *,
    editing: str | None,
    preview: Any = None,
    status: int = 422,
) -> Response:
    if request.headers.get("x-requested-with") == "preview":  # preview.js: errors go in the preview box
        return render(request, "_preview.html", {"preview": None, "preview_errors": errors}, status_code=status)
    others = {key: message for key, message in errors.items() if key not in SHOWN_FIELDS}
    context = {
        "values": form_values(data),
        "errors": errors,
        "other_errors": others,
        "editing": editing,
        "preview": preview,
        "summary": None,
        "audit": [],
    }
    return render(request, "watch_edit.html", context, status_code=status)


routes: list[BaseRoute] = [
    Route("/watches/new", new_page, methods=["GET"]),
    Route("/watches/new", new_submit, methods=["POST"]),
    any_name_route("/watches/{name:path}", watch_page, "GET"),
    any_name_route("/watches/{name:path}", watch_submit, "POST"),
]
