"""A watch's landscape: `/watches/<name>/studies` (every study it holds in one table, 100 a page,
with a timeline chart above), its exports `/watches/<name>/studies.csv` and `.xlsx` and its JSON
twin `/api/v1/watches/<name>/studies` (keyset pages). All four read `registry.landscape.landscape`
with the same filters from the same query parameters (registry.landscape_query).

These routes come before the watch pages' `/watches/{name:path}` in app.ROUTE_GROUPS, which would
otherwise take `/watches/<name>/studies` for a watch named "<name>/studies".
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup
from sqlmodel import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from watcher.inputs import InputError, whole_number
from watcher.model import humanize_status
from watcher.registry.landscape import landscape
from watcher.registry.landscape_export import csv_chunks, row_json, write_xlsx
from watcher.registry.landscape_query import (
    INTERVENTION_TYPES,
    LandscapeFilter,
    ParsedView,
    decode_cursor,
    page_after,
    parse_view,
    select_rows,
)
from watcher.registry.landscape_row import LandscapeRow
from watcher.store.watches import get_watch_row
from watcher.web.auth import context_of, in_db, require_api_user, require_user
from watcher.web.landscape_chart import chart_order, timeline_chart
from watcher.web.render import render
from watcher.web.routes_watches import name_param, watch_path

PAGE_SIZE = 100
CHART_BARS = 200  # the chart draws the first 200 by primary completion; the filters narrow it
API_LIMIT, MAX_API_LIMIT = 100, 500
MAX_PAGE = 10_000
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _view(request: Request) -> ParsedView:
    params = request.query_params
    return parse_view(params, params.getlist)


def _rows(request: Request, name: str, filters: LandscapeFilter) -> Any:
    """Every study of the watch, unfiltered (the page offers their values as choices), or None
    when there is no such watch."""
    now = context_of(request).now()
    unfiltered = LandscapeFilter(left=filters.left, sort=filters.sort, descending=filters.descending)

    def load(session: Session) -> list[LandscapeRow] | None:
        if get_watch_row(session=session, name=name) is None:
            return None
        return landscape(session=session, watch=name, filters=unfiltered, now=now)

    return in_db(request, load)


async def _selected(request: Request, view: ParsedView) -> tuple[str, list[LandscapeRow], list[LandscapeRow]]:
    name = name_param(request)
    every = await _rows(request, name, view.filters)
    if every is None:
        raise HTTPException(404, f"There is no watch named {name!r}.")
    return name, every, select_rows(every, view.filters)


def _phase_label(code: str) -> str:
    return "n/a" if code == "NA" else code.replace("EARLY_PHASE", "Early phase ").replace("PHASE", "Phase ")


@dataclass(frozen=True)
class Choices:
    """What the filter form offers, as (value, label): the values the watch's studies have."""

    statuses: list[tuple[str, str]]
    phases: list[tuple[str, str]]
    intervention_types: list[tuple[str, str]]
    countries: list[tuple[str, str]]

    @classmethod
    def of(cls, rows: list[LandscapeRow], filters: LandscapeFilter) -> Choices:
        statuses = sorted({r.status for r in rows} | set(filters.statuses))
        phases = sorted({p for r in rows for p in (r.phases or ("NA",))} | set(filters.phases))
        types = {t for r in rows for t in r.intervention_types} | set(filters.intervention_types)
        countries = sorted({c for r in rows for c in r.countries} | set(filters.countries), key=str.casefold)
        return cls(
            statuses=[(s, humanize_status(s)) for s in statuses],
            phases=[(p, _phase_label(p)) for p in phases],
            intervention_types=[(t, t.replace("_", " ").capitalize()) for t in INTERVENTION_TYPES if t in types],
            countries=[(c, c) for c in countries],
        )


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "").strip() or "1"
    try:
        return whole_number(raw, name="page", low=1, high=MAX_PAGE)
    except InputError:
        raise HTTPException(400, f"page={raw[:20]!r}: a page is a number from 1 to {MAX_PAGE}.") from None


async def landscape_page(request: Request) -> Response:
    await require_user(request)
    view, page = _view(request), _page_number(request)
    name, every, rows = await _selected(request, view)
    context = page_context(name, every, rows, view, page, context_of(request).now().date())
    return render(request, "landscape.html", context, status_code=400 if view.errors else 200)


def page_context(name: str, every: list[LandscapeRow], rows: list[LandscapeRow], view: ParsedView, page: int,
                 today: date) -> dict[str, Any]:  # fmt: skip
    """What landscape.html shows: page `page` of `rows` (those `view` keeps among `every`), the
    chart of the first CHART_BARS by primary completion, the choices of the filter form."""
    rows = [] if view.errors else rows
    path = watch_path(name) + "/studies"
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    page = min(page, pages)
    drawn = chart_order(rows)[:CHART_BARS]
    chart = timeline_chart(drawn, today, title=f"Timeline of {len(drawn)} studies of {name}, by primary completion")
    return {
        "name": name, "watch_link": watch_path(name), "studies_path": path, "filters": view.filters,
        "errors": view.errors, "rows": rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], "total": len(rows),
        "held": len(every), "page": page, "pages": pages, "first_shown": (page - 1) * PAGE_SIZE + 1,
        "choices": Choices.of(every, view.filters), "chart": Markup(chart), "charted": len(drawn),
        "csv_link": view.filters.link(path + ".csv"), "xlsx_link": view.filters.link(path + ".xlsx"),
        "page_link": lambda n: view.filters.link(path, page=str(n) if n > 1 else ""),
    }  # fmt: skip


def _checked(view: ParsedView) -> None:
    if view.errors:
        raise HTTPException(400, "; ".join(f"{key}: {message}" for key, message in view.errors.items()))


def _file_name(name: str, extension: str, request: Request) -> str:
    """attachment; filename= an ASCII name, filename*= the watch's own (RFC 6266)."""
    day = context_of(request).now().strftime("%Y-%m-%d")
    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "watch"
    full = f"{name}-studies-{day}.{extension}"
    return f"attachment; filename=\"{ascii_name}-studies-{day}.{extension}\"; filename*=UTF-8''{quote(full, safe='')}"


async def landscape_csv(request: Request) -> Response:
    await require_user(request)
    view = _view(request)
    _checked(view)
    name, _every, rows = await _selected(request, view)
    headers = {"Content-Disposition": _file_name(name, "csv", request)}
    return StreamingResponse(csv_chunks(rows), media_type="text/csv; charset=utf-8", headers=headers)


async def landscape_xlsx(request: Request) -> Response:
    await require_user(request)
    view = _view(request)
    _checked(view)
    name, _every, rows = await _selected(request, view)
    handle, written = tempfile.mkstemp(prefix="trialwatch-", suffix=".xlsx")
    os.close(handle)
    path = Path(written)
    try:
        await run_in_threadpool(write_xlsx, rows, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return FileResponse(path, media_type=XLSX_TYPE, headers={"Content-Disposition": _file_name(name, "xlsx", request)},
                        background=BackgroundTask(path.unlink, missing_ok=True))  # fmt: skip


def _api_limit(request: Request) -> int:
    return _number(request.query_params.get("limit", "").strip() or str(API_LIMIT), "limit", MAX_API_LIMIT)


def _number(raw: str, name: str, high: int) -> int:
    """A whole number in ASCII digits from 1 to `high` (watcher.inputs), else 400."""
    try:
        return whole_number(raw, name=name, low=1, high=high)
    except InputError as exc:
        raise HTTPException(400, str(exc)) from None


async def landscape_api(request: Request) -> Response:
    await require_api_user(request)
    view, limit = _view(request), _api_limit(request)
    _checked(view)
    after = None
    if request.query_params.get("cursor"):
        try:
            after = decode_cursor(request.query_params["cursor"], view.filters)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
    name, _every, rows = await _selected(request, view)
    page, cursor = page_after(rows, view.filters, after, limit)
    body = {"watch": name, "total": len(rows), "studies": [row_json(row) for row in page], "next_cursor": cursor}
    return JSONResponse(body)


routes: list[BaseRoute] = [
    Route("/watches/{name:path}/studies", landscape_page, methods=["GET"]),
    Route("/watches/{name:path}/studies.csv", landscape_csv, methods=["GET"]),
    Route("/watches/{name:path}/studies.xlsx", landscape_xlsx, methods=["GET"]),
    Route("/api/v1/watches/{name:path}/studies", landscape_api, methods=["GET"]),
]
