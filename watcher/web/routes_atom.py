"""`GET /atom/<watch name>.atom?token=<API token>`: a watch's latest 100 changes as Atom 1.0, for
feed readers (which cannot sign in, hence the token in the address). A missing, wrong or revoked
token, or a watch that does not exist: 404, the same answer, so the address reveals nothing."""

from __future__ import annotations

from sqlmodel import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from watcher.model import ChangeRecord
from watcher.store import people, timeline
from watcher.store.watches import get_watch_row
from watcher.web.atom import render_atom
from watcher.web.auth import context_of, in_db

FEED_SIZE = 100
NOT_FOUND = "There is no feed here."


async def atom_feed(request: Request) -> Response:
    filename = str(request.path_params["filename"])
    token = request.query_params.get("token", "").strip()
    if not filename.endswith(".atom") or not token:
        raise HTTPException(404, NOT_FOUND)
    watch = filename.removesuffix(".atom")
    context = context_of(request)
    now = context.now()

    def load(session: Session) -> list[ChangeRecord] | None:
        if people.user_for_token(session=session, token=token, now=now) is None:
            return None
        if get_watch_row(session=session, name=watch) is None:
            return None
        return timeline.latest_changes(session=session, watch=watch, limit=FEED_SIZE)

    changes = await in_db(request, load)
    if changes is None:
        raise HTTPException(404, NOT_FOUND)
    config = context.config()
    public_url = config.server.public_url or str(request.base_url)
    body = render_atom(watch=watch, changes=changes, public_url=public_url, generated_at=now)
    return Response(body, media_type="application/atom+xml; charset=utf-8")


# `path`: a watch whose name has a "/" has a feed too (its link quotes it as %2F)
routes: list[BaseRoute] = [Route("/atom/{filename:path}", atom_feed, methods=["GET"])]
