"""The changes timeline (`/changes`), new articles and publications (`/articles`) and the health of
every source (`/sources`). Every filter is a query parameter, so a filtered view is a bookmark;
pages are keyset-paged (store.timeline), 50 a page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from watcher.channels import address as channel_address
from watcher.channels import masked
from watcher.model import ChangeKind, ChangeRecord
from watcher.store import timeline
from watcher.store.backfill import progress as backfill_progress
from watcher.store.sources import channel_rows, source_rows
from watcher.store.watches import watch_rows
from watcher.web.auth import context_of, in_db, require_user
from watcher.web.render import render
from watcher.web.timeline_query import KIND_LABELS, TYPE_LABELS, TimelineQuery, http_url, parse_query

ARTICLE_KINDS = (str(ChangeKind.PUBLICATION), str(ChangeKind.NEW_ARTICLE))


@dataclass(frozen=True)
class ChangeRow:
    """One change as a timeline row shows it."""

    change: ChangeRecord
    kind_label: str
    study_path: str | None
    journal: str | None
    article_url: str | None
    why: str | None
    named: tuple[tuple[str, str], ...]  # (NCT id, its page) for the trials an article names
    published: str | None
    item_label: str | None = None  # "Meeting abstract 4068, J Clin Oncol 39 (15_suppl), 2021" (#20)
    type_label: str | None = None  # "meeting abstract", "preprint"; None for a plain article

    @classmethod
    def of(cls, change: ChangeRecord) -> ChangeRow:
        details = change.details if change.is_article else {}
        named = details.get("nct_ids") or []
        return cls(
            change=change,
            kind_label=KIND_LABELS.get(str(change.kind), str(change.kind)),
            study_path=study_path(change.nct_id) if change.nct_id else None,
            journal=details.get("feed") if isinstance(details.get("feed"), str) else None,
            article_url=http_url(details.get("link")),
            why=details.get("why") if isinstance(details.get("why"), str) else None,
            named=tuple((n, study_path(n)) for n in named if isinstance(n, str)),
            published=str(details.get("published"))[:10] if details.get("published") else None,
            item_label=details.get("label") if isinstance(details.get("label"), str) else None,
            type_label=TYPE_LABELS.get(change.item_type)
            if change.is_article and change.item_type != "article"
            else None,
        )


def study_path(nct_id: str) -> str:
    return f"/studies/{quote(nct_id, safe='')}"


def _query(request: Request, allowed_kinds: tuple[str, ...] = ()) -> TimelineQuery:
    params = {
        key: request.query_params.get(key, "")
        for key in ("watch", "nct_id", "since", "until", "q", "cursor", "held_back")
    }
    types = request.query_params.getlist("type") if allowed_kinds else []
    return parse_query(params, request.query_params.getlist("kind"), allowed_kinds=allowed_kinds, types=types)


def _page(session: Session, query: TimelineQuery, kinds: tuple[str, ...] = ()) -> dict[str, Any]:
    watches = [row.name for row in watch_rows(session=session, include_archived=True)]
    if query.errors:
        return {"rows": [], "next_cursor": None, "watches": watches}
    page = timeline.change_page(session=session, filters=query.filters(kinds=kinds), after=query.cursor)
    return {"rows": [ChangeRow.of(c) for c in page.changes], "next_cursor": page.next_cursor, "watches": watches}


async def changes_page(request: Request) -> Response:
    await require_user(request)
    query = _query(request)
    data = await in_db(request, lambda session: _page(session, query))
    return _render_timeline(request, "changes.html", query, data, "/changes")


async def articles_page(request: Request) -> Response:
    await require_user(request)
    query = _query(request, allowed_kinds=ARTICLE_KINDS)
    data = await in_db(request, lambda session: _page(session, query, ARTICLE_KINDS))
    return _render_timeline(request, "articles.html", query, data, "/articles")


def _render_timeline(
    request: Request, template: str, query: TimelineQuery, data: dict[str, Any], path: str
) -> Response:
    next_cursor = data["next_cursor"]
    context = {
        **data,
        "query": query,
        "kinds": KIND_LABELS if path == "/changes" else {k: KIND_LABELS[k] for k in ARTICLE_KINDS},
        "types": TYPE_LABELS if path == "/articles" else None,
        "next_link": query.link(path, next_cursor) if next_cursor else None,
        "first_link": query.link(path) if query.cursor else None,
        "atom_path": f"{_public_base(request)}/atom/{quote(query.watch, safe='')}.atom" if query.watch else None,
    }
    return render(request, template, context, status_code=400 if query.errors else 200)


def _public_base(request: Request) -> str:
    """The base of links given out: `[server] public_url`, else the address this request came to."""
    return (context_of(request).config().server.public_url or str(request.base_url)).rstrip("/")


def channels_of(rows: list[Any]) -> dict[str, tuple[str, list[str]]]:
    """Outbox address -> (the URL masked, the watches that send to it), for every active watch."""
    found: dict[str, tuple[str, list[str]]] = {}
    for row in rows:
        for url in row.definition.get("notify") or []:
            found.setdefault(channel_address(str(url)), (masked(str(url)), []))[1].append(row.name)
    return found


async def sources_page(request: Request) -> Response:
    await require_user(request)
    config = context_of(request).config()

    def load(session: Session) -> dict[str, Any]:
        rows = watch_rows(session=session)
        sources = source_rows(session=session, config=config, watches=[row.name for row in rows])
        history = backfill_progress(session=session) if config.clinicaltrials.history else None
        return {"sources": sources + channel_rows(session=session, channels=channels_of(rows)), "history": history}

    data = await in_db(request, load)
    return render(request, "sources.html", {**data, "now": context_of(request).now()})


routes: list[BaseRoute] = [
    Route("/changes", changes_page, methods=["GET"]),
    Route("/articles", articles_page, methods=["GET"]),
    Route("/sources", sources_page, methods=["GET"]),
]
