"""The JSON API under /api/v1 (`Authorization: Bearer TOKEN`): watches (list, read, create,
replace, delete), the registry preview, and changes a page at a time. A watch is validated by
`WatchConfig` exactly as the form is; errors are `{"errors": [{"field", "message"}]}`."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

import orjson
from sqlmodel import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from watcher.inputs import InputError, moment, whole_number
from watcher.jsontext import parse_json
from watcher.model import ChangeKind
from watcher.store.dashboard import ChangeFilter, changes_page, watch_summaries, watch_summary
from watcher.store.models import WatchRow
from watcher.store.people import Person
from watcher.store.watches import WatchNameTaken, archive_watch, create_watch, get_watch_row, update_watch
from watcher.watch import NCT_ID, WatchConfig, name_problem
from watcher.web.auth import Forbidden, context_of, in_db, require_api_user
from watcher.web.previews import preview_for
from watcher.web.routes_watches import any_name_route, managed_in_file, name_param
from watcher.web.watch_data import (
    FieldError,
    WatchInvalid,
    may_edit,
    validate_preview,
    validate_watch,
    with_stored_secrets,
)
from watcher.web.watch_data import watch_json as w_json

MAX_LIMIT = 500
MAX_CURSOR = 200  # characters; the cursors given out are about 60
DEFAULT_LIMIT = 100
# W's fields the server keeps: ignored in a POST or PUT body, so a W read with GET can be sent back.
READ_ONLY = (
    "source",
    "owner",
    "last_poll_at",
    "last_success_at",
    "failing_since",
    "last_error",
    "studies",
    "changes_7d",
)


def invalid(errors: list[FieldError], status: int = 422) -> JSONResponse:
    return JSONResponse({"errors": [error.as_json() for error in errors]}, status_code=status)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body() or b"null"
    try:
        body = parse_json(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WatchInvalid([FieldError("body", f"not JSON: {exc}")]) from exc
    if not isinstance(body, dict):
        raise WatchInvalid([FieldError("body", "expected a JSON object")])
    if b"\\u0000" in raw:  # parse_json drops NUL; a field that held one is refused, not changed
        _refuse_nul(raw)
    return body


def _refuse_nul(raw: bytes) -> None:
    """422 for the fields of a JSON object that hold NUL (a name: the name rule's own words)."""
    try:
        strict = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return  # what orjson refuses was cleaned by parse_json: nothing to say of NUL
    held = [key for key, value in strict.items() if b"\\u0000" in orjson.dumps(value)]
    if "name" in held and isinstance(strict["name"], str):
        problem = name_problem(strict["name"])
        if problem:
            raise WatchInvalid([FieldError("name", problem)])
    if held:
        raise WatchInvalid([FieldError(key, "holds a NUL character (U+0000), which no text may hold") for key in held])


async def watch_body(request: Request) -> dict[str, Any]:
    """The editable fields of a watch from the body (W's read-only fields dropped)."""
    return {key: value for key, value in (await json_body(request)).items() if key not in READ_ONLY}


async def list_watches(request: Request) -> Response:
    await require_api_user(request)
    now = context_of(request).now()
    summaries = await in_db(request, lambda session: watch_summaries(session=session, now=now))
    return JSONResponse({"watches": [w_json(summary) for summary in summaries]})


async def get_watch(request: Request) -> Response:
    await require_api_user(request)
    name, now = name_param(request), context_of(request).now()
    summary = await in_db(request, lambda session: watch_summary(session=session, name=name, now=now))
    if summary is None:
        raise HTTPException(404, f"no watch named {name!r}")
    return JSONResponse(w_json(summary))


async def post_watch(request: Request) -> Response:
    user = await require_api_user(request)
    try:
        watch = validate_watch(await watch_body(request))
    except WatchInvalid as exc:
        return invalid(exc.errors)
    now = context_of(request).now()

    def create(session: Session) -> dict[str, Any]:
        create_watch(session=session, watch=watch, owner=user.email, now=now)
        session.flush()
        summary = watch_summary(session=session, name=watch.name, now=now)
        assert summary is not None
        return w_json(summary)

    try:
        return JSONResponse(await in_db(request, create), status_code=201)
    except WatchNameTaken as exc:
        return invalid([FieldError("name", str(exc))], status=409)


async def _editable_row(request: Request, user: Person, name: str) -> WatchRow:
    row = await in_db(request, lambda session: get_watch_row(session=session, name=name))
    if row is None or row.archived_at is not None:
        raise HTTPException(404, f"no watch named {name!r}")
    if row.source != "web":
        raise Forbidden(managed_in_file(request, name))
    if not may_edit(user, row):
        raise Forbidden(f"watch {name!r} was created by {row.owner}; only they or an admin may change it")
    return row


async def put_watch(request: Request) -> Response:
    user = await require_api_user(request)
    name = name_param(request)
    row = await _editable_row(request, user, name)
    try:
        watch = validate_watch(with_stored_secrets({"name": name, **await watch_body(request)}, row.definition))
    except WatchInvalid as exc:
        return invalid(exc.errors)
    now = context_of(request).now()

    def replace(session: Session) -> dict[str, Any]:
        update_watch(session=session, name=name, watch=watch, actor=user.email, now=now)
        session.flush()
        summary = watch_summary(session=session, name=watch.name, now=now)
        assert summary is not None
        return w_json(summary)

    try:
        return JSONResponse(await in_db(request, replace))
    except WatchNameTaken as exc:
        return invalid([FieldError("name", str(exc))], status=409)


async def delete_watch(request: Request) -> Response:
    user = await require_api_user(request)
    name, now = name_param(request), context_of(request).now()
    await _editable_row(request, user, name)
    await in_db(request, lambda session: archive_watch(session=session, name=name, actor=user.email, now=now))
    return Response(status_code=204)


async def preview(request: Request) -> Response:
    user = await require_api_user(request)
    try:
        watch: WatchConfig = validate_preview(await json_body(request))
    except WatchInvalid as exc:
        return invalid(exc.errors)
    result = await preview_for(request, user, watch)
    if result.error:
        return JSONResponse({"error": f"the registry could not be asked: {result.error}"}, status_code=502)
    return JSONResponse(result.as_json())


def encode_cursor(cursor: tuple[datetime, int]) -> str:
    raw = json.dumps([cursor[0].isoformat(), cursor[1]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, int]:
    """[ISO time, change id] as base64 JSON (what `encode_cursor` gave out); ValueError else."""
    try:
        if len(text) > MAX_CURSOR:
            raise ValueError(text)
        at, change_id = parse_json(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(at, str) or type(change_id) is not int:
            raise ValueError(text)
        return moment(at, name="cursor"), whole_number(str(change_id), name="cursor")
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ValueError("not a cursor this API gave out") from exc


def change_query(params: Any) -> tuple[ChangeFilter, int, tuple[datetime, int] | None, list[FieldError]]:
    errors: list[FieldError] = []
    moments: dict[str, datetime | None] = {"since": None, "until": None}
    for key in moments:
        if params.get(key):
            try:
                moments[key] = moment(params[key], name=key)
            except InputError as exc:
                errors.append(FieldError(key, str(exc).removeprefix(f"{key}: ")))
    kind = params.get("kind") or None
    if kind is not None and kind not in {str(k) for k in ChangeKind}:
        errors.append(FieldError("kind", f"unknown kind {kind!r}: one of {', '.join(str(k) for k in ChangeKind)}"))
    nct_id = (params.get("nct_id") or "").strip().upper() or None
    if nct_id is not None and not NCT_ID.match(nct_id):
        errors.append(FieldError("nct_id", f"not an NCT id: {nct_id!r}"))
    limit = DEFAULT_LIMIT
    try:
        limit = whole_number(params.get("limit") or str(DEFAULT_LIMIT), name="limit", low=1, high=MAX_LIMIT)
    except InputError:
        errors.append(FieldError("limit", f"expected a whole number from 1 to {MAX_LIMIT}"))
    cursor = None
    if params.get("cursor"):
        try:
            cursor = decode_cursor(params["cursor"])
        except ValueError as exc:
            errors.append(FieldError("cursor", str(exc)))
    held_back = params.get("held_back", "") in ("1", "true")  # like `changes --all`
    filters = ChangeFilter(params.get("watch") or None, kind, nct_id, moments["since"], moments["until"], held_back)
    return filters, limit, cursor, errors


async def list_changes(request: Request) -> Response:
    await require_api_user(request)
    filters, limit, cursor, errors = change_query(request.query_params)
    if errors:
        return invalid(errors)
    records, following = await in_db(
        request, lambda session: changes_page(session=session, filters=filters, limit=limit, after=cursor)
    )
    return JSONResponse(
        {
            "changes": [record.as_json() for record in records],
            "next_cursor": encode_cursor(following) if following else None,
        }
    )


routes: list[BaseRoute] = [
    Route("/api/v1/watches", list_watches, methods=["GET"]),
    Route("/api/v1/watches", post_watch, methods=["POST"]),
    any_name_route("/api/v1/watches/{name:path}", get_watch, "GET"),
    any_name_route("/api/v1/watches/{name:path}", put_watch, "PUT"),
    any_name_route("/api/v1/watches/{name:path}", delete_watch, "DELETE"),
    Route("/api/v1/preview", preview, methods=["POST"]),
    Route("/api/v1/changes", list_changes, methods=["GET"]),
]
