"""A watch's landscape: every study it holds, one row each, with what a coordinator reads first
(status, phase, sponsor, interventions, enrollment, the three dates, countries and recruiting
sites, results, articles naming it, the last change). One function, `landscape`, feeds every
rendering: the page and its chart, the JSON API, the CSV and XLSX exports and `trialwatch studies`.

The facts of a stored version are read from its record once (`facts_of`) and cached on the version
(store.landscape); a first look at a watch of a thousand studies unpacks their records in batches,
every look after reads only the cached facts.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from watcher.model import DatePoint, get_path
from watcher.registry.landscape_query import LandscapeFilter, select_rows
from watcher.registry.landscape_row import LandscapeRow
from watcher.store import landscape as stored
from watcher.store.repo import unpack_record

FACTS_VERSION = 1  # bump when facts_of reads more: every cached entry is read again
RECENT = timedelta(days=7)
FILL_BATCH = 50  # records unpacked at a time when facts are missing


def facts_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The landscape facts of one API v2 record, as cached (plain JSON)."""
    protocol = record.get("protocolSection") or {}
    status = protocol.get("statusModule") or {}
    locations = get_path(protocol, "contactsLocationsModule.locations") or []
    interventions = get_path(protocol, "armsInterventionsModule.interventions") or []
    enrollment = get_path(protocol, "designModule.enrollmentInfo") or {}

    def date_of(key: str) -> list[str | None]:
        struct = status.get(key) or {}
        return [struct.get("date"), struct.get("type")]

    return {
        "v": FACTS_VERSION,
        "sponsor": get_path(protocol, "sponsorCollaboratorsModule.leadSponsor.name") or "",
        "phases": list(get_path(protocol, "designModule.phases") or []),
        "interventions": [[i.get("type") or "", i.get("name") or ""] for i in interventions if isinstance(i, dict)],
        "enrollment": [enrollment.get("count"), enrollment.get("type")],
        "start": date_of("startDateStruct"),
        "primary_completion": date_of("primaryCompletionDateStruct"),
        "completion": date_of("completionDateStruct"),
        "countries": sorted({loc.get("country") for loc in locations if isinstance(loc, dict) and loc.get("country")}),
        "sites": len(locations),
        "sites_recruiting": sum(1 for loc in locations if isinstance(loc, dict) and loc.get("status") == "RECRUITING"),
        "results": bool(record.get("hasResults")),
        "results_date": (status.get("resultsFirstPostDateStruct") or {}).get("date"),
    }


def _row(held: stored.HeldStudy, facts: dict[str, Any], last: stored.LastChange | None, articles: int,
         since: datetime) -> LandscapeRow:  # fmt: skip
    enrollment = facts.get("enrollment") or [None, None]
    count = enrollment[0] if isinstance(enrollment[0], int) and not isinstance(enrollment[0], bool) else None
    recent = last is not None and last.detected_at >= since  # what the watch told of, as its last change shows
    return LandscapeRow(
        nct_id=held.nct_id, title=held.title, status=held.status, phase=held.phase,
        phases=tuple(facts.get("phases") or ()), sponsor=facts.get("sponsor") or "",
        interventions=tuple((str(kind), str(name)) for kind, name in facts.get("interventions") or ()),
        enrollment_count=count, enrollment_type=enrollment[1],
        start=_point(facts.get("start")), primary_completion=_point(facts.get("primary_completion")),
        completion=_point(facts.get("completion")), countries=tuple(facts.get("countries") or ()),
        sites=int(facts.get("sites") or 0), sites_recruiting=int(facts.get("sites_recruiting") or 0),
        results=bool(facts.get("results")), results_date=facts.get("results_date"), articles=articles,
        last_change=last, recent=recent, left_at=held.left_at,
    )  # fmt: skip


def _point(pair: Any) -> DatePoint:
    if isinstance(pair, list | tuple) and len(pair) == 2:
        return DatePoint(value=pair[0], type=pair[1])
    return DatePoint(value=None)


def _filled(session: Session, studies: list[stored.HeldStudy]) -> dict[str, dict[str, Any]]:
    """Each study's facts: cached ones as they are; missing or older ones read from the records
    (FILL_BATCH at a time) and cached."""
    facts = {s.nct_id: s.facts for s in studies if s.facts and s.facts.get("v") == FACTS_VERSION}
    missing = {s.version_id: s.nct_id for s in studies if s.nct_id not in facts and s.version_id is not None}
    ids = sorted(missing)
    for start in range(0, len(ids), FILL_BATCH):
        computed = {
            ident: facts_of(unpack_record(blob))
            for ident, blob in stored.version_records(session=session, version_ids=ids[start : start + FILL_BATCH])
        }
        stored.save_facts(session=session, facts=computed)
        facts.update({missing[ident]: one for ident, one in computed.items()})
    return {s.nct_id: facts.get(s.nct_id) or {} for s in studies}


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Building 10,000 rows allocates some 200,000 small containers, none in a cycle; meanwhile
    the cyclic collector would walk the whole heap again and again (45% of the time, measured).
    It runs once they are built (the process's other threads may have it collect meanwhile)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def landscape(*, session: Session, watch: str, filters: LandscapeFilter, now: datetime) -> list[LandscapeRow]:
    """Every study of `watch` that `filters` keeps, in the order `filters.sort` asks."""
    with _collector_paused():
        studies = stored.held_studies(session=session, watch=watch, include_left=filters.left)
        facts = _filled(session, studies)
        changes = stored.last_changes(session=session, watch=watch)
        articles = stored.article_counts(session=session) if studies else {}
        since = now - RECENT
        rows = [_row(s, facts[s.nct_id], changes.get(s.nct_id), articles.get(s.nct_id, 0), since) for s in studies]
        return select_rows(rows, filters)
