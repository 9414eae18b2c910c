"""The landscape's pure parts: the facts read from a real record, the view parsed from query
parameters, and keyset pages that give every row once, in order, whatever the page size."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.model import DatePoint
from watcher.registry.landscape import LandscapeRow, facts_of
from watcher.registry.landscape_query import decode_cursor, page_after, parse_view, select_rows

REAL = "study_NCT05805501_rcc_bispecific_2026-02-12.json"


def view(**params: str | list[str]):
    single = {k: v for k, v in params.items() if isinstance(v, str)}
    return parse_view(single, lambda key: [params[key]] if isinstance(params.get(key), str) else params.get(key) or [])


def row(n: int, enrollment: int | None, sponsor: str = "") -> LandscapeRow:
    return LandscapeRow(
        nct_id=f"NCT{n:08d}", title=f"Study {n}", status="RECRUITING", phase="Phase 2", phases=("PHASE2",),
        sponsor=sponsor, interventions=(("DRUG", "X"),), enrollment_count=enrollment, enrollment_type="ACTUAL",
        start=DatePoint(None), primary_completion=DatePoint(None), completion=DatePoint(None), countries=(),
        sites=0, sites_recruiting=0, results=False, results_date=None, articles=0, last_change=None, recent=False,
        left_at=None,
    )  # fmt: skip


@pytest.mark.realdata
def test_facts_of_a_real_record(real_study):
    facts = facts_of(real_study(REAL))
    assert facts["sponsor"] == "Hoffmann-La Roche" and facts["phases"] == ["PHASE2"]
    assert facts["interventions"][0] == ["DRUG", "Tobemstomig"] and len(facts["interventions"]) == 4
    assert facts["countries"][:3] == ["Australia", "China", "France"] and facts["sites"] == 44
    assert facts["primary_completion"] == ["2026-07-31", "ESTIMATED"] and facts["results"] is False


def test_a_view_from_query_parameters():
    parsed = view(status=["recruiting", "COMPLETED"], phase="PHASE2", sort="-enrollment", q="car-t  rcc", left="1")
    assert not parsed.errors
    filters = parsed.filters
    assert filters.statuses == ("RECRUITING", "COMPLETED") and filters.phases == ("PHASE2",)
    assert filters.sort == "enrollment" and filters.descending and filters.words == ("car-t", "rcc") and filters.left
    expected = "/w?status=RECRUITING&status=COMPLETED&phase=PHASE2&q=car-t+rcc&left=1&sort=-enrollment"
    assert filters.link("/w") == expected
    assert set(view(status="RUNNING", sort="x", country=["y" * 101]).errors) == {"status", "sort", "country"}


def test_none_last_both_ways_and_ties_by_nct_id():
    rows = [row(1, 5), row(2, None), row(3, 7), row(4, 5)]
    asc, desc = view(sort="enrollment").filters, view(sort="-enrollment").filters
    assert [r.nct_id[-1] for r in select_rows(rows, asc)] == ["1", "4", "3", "2"]
    assert [r.nct_id[-1] for r in select_rows(rows, desc)] == ["3", "1", "4", "2"]


def test_a_cursor_is_refused_unless_this_server_made_it_for_this_sort():
    filters = view(sort="enrollment").filters
    _, cursor = page_after(select_rows([row(1, 5), row(2, 6)], filters), filters, None, 1)
    assert cursor is not None and decode_cursor(cursor, filters)
    forged = base64.urlsafe_b64encode(json.dumps(["enrollment", False, True, "NCT1"]).encode()).decode()
    for token in (forged, "!!", cursor[:-3], "x" * 700):
        with pytest.raises(ValueError, match="not one this server handed out"):
            decode_cursor(token, filters)
    with pytest.raises(ValueError):
        decode_cursor(cursor, view(sort="-enrollment").filters)


@settings(max_examples=60, deadline=None)
@given(
    enrollments=st.lists(st.one_of(st.none(), st.integers(0, 5)), min_size=0, max_size=40),
    limit=st.integers(1, 7),
    sort=st.sampled_from(["enrollment", "-enrollment", "sponsor", "-sponsor", "nct_id", "-title"]),
)
def test_keyset_pages_give_every_row_once_in_order(enrollments, limit, sort):
    rows = [row(n, e, sponsor=["", "b", "a"][n % 3]) for n, e in enumerate(enrollments)]
    filters = view(sort=sort).filters
    ordered = select_rows(rows, filters)
    seen, after = [], None
    while True:
        page, cursor = page_after(ordered, filters, after, limit)
        seen += page
        if cursor is None:
            break
        after = decode_cursor(cursor, filters)
    assert [r.nct_id for r in seen] == [r.nct_id for r in ordered]


def test_a_rows_interventions_and_link():
    assert row(1, 2).interventions_text == "Drug: X" and row(1, 2).url == "https://clinicaltrials.gov/study/NCT00000001"
