"""The dashboard: every watch with its words, recipients, schedule and health."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from watcher.store.watches import watch_rows
from watcher.web.auth import in_db, require_user
from watcher.web.render import render


async def dashboard(request: Request) -> Response:
    await require_user(request)
    rows = await in_db(request, lambda session: watch_rows(session=session))
    return render(request, "dashboard.html", {"watches": rows})


routes: list[BaseRoute] = [Route("/", dashboard, methods=["GET"])]
