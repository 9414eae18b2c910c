"""The dashboard: every watch with its words, recipients, schedule, studies held, changes in the
last 7 days, last successful poll, failing since and last error; and its studies' results overdue."""

from __future__ import annotations

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from watcher.store.dashboard import WatchSummary, watch_summaries
from watcher.store.milestones import due_counts
from watcher.web.auth import context_of, in_db, require_user
from watcher.web.render import render


async def dashboard(request: Request) -> Response:
    await require_user(request)
    now = context_of(request).now()
    soon = context_of(request).config().milestones.due_soon_days

    def load(session: Session) -> tuple[list[WatchSummary], dict[str, dict[str, int]]]:
        summaries = watch_summaries(session=session, now=now)
        names = [summary.name for summary in summaries]
        return summaries, due_counts(session=session, watches=names, today=now.date(), due_soon_days=soon)

    summaries, due = await in_db(request, load)
    context = {"watches": summaries, "due_by_watch": due, "deleted": request.query_params.get("deleted")}
    return render(request, "dashboard.html", context)


routes: list[BaseRoute] = [Route("/", dashboard, methods=["GET"])]
