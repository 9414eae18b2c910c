"""watcher.rules, pure: on the real version pairs in ../shared/fixtures (the
92-day slip and the removed Seoul site of NCT05805501, the 18 -> 8 enrollment of NCT04514484) and
on records derived from them in memory. Each rule alone, in combination, at its boundaries; the
keys themselves, the query and TOML / JSON parity are in test_rules_config.py."""

from __future__ import annotations

import copy
import json
import math
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.model import ChangeKind, FieldChange, Study
from watcher.registry.diff import diff_records
from watcher.rules import (
    article_rule,
    describe_rules,
    haversine_km,
    join_rule,
    judge,
    judge_all,
    site_in_scope,
)
from watcher.watch import WatchConfig

R0212 = "study_NCT05805501_rcc_bispecific_2026-02-12.json"
R0216 = "study_NCT05805501_rcc_bispecific_2026-02-16.json"
E0205 = "study_NCT04514484_rcc_io_2026-02-05.json"
E0210 = "study_NCT04514484_rcc_io_2026-02-10.json"
DALLAS = {"lat": 32.78, "lon": -96.80, "radius_km": 100}


def watch(**rules: Any) -> WatchConfig:
    return WatchConfig.model_validate({"name": "w", "terms": ["RCC"], "recipients": ["a@example.org"], **rules})


def verdicts(rules: WatchConfig, old: dict[str, Any], new: dict[str, Any]) -> dict[str, str | None]:
    """kind -> the rule that holds it back (None: mailed), as the pipeline judges a poll's diff."""
    judged = judge_all(rules, diff_records(old, new), new=Study.from_record(new), old_record=old)
    return {str(change.kind): change.suppressed_by for change in judged}


def judged(rules: WatchConfig, old: dict[str, Any], new: dict[str, Any], kind: ChangeKind) -> FieldChange:
    changes = judge_all(rules, diff_records(old, new), new=Study.from_record(new), old_record=old)
    return next(change for change in changes if change.kind is kind)


def status_of(record: dict[str, Any]) -> dict[str, Any]:
    return record["protocolSection"]["statusModule"]


def sites_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    return record["protocolSection"]["contactsLocationsModule"]["locations"]


# --- no rules: exactly as before ------------------------------------------------------------


def test_without_rules_every_change_is_mailed(real_study):
    assert verdicts(watch(), real_study(R0212), real_study(R0216)) == {"dates": None, "sites": None}
    assert verdicts(watch(), real_study(E0205), real_study(E0210)) == {"dates": None, "enrollment": None}


# --- min_slip_days -----------------------------------------------------------------------------


@pytest.mark.parametrize(("threshold", "held"), [(30, None), (92, None), (93, "min_slip_days=93")])
def test_the_real_92_day_slip_below_at_and_above_the_threshold(real_study, threshold, held):
    assert verdicts(watch(min_slip_days=threshold), real_study(R0212), real_study(R0216))["dates"] == held


def slipped(record: dict[str, Any], days: int) -> dict[str, Any]:
    """The 02-12 record with both completion dates moved `days` from 2026-07-31."""
    moved = copy.deepcopy(record)
    day = date.fromordinal(date(2026, 7, 31).toordinal() + days).isoformat()
    for key in ("primaryCompletionDateStruct", "completionDateStruct"):
        status_of(moved)[key]["date"] = day
    return moved


@pytest.mark.parametrize(
    ("days", "threshold", "held"), [(29, 30, True), (30, 30, False), (-29, 30, True), (-30, 30, False)]
)
def test_a_slip_either_way_is_held_only_below_the_threshold(real_study, days, threshold, held):
    old = real_study(R0212)
    rule = verdicts(watch(min_slip_days=threshold), old, slipped(old, days))["dates"]
    assert rule == ("min_slip_days=30" if held else None)


def test_a_date_becoming_actual_appearing_or_disappearing_is_always_mailed(real_study):
    rules = watch(min_slip_days=3650)
    old, new = real_study(E0205), real_study(E0210)  # primary completion estimated -> actual, same day
    assert verdicts(rules, old, new)["dates"] is None
    actual_only = copy.deepcopy(old)
    status_of(actual_only)["primaryCompletionDateStruct"]["type"] = "ACTUAL"
    assert verdicts(rules, old, actual_only)["dates"] is None
    gone = copy.deepcopy(old)
    del status_of(gone)["completionDateStruct"]
    assert verdicts(rules, old, gone)["dates"] is None
    assert verdicts(rules, gone, old)["dates"] is None


def test_month_precision_dates_count_from_the_first_of_the_month(real_study):
    old, new = real_study(R0212), real_study(R0212)
    status_of(old)["completionDateStruct"]["date"] = "2026-07"
    status_of(new)["completionDateStruct"]["date"] = "2026-08"  # 31 days
    status_of(new)["primaryCompletionDateStruct"] = status_of(old)["primaryCompletionDateStruct"]
    assert verdicts(watch(min_slip_days=31), old, new)["dates"] is None
    assert verdicts(watch(min_slip_days=32), old, new)["dates"] == "min_slip_days=32"


# --- min_enrollment_change_percent --------------------------------------------------------------


def test_the_real_18_to_8_estimated_to_actual_is_always_mailed(real_study):
    rules = watch(min_enrollment_change_percent=99)
    assert verdicts(rules, real_study(E0205), real_study(E0210))["enrollment"] is None


def enrolled(record: dict[str, Any], count: int, kind: str) -> dict[str, Any]:
    changed = copy.deepcopy(record)
    changed["protocolSection"]["designModule"]["enrollmentInfo"] = {"count": count, "type": kind}
    return changed


@pytest.mark.parametrize(
    ("before", "after", "percent", "held"),
    [(8, 9, 12.5, False), (8, 9, 12.6, True), (100, 110, 10, False), (100, 109, 10, True), (100, 90, 10, False)],
)
def test_enrollment_threshold_relative_to_the_old_count(real_study, before, after, percent, held):
    base = real_study(E0210)
    old, new = enrolled(base, before, "ACTUAL"), enrolled(base, after, "ACTUAL")
    rule = verdicts(watch(min_enrollment_change_percent=percent), old, new)["enrollment"]
    assert rule == (f"min_enrollment_change_percent={percent:g}" if held else None)


# --- alert_on -----------------------------------------------------------------------------------


def test_alert_on_mails_only_the_kinds_named(real_study):
    old, new = real_study(R0212), real_study(R0216)
    assert verdicts(watch(alert_on=["status", "results_posted"]), old, new) == {
        "dates": "alert_on",
        "sites": "alert_on",
    }
    assert verdicts(watch(alert_on=["dates"]), old, new) == {"dates": None, "sites": "alert_on"}


def test_alert_on_applies_to_articles_and_the_other_rules_do_not():
    assert article_rule(watch(alert_on=["status"]), ChangeKind.NEW_ARTICLE) == "alert_on"
    assert article_rule(watch(alert_on=["publication"]), ChangeKind.PUBLICATION) is None
    assert article_rule(watch(min_slip_days=30, near=DALLAS), ChangeKind.NEW_ARTICLE) is None


# --- geography ----------------------------------------------------------------------------------


def test_haversine_known_distances():
    assert haversine_km(0, 0, 1, 0) == pytest.approx(111.195, abs=0.001)  # one degree of a meridian
    assert haversine_km(51.5074, -0.1278, 48.8566, 2.3522) == pytest.approx(343.6, abs=1)  # London - Paris
    assert haversine_km(32.78, -96.80, 29.76, -95.37) == haversine_km(29.76, -95.37, 32.78, -96.80)
    assert haversine_km(10, 20, 10, 20) == 0


def test_a_site_inside_and_outside_a_radius_by_its_geopoint(real_study):
    sites = {site.city: site for site in Study.from_record(real_study(R0212)).sites}
    dallas, birmingham = sites["Dallas"], sites["Birmingham"]
    rules = watch(near=DALLAS)
    assert site_in_scope(rules, dallas) and not site_in_scope(rules, birmingham)
    assert dallas.lat is not None and dallas.lon is not None
    distance = haversine_km(32.78, -96.80, dallas.lat, dallas.lon)
    assert site_in_scope(watch(near={**DALLAS, "radius_km": distance}), dallas)  # the boundary is inside
    assert not site_in_scope(watch(near={**DALLAS, "radius_km": distance * 0.999}), dallas)


def test_a_site_without_geopoint_is_outside_every_circle_but_can_be_in_a_country(real_study):
    (chonnam,) = [s for s in Study.from_record(real_study(R0212)).sites if s.city == "Jeollanam-do"]
    assert chonnam.lat is None
    assert not site_in_scope(watch(near={"lat": 35.0, "lon": 127.0, "radius_km": 500}), chonnam)
    assert site_in_scope(watch(countries=["south korea"]), chonnam)


def test_places_ignore_case_and_accents_and_every_key_set_must_match(real_study):
    sites = {site.city: site for site in Study.from_record(real_study(R0212)).sites}
    assert site_in_scope(watch(cities=["munchen"]), sites["München"])
    assert site_in_scope(watch(states=["texas"], countries=["United States"]), sites["Dallas"])
    assert not site_in_scope(watch(states=["Texas"], countries=["Germany"]), sites["Dallas"])
    assert not site_in_scope(watch(states=["Texas"]), sites["Seoul"])


def test_the_removed_seoul_site_is_held_back_for_a_dallas_reader(real_study):
    old, new = real_study(R0212), real_study(R0216)
    assert verdicts(watch(near=DALLAS), old, new)["sites"] == "geography"
    assert verdicts(watch(countries=["United States"]), old, new)["sites"] == "geography"
    kept = judged(watch(countries=["South Korea"]), old, new, ChangeKind.SITES)
    assert kept.alerted and kept.summary == "Site removed: Asan Medical Center, Seoul, South Korea."


def test_a_sites_change_names_only_the_sites_in_scope(real_study):
    old = real_study(R0212)
    new = real_study(R0216)  # Asan (Seoul) removed; now UT Southwestern (Dallas) closes too
    sites_of(new)[:] = [s for s in sites_of(new) if s["city"] != "Dallas"]
    change = judged(watch(near=DALLAS), old, new, ChangeKind.SITES)
    assert change.alerted
    assert change.summary == (
        "Site removed: UT Southwestern Medical Center, Dallas, United States (1 more outside this watch's area)."
    )
    assert [s["city"] for s in change.details["in_scope"]["removed"]] == ["Dallas"]
    assert len(change.details["removed"]) == 2  # the full change is kept beside


def test_a_recruiting_status_change_of_a_site_in_a_state(real_study):
    old, new = real_study(R0212), real_study(R0212)
    for site in sites_of(new):
        if site["city"] in ("Dallas", "Madrid"):
            site["status"] = "COMPLETED"
    change = judged(watch(states=["Texas"]), old, new, ChangeKind.SITES)
    assert change.summary.startswith("UT Southwestern Medical Center, Dallas, United States: no status → completed")
    assert "(3 more outside this watch's area)" in change.summary


# --- joining: statuses, phases, geography ------------------------------------------------------


def test_join_rules_on_the_real_record(real_study):
    study = Study.from_record(real_study(R0212))  # ACTIVE_NOT_RECRUITING, PHASE2, a site in Dallas
    assert join_rule(watch(), study) is None
    assert join_rule(watch(statuses=["RECRUITING", "NOT_YET_RECRUITING"]), study) == "statuses"
    assert join_rule(watch(statuses=["active not recruiting"]), study) is None
    assert join_rule(watch(phases=["PHASE1"]), study) == "phases"
    assert join_rule(watch(phases=["PHASE1", "PHASE2"]), study) is None
    assert join_rule(watch(near=DALLAS), study) is None
    assert join_rule(watch(near={"lat": 35.68, "lon": 139.69, "radius_km": 100}), study) == "geography"  # Tokyo
    assert join_rule(watch(statuses=["RECRUITING"], nct_ids=["NCT05805501"]), study) is None  # named: always held


def test_rules_combine_and_the_first_that_holds_a_change_back_is_named(real_study):
    old, new = real_study(R0212), real_study(R0216)
    rules = watch(alert_on=["dates", "sites", "status"], min_slip_days=100, near=DALLAS, statuses=["RECRUITING"])
    assert verdicts(rules, old, new) == {"dates": "min_slip_days=100", "sites": "geography"}
    assert verdicts(watch(alert_on=["status"], min_slip_days=100), old, new)["dates"] == "alert_on"
    assert verdicts(watch(min_slip_days=30, countries=["South Korea"]), old, new) == {"dates": None, "sites": None}


def test_no_longer_matching_and_new_study_follow_alert_on():
    gone = FieldChange(ChangeKind.NO_LONGER_MATCHING, "No longer matches this watch: t.", {})
    assert judge(watch(alert_on=["status"]), gone).suppressed_by == "alert_on"
    assert judge(watch(alert_on=["no_longer_matching"]), gone).alerted


# --- in words ----------------------------------------------------------------------------------


def test_check_describes_the_rules_in_words():
    rules = watch(alert_on=["status", "results_posted"], min_slip_days=30, states=["Texas"])
    assert describe_rules(rules) == (
        "mails: status, results posted; dates only when they move 30 days or more, or become actual; sites in Texas"
    )
    assert describe_rules(watch()) == "mails: every kind of change"
    everything = describe_rules(
        watch(min_enrollment_change_percent=10, statuses=["RECRUITING"], phases=["PHASE1", "PHASE2"], near=DALLAS)
    )
    assert everything == (
        "mails: every kind of change; enrollment only when it changes 10% or more, or becomes actual; "
        "studies recruiting; studies in phase 1 or phase 2; sites within 100 km of 32.78, -96.8"
    )


# --- properties --------------------------------------------------------------------------------

OWN_V1 = json.loads((Path(__file__).parent / "data" / "study_NCT09000001_v1.json").read_text(encoding="utf-8"))
latitudes, longitudes = st.floats(-90, 90), st.floats(-180, 180)


@given(st.sampled_from(list(ChangeKind)))
def test_without_rules_or_with_every_kind_judge_changes_nothing(kind):
    change = FieldChange(kind, "Something changed.", {"count": {"before": 1, "after": 2}})
    assert judge(watch(), change) == change
    assert judge(watch(alert_on=[str(k) for k in ChangeKind]), change) == change


@given(st.integers(-3000, 3000).filter(bool), st.integers(1, 4000))
def test_a_slip_is_held_exactly_when_it_is_shorter_than_the_threshold(days, threshold):
    rule = verdicts(watch(min_slip_days=threshold), OWN_V1, slipped_own(days))["dates"]
    assert (rule is not None) == (abs(days) < threshold)


def slipped_own(days: int) -> dict[str, Any]:
    moved = copy.deepcopy(OWN_V1)
    struct = status_of(moved)["primaryCompletionDateStruct"]
    struct["date"] = date.fromordinal(date.fromisoformat(struct["date"]).toordinal() + days).isoformat()
    return moved


@given(latitudes, longitudes, latitudes, longitudes)
def test_haversine_is_symmetric_and_bounded(lat1, lon1, lat2, lon2):
    distance = haversine_km(lat1, lon1, lat2, lon2)
    assert distance == pytest.approx(haversine_km(lat2, lon2, lat1, lon1), abs=1e-6)
    assert 0 <= distance <= math.pi * 6371.0088 + 1e-6
