"""Issue #23: the FDAAA due-date rules (watcher.milestones), on the real ctgov records and as
properties. The real records give every state: NCT05805501 and NCT05127824 (phase 2,
FDA-regulated drug, started 2023: applicable, results not posted), NCT04514484 (phase 1 alone),
NCT00554515 (phase 2 with results, started and completed before 2017-01-18), NCT02513394 (phase 3
with results, not flagged FDA-regulated), the ILD page's observational studies; the reported and
delayed cases are these records with one field set, as the registry would show it."""

from __future__ import annotations

import copy
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.milestones import (
    DueFacts,
    DueState,
    coming_up,
    date_events,
    judge_due,
    last_day,
    milestones,
)
from watcher.model import ChangeKind, DatePoint

BISPECIFIC = "study_NCT05805501_rcc_bispecific_2026-02-16.json"  # primary completion 2026-10-31 (estimated)


def facts_of(record: dict[str, Any]) -> DueFacts:
    return DueFacts.from_record(record)


def with_status(record: dict[str, Any], **fields: Any) -> dict[str, Any]:
    copied = copy.deepcopy(record)
    copied["protocolSection"]["statusModule"].update(fields)
    return copied


def test_an_fda_regulated_phase_2_is_due_a_year_after_primary_completion(real_study):
    verdict = judge_due(facts_of(real_study(BISPECIFIC)), date(2026, 12, 8))
    assert verdict.state is DueState.ONGOING
    assert verdict.due == date(2027, 10, 31)
    assert verdict.explain() == (
        "due 2027-10-31: primary completion 2026-10-31 (estimated) + 1 year; FDA-regulated drug; phase 2"
    )


def test_due_soon_then_overdue_only_30_days_after_the_due_date(real_study):
    facts = facts_of(real_study(BISPECIFIC))
    assert judge_due(facts, date(2027, 8, 31)).state is DueState.ONGOING  # 61 days before
    assert judge_due(facts, date(2027, 8, 31), due_soon_days=61).state is DueState.DUE_SOON
    assert judge_due(facts, date(2027, 9, 1)).state is DueState.DUE_SOON  # 60 days before
    assert judge_due(facts, date(2027, 11, 30)).state is DueState.DUE_SOON  # due + 30: still in grace
    overdue = judge_due(facts, date(2027, 12, 1))
    assert overdue.state is DueState.OVERDUE and overdue.overdue_from == date(2027, 12, 1)
    assert overdue.explain().startswith("overdue since 2027-12-01: due 2027-10-31, no results submitted")


def test_a_month_only_date_counts_from_the_month_s_last_day(real_study):
    facts = facts_of(real_study("study_NCT05127824_kidney_cancer_recruiting.json"))  # primary completion 2026-12
    verdict = judge_due(facts, date(2026, 12, 8))
    assert verdict.due == date(2027, 12, 31)
    assert "primary completion 2026-12 (taken as 2026-12-31) (estimated) + 1 year" in verdict.explain()


def test_reported_on_time_and_late(real_study):
    record = real_study(BISPECIFIC)
    on_time = judge_due(facts_of(with_status(record, resultsFirstSubmitDate="2027-10-31")), date(2029, 1, 1))
    assert on_time.state is DueState.REPORTED and on_time.reported_on == date(2027, 10, 31)
    late = judge_due(facts_of(with_status(record, resultsFirstSubmitDate="2027-11-01")), date(2029, 1, 1))
    assert late.state is DueState.REPORTED_LATE
    assert late.explain().startswith("reported late, 2027-11-01: due 2027-10-31")


def test_a_certificate_of_delay_gives_three_years(real_study):
    record = with_status(real_study(BISPECIFIC), dispFirstSubmitDate="2027-09-01")
    verdict = judge_due(facts_of(record), date(2028, 6, 1))
    assert verdict.due == date(2026, 10, 31) + timedelta(days=3 * 365)
    assert verdict.state is DueState.ONGOING
    assert "+ 3 years (certificate of delay 2027-09-01)" in verdict.explain()


def test_phase_1_alone_is_not_applicable(real_study):
    verdict = judge_due(facts_of(real_study("study_NCT04514484_rcc_io_2026-02-10.json")), date(2027, 12, 1))
    assert verdict.state is DueState.NOT_APPLICABLE and verdict.due is None
    assert verdict.explain() == "US results reporting does not apply: phase 1 only"


def test_phase_1_2_is_applicable(real_study):
    record = copy.deepcopy(real_study("study_NCT04514484_rcc_io_2026-02-10.json"))
    record["protocolSection"]["designModule"]["phases"] = ["PHASE1", "PHASE2"]
    verdict = judge_due(facts_of(record), date(2026, 11, 20))
    assert verdict.state is DueState.DUE_SOON and verdict.due == date(2026, 11, 2)  # 2025-11-02 (actual) + 1 year
    assert judge_due(facts_of(record), date(2026, 12, 3)).state is DueState.OVERDUE


def test_studies_before_the_final_rule_and_studies_not_flagged(real_study):
    old = judge_due(facts_of(real_study("study_NCT00554515_rcc_with_results.json")), date(2026, 12, 8))
    assert old.state is DueState.NOT_APPLICABLE
    assert "started 2006-11 and completed before 2017-01-18" in old.explain()
    unflagged = judge_due(facts_of(real_study("study_NCT02513394_with_results_large.json")), date(2026, 12, 8))
    assert unflagged.state is DueState.NOT_APPLICABLE
    assert "not an FDA-regulated drug or device" in unflagged.explain()


def test_started_before_but_completed_after_the_final_rule_applies(real_study):
    record = with_status(real_study(BISPECIFIC), startDateStruct={"date": "2016-05", "type": "ACTUAL"})
    verdict = judge_due(facts_of(record), date(2026, 12, 8))
    assert verdict.state is DueState.ONGOING
    assert "started 2016-05, before 2017-01-18, completed after it" in verdict.explain()


def test_observational_withdrawn_and_device_feasibility_are_not_applicable(real_study):
    page = real_study("search_page_raw_v2_ild_pagesize5.json")["studies"]
    observational = next(r for r in page if r["protocolSection"]["designModule"]["studyType"] == "OBSERVATIONAL")
    assert "not interventional (observational)" in judge_due(facts_of(observational), date(2026, 12, 8)).explain()
    withdrawn = with_status(real_study(BISPECIFIC), overallStatus="WITHDRAWN")
    assert judge_due(facts_of(withdrawn), date(2026, 12, 8)).reasons == ("withdrawn",)
    device = copy.deepcopy(real_study(BISPECIFIC))
    device["protocolSection"]["designModule"]["designInfo"]["primaryPurpose"] = "DEVICE_FEASIBILITY"
    device["protocolSection"]["oversightModule"].update(isFdaRegulatedDrug=False, isFdaRegulatedDevice=True)
    assert judge_due(facts_of(device), date(2026, 12, 8)).reasons == ("a device feasibility study",)


def test_milestones_overdue_and_stale_estimate(real_study):
    facts = facts_of(real_study(BISPECIFIC))
    assert milestones(facts, date(2026, 11, 30)) == []  # estimated 2026-10-31: 30 days past, not more
    stale = milestones(facts, date(2026, 12, 1))
    assert [m.kind for m in stale] == [ChangeKind.ESTIMATED_DATE_PASSED]
    assert stale[0].marker == "2026-10-31" and stale[0].occurred == date(2026, 12, 1)
    late = milestones(facts, date(2027, 12, 1))
    assert [m.kind for m in late] == [ChangeKind.RESULTS_OVERDUE, ChangeKind.ESTIMATED_DATE_PASSED]
    assert late[0].occurred == date(2027, 12, 1) and late[0].details["due"] == "2027-10-31"
    reported = facts_of(with_status(real_study(BISPECIFIC), resultsFirstSubmitDate="2027-01-10"))
    assert [m.kind for m in milestones(reported, date(2027, 12, 1))] == [ChangeKind.ESTIMATED_DATE_PASSED]


def test_coming_up_lists_primary_completions_and_results_due_soonest_first(real_study):
    studies = [
        facts_of(real_study(BISPECIFIC)),
        facts_of(real_study("study_NCT05127824_kidney_cancer_recruiting.json")),
    ]
    events = coming_up(studies, date(2026, 10, 1), days=91)
    assert [(e.nct_id, e.what, e.day) for e in events] == [
        ("NCT05805501", "primary_completion", date(2026, 10, 31)),
        ("NCT05127824", "primary_completion", date(2026, 12, 31)),
    ]
    assert events[0].line().startswith("2026-10-31 · NCT05805501 primary completion (estimated): ")
    assert coming_up(studies, date(2026, 10, 1), days=10) == []
    due = coming_up(studies, date(2027, 10, 1), days=91)
    assert [(e.nct_id, e.what) for e in due] == [("NCT05805501", "results_due"), ("NCT05127824", "results_due")]


# --- properties ----------------------------------------------------------------------------

days = st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 12, 31))


def synthetic(
    pc: date, *, start: date = date(2020, 1, 1), submitted: date | None = None, phase: str = "PHASE2"
) -> DueFacts:
    return DueFacts(
        nct_id="NCT09000001", title="T", study_type="INTERVENTIONAL", fda_drug=True, fda_device=False,
        phases=(phase,), primary_purpose="TREATMENT", status="COMPLETED", start=DatePoint(start.isoformat(), "ACTUAL"),
        primary_completion=DatePoint(pc.isoformat(), "ACTUAL"), completion=DatePoint(None),
        delay_certificate=None, results_submitted=submitted.isoformat() if submitted else None,
    )  # fmt: skip


@given(days)
def test_a_full_date_is_its_own_day_and_a_month_ends_on_its_last(day):
    assert last_day(day.isoformat()) == day
    month_end = last_day(day.isoformat()[:7])
    assert month_end is not None and month_end >= day and (month_end + timedelta(days=1)).day == 1


@given(days, days, days)
def test_an_unreported_study_only_moves_forward_through_the_states(pc, first, second):
    facts = synthetic(pc)
    order = [DueState.ONGOING, DueState.DUE_SOON, DueState.OVERDUE]
    early, later = sorted([first, second])
    assert order.index(judge_due(facts, early).state) <= order.index(judge_due(facts, later).state)
    verdict = judge_due(facts, later)
    assert (verdict.state is DueState.OVERDUE) == (later > pc + timedelta(days=395))


@given(days, days, days)
def test_reported_does_not_depend_on_the_day(pc, submitted, today):
    verdict = judge_due(synthetic(pc, submitted=submitted), today)
    assert verdict.state in (DueState.REPORTED, DueState.REPORTED_LATE)
    assert (verdict.state is DueState.REPORTED_LATE) == (submitted > pc + timedelta(days=365))
    assert milestones(synthetic(pc, submitted=submitted), today) == []  # no overdue once reported


@given(days, days)
def test_phase_1_alone_never_applies_and_never_falls_overdue(pc, today):
    facts = synthetic(pc, phase="PHASE1")
    assert judge_due(facts, today).state is DueState.NOT_APPLICABLE
    assert all(m.kind is not ChangeKind.RESULTS_OVERDUE for m in milestones(facts, today))


@given(days, days)
def test_results_overdue_is_a_milestone_exactly_when_the_state_is_overdue(pc, today):
    facts = synthetic(pc)
    overdue = [m for m in milestones(facts, today) if m.kind is ChangeKind.RESULTS_OVERDUE]
    assert bool(overdue) == (judge_due(facts, today).state is DueState.OVERDUE)
    assert all(m.occurred <= today for m in overdue)


@given(st.lists(days, max_size=30), days, st.integers(min_value=0, max_value=400))
def test_coming_up_is_short_sorted_and_inside_the_window(pcs, today, window):
    events = coming_up([synthetic(pc) for pc in pcs], today, days=window)
    assert len(events) <= 10
    assert [e.day for e in events] == sorted(e.day for e in events)
    assert all(today <= e.day <= today + timedelta(days=window) for e in events)


@pytest.mark.parametrize("value", ["", "2026-13", "soon", "2026-02-30"])
def test_a_date_that_is_not_one_is_none(value):
    assert last_day(value) is None


def test_date_events_give_the_calendar_three_dates(real_study):
    events = date_events(facts_of(real_study(BISPECIFIC)), date(2026, 12, 8))
    assert [(e.what, e.day, e.estimated) for e in events] == [
        ("primary_completion", date(2026, 10, 31), True),
        ("completion", date(2026, 10, 31), True),
        ("results_due", date(2027, 10, 31), False),
    ]
