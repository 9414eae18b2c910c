"""The dashboard: every watch with its words, recipients, schedule, studies held, changes in the
last 7 days, last successful poll, failing since and last error."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from watcher.store.dashboard import watch_summaries
from watcher.web.auth import context_of, in_db, require_user
from watcher.web.render import render


async def dashboard(request: Request) -> Response:
    await require_user(request)
    now = context_of(request).now()
    summaries = await in_db(request, lambda session: watch_summaries(session=session, now=now))
    return render(request, "dashboard.html", {"watches": summaries, "deleted": request.query_params.get("deleted")})


routes: list[BaseRoute] = [Route("/", dashboard, methods=["GET"])]
