"""`GET /calendar/<watch name>.ics?token=<API token>`: the dates of a watch's studies (primary
completion, completion, results due) as an iCalendar feed for calendar apps, which cannot sign in
(hence the token in the address, as for Atom). A missing, wrong or revoked token, or a watch that
does not exist: 404, the same answer, so the address reveals nothing."""

from __future__ import annotations

from sqlmodel import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from watcher.milestones import DateEvent, date_events
from watcher.store import milestones, people
from watcher.store.watches import get_watch_row
from watcher.web.auth import context_of, in_db
from watcher.web.calendar_ics import render_calendar

NOT_FOUND = "There is no calendar here."
MAX_FILENAME, MAX_TOKEN = 300, 200


async def calendar_feed(request: Request) -> Response:
    filename = str(request.path_params["filename"])
    token = request.query_params.get("token", "").strip()
    if (
        not filename.endswith(".ics")
        or not token
        or len(filename) > MAX_FILENAME
        or len(token) > MAX_TOKEN
        or "\x00" in filename
    ):
        raise HTTPException(404, NOT_FOUND)
    watch = filename.removesuffix(".ics")
    context = context_of(request)
    now = context.now()
    config = context.config()

    def load(session: Session) -> tuple[list[DateEvent], dict[tuple[str, str], int]] | None:
        if people.user_for_token(session=session, token=token, now=now) is None:
            return None
        if get_watch_row(session=session, name=watch) is None:
            return None
        held = milestones.held_studies(session=session, watch=watch)
        soon = config.milestones.due_soon_days
        events = [event for study in held for event in date_events(study.facts, now.date(), soon)]
        return events, milestones.sequences(session=session, events=events)

    found = await in_db(request, load)
    if found is None:
        raise HTTPException(404, NOT_FOUND)
    events, sequences = found
    public_url = config.server.public_url or str(request.base_url)
    body = render_calendar(watch=watch, events=events, sequences=sequences, public_url=public_url, generated_at=now)
    return Response(body, media_type="text/calendar; charset=utf-8")


routes: list[BaseRoute] = [Route("/calendar/{filename}", calendar_feed, methods=["GET"])]
