"""The JSON API under /api/v1 (bearer tokens)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from watcher.store.watches import watch_rows
from watcher.web.auth import in_db, require_api_user


async def list_watches(request: Request) -> Response:
    await require_api_user(request)
    rows = await in_db(request, lambda session: watch_rows(session=session))
    return JSONResponse({"watches": [{"name": row.name, "source": row.source} for row in rows]})


routes: list[BaseRoute] = [Route("/api/v1/watches", list_watches, methods=["GET"])]
