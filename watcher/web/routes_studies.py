"""A study's page (`/studies/<NCT id>`): the record now, its stored versions and what changed
between them, a chart of its dates and enrollment, its sites, the articles that name it; the diff
between any two stored versions (`/studies/<NCT id>/diff?from=&to=`); and their JSON twins under
/api/v1, built from the same queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup
from sqlmodel import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from watcher.inputs import InputError, whole_number
from watcher.milestones import DueFacts, Verdict, judge_due
from watcher.model import CTGOV_HISTORY_URL, CTGOV_STUDY_URL, FieldChange, Source, compare_link
from watcher.registry.studies import StudyView, VersionDiff, VersionView, side_by_side, study_view, version_diff
from watcher.store import milestones, timeline
from watcher.store.backfill import backfill_state
from watcher.store.models import HistoryBackfill
from watcher.store.timeline import ChangeFilter
from watcher.web.auth import context_of, in_db, require_api_user, require_user
from watcher.web.charts import NARROW, study_charts
from watcher.web.render import render
from watcher.web.routes_timeline import ChangeRow, study_path
from watcher.web.timeline_query import KIND_LABELS, NCT_ID, http_url

RECENT_CHANGES = 20  # on the page; the API gives up to API_CHANGES
API_CHANGES = 100


def _nct_id(request: Request) -> str:
    nct_id = str(request.path_params["nct_id"]).upper()
    if not NCT_ID.match(nct_id):
        raise HTTPException(404, "An NCT id is NCT followed by 8 digits, e.g. NCT05805501.")
    return nct_id


def _ignore(request: Request) -> Sequence[str]:
    return list(context_of(request).config().clinicaltrials.ignore_fields)


def _load_study(
    session: Session, nct_id: str, ignore: Sequence[str], recent_changes: int = RECENT_CHANGES
) -> dict[str, Any] | None:
    view = study_view(session=session, nct_id=nct_id, ignore=ignore)
    if view is None:
        return None
    recent = timeline.change_page(session=session, filters=ChangeFilter(nct_id=nct_id), limit=recent_changes)
    articles = timeline.articles_naming(session=session, nct_id=nct_id)
    facts = milestones.study_facts(session=session, nct_id=nct_id)  # US results reporting (#23)
    history = backfill_state(session=session, nct_id=nct_id)
    return {"view": view, "recent": recent, "articles": articles, "facts": facts, "history": history_json(history)}


def history_json(state: HistoryBackfill | None) -> dict[str, Any]:
    """The backfill of a study from the registry's version history, as the page and API say it."""
    if state is None:
        return {"status": "pending", "versions": 0, "newest": None, "last_error": None, "next_attempt_at": None}
    retry = state.next_attempt_at.isoformat() if state.next_attempt_at and state.status == "failing" else None
    error = state.last_error if state.status == "failing" else None
    return {"status": state.status, "versions": state.versions, "newest": state.newest, "last_error": error,
            "next_attempt_at": retry}  # fmt: skip


def version_links(nct_id: str, versions: Sequence[VersionView]) -> dict[int, tuple[str, str]]:
    """Each version's comparison with the one before on ClinicalTrials.gov (both numbers known)."""
    links = {}
    for before, after in zip(versions, versions[1:], strict=False):
        pair = (before.meta.registry_version, after.meta.registry_version)
        if pair[0] is not None and pair[1] is not None and pair[0] < pair[1]:
            links[after.meta.id] = compare_link(nct_id, (pair[0], pair[1]))
    return links


def _not_stored(nct_id: str) -> HTTPException:
    return HTTPException(404, f"{nct_id} is not stored: no watch has matched it yet.")


async def study_page(request: Request) -> Response:
    await require_user(request)
    nct_id, ignore = _nct_id(request), _ignore(request)
    data = await in_db(request, lambda session: _load_study(session, nct_id, ignore))
    if data is None:
        raise _not_stored(nct_id)
    view: StudyView = data["view"]
    wide, narrow = study_charts(view.versions), study_charts(view.versions, width=NARROW)
    context = {
        "history": data["history"] if context_of(request).config().clinicaltrials.history else None,
        "compare_links": version_links(nct_id, view.versions),
        "view": view,
        "study": view.study,
        "registry_url": CTGOV_STUDY_URL.format(nct_id=nct_id),
        "history_url": CTGOV_HISTORY_URL.format(nct_id=nct_id),
        "versions": list(reversed(view.versions)),  # newest first
        # built with xml.etree: every label escaped (web.charts); a phone gets the narrow drawing
        "charts": [(Markup(w), Markup(n)) for w, n in zip(wide, narrow, strict=True)],
        "kind_labels": KIND_LABELS,
        "recent": [ChangeRow.of(c) for c in data["recent"].changes],
        "more_changes": data["recent"].next_cursor is not None,
        "article_groups": article_groups(data["articles"]),
        "sites_now": sum(1 for s in view.sites if s.removed_at is None),
        "path_of": study_path,
        "due_verdict": _due_verdict(request, data["facts"]),
    }
    return render(request, "study.html", context)


def _due_verdict(request: Request, facts: DueFacts | None) -> Verdict | None:
    context = context_of(request)
    soon = context.config().milestones.due_soon_days
    return judge_due(facts, context.now().date(), soon) if facts is not None else None


def _versions_asked(request: Request) -> tuple[int | None, int | None]:
    values = []
    for name in ("from", "to"):
        raw = request.query_params.get(name, "").strip()
        try:
            values.append(whole_number(raw, name=name) if raw else None)
        except InputError as exc:
            raise HTTPException(400, f"{exc}: a version is the number the study page links to.") from exc
    return values[0], values[1]


def _load_diff(session: Session, nct_id: str, asked: tuple[int | None, int | None], ignore: Sequence[str]) -> Any:
    versions = timeline.version_list(session=session, nct_id=nct_id)
    if not versions:
        return None
    from_id = asked[0] if asked[0] is not None else versions[max(len(versions) - 2, 0)].id
    to_id = asked[1] if asked[1] is not None else versions[-1].id
    diff = version_diff(session=session, nct_id=nct_id, from_id=from_id, to_id=to_id, ignore=ignore)
    title = timeline.get_study(session=session, nct_id=nct_id)
    return {"diff": diff, "versions": versions, "title": title.title if title else nct_id}


async def study_diff_page(request: Request) -> Response:
    await require_user(request)
    nct_id, ignore, asked = _nct_id(request), _ignore(request), _versions_asked(request)
    data = await in_db(request, lambda session: _load_diff(session, nct_id, asked, ignore))
    if data is None:
        raise _not_stored(nct_id)
    diff: VersionDiff | None = data["diff"]
    if diff is None:
        raise HTTPException(404, f"Those are not two stored versions of {nct_id}.")
    rows = [
        (change, KIND_LABELS.get(str(change.kind), str(change.kind)), side_by_side(change)) for change in diff.changes
    ]
    context = {"diff": diff, "versions": data["versions"], "title": data["title"], "rows": rows,
               "study_link": study_path(nct_id)}  # fmt: skip
    return render(request, "study_diff.html", context)


def change_json(change: FieldChange, nct_id: str, title: str, diff: VersionDiff) -> dict[str, Any]:
    """A change between two versions in the `changes --json` shape (no id or watch: not stored)."""
    return {
        "id": None, "watch": None, "kind": str(change.kind), "source": str(Source.CLINICALTRIALS),
        "nct_id": nct_id, "title": title, "summary": change.summary, "details": change.details,
        "detected_at": diff.new.seen_at.isoformat(), "url": CTGOV_STUDY_URL.format(nct_id=nct_id),
        "from_version": diff.old.id, "to_version": diff.new.id,
    }  # fmt: skip


ARTICLE_GROUPS = (("meeting_abstract", "Meeting abstracts"), ("preprint", "Preprints"), ("article", "Articles"))


def article_groups(rows: Sequence[Any]) -> list[tuple[str, list[tuple[Any, str | None]]]]:
    """The articles that name a study by what they are, meeting abstracts first (#20); empty
    groups left out."""
    groups = [(heading, [(a, http_url(a.link)) for a in rows if (a.item_type or "article") == kind])
              for kind, heading in ARTICLE_GROUPS]  # fmt: skip
    return [(heading, items) for heading, items in groups if items]


async def study_api(request: Request) -> Response:
    await require_api_user(request)
    nct_id, ignore = _nct_id(request), _ignore(request)
    data = await in_db(request, lambda session: _load_study(session, nct_id, ignore, API_CHANGES))
    if data is None:
        raise _not_stored(nct_id)
    view: StudyView = data["view"]
    links = version_links(nct_id, view.versions)
    versions = [
        {"id": v.meta.id, "number": v.meta.number, "stored_at": v.meta.seen_at.isoformat(),
         "last_update_posted": v.meta.last_update_posted, "registry_version": v.meta.registry_version,
         "registry_date": v.meta.registry_date, "from_history": v.meta.from_history,
         "compare_url": links[v.meta.id][0] if v.meta.id in links else None,
         "changes": [{"kind": str(c.kind), "summary": c.summary, "details": c.details} for c in v.changes]}
        for v in view.versions
    ]  # fmt: skip
    body = {
        "nct_id": nct_id, "title": view.study.title, "status": view.study.status, "phase": view.study.phase_label,
        "sponsor": view.sponsor, "url": CTGOV_STUDY_URL.format(nct_id=nct_id), "versions": versions,
        "changes": [c.as_json() for c in data["recent"].changes],
        "articles": [
            {"title": a.title, "item_type": a.item_type, "doi": a.doi, "pmid": a.pmid, "link": http_url(a.link),
             "first_found_in": a.feed, "first_seen_at": a.first_seen_at.isoformat()}
            for a in data["articles"]
        ],
        "history": data["history"],
    }  # fmt: skip
    return JSONResponse(body)


async def study_diff_api(request: Request) -> Response:
    await require_api_user(request)
    nct_id, ignore, asked = _nct_id(request), _ignore(request), _versions_asked(request)
    if asked[0] is None or asked[1] is None:
        raise HTTPException(400, "give both versions: ?from=<version id>&to=<version id>")
    data = await in_db(request, lambda session: _load_diff(session, nct_id, asked, ignore))
    if data is None:
        raise _not_stored(nct_id)
    diff: VersionDiff | None = data["diff"]
    if diff is None:
        raise HTTPException(404, f"those are not two stored versions of {nct_id}")
    return JSONResponse({"changes": [change_json(c, nct_id, data["title"], diff) for c in diff.changes]})


routes: list[BaseRoute] = [
    Route("/studies/{nct_id}", study_page, methods=["GET"]),
    Route("/studies/{nct_id}/diff", study_diff_page, methods=["GET"]),
    Route("/api/v1/studies/{nct_id}", study_api, methods=["GET"]),
    Route("/api/v1/studies/{nct_id}/diff", study_diff_api, methods=["GET"]),
]
