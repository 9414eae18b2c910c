"""diff.py: ground truth from real registry version pairs, and properties of the pure diff."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.diff import diff_studies, tracked_fingerprint
from watcher.model import ChangeKind, Study

DATA = Path(__file__).parent / "data"


def own(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())


def kinds(old: dict[str, Any], new: dict[str, Any]) -> list[ChangeKind]:
    return [change.kind for change in diff_studies(Study.from_record(old), Study.from_record(new))]


# --- real version pairs (../shared/BRIEF.md, "The real version pairs") -------------------------


def test_nct05805501_0212_to_0216_is_dates_and_asan_removed(real_study):
    old = Study.from_record(real_study("study_NCT05805501_rcc_bispecific_2026-02-12.json"))
    new = Study.from_record(real_study("study_NCT05805501_rcc_bispecific_2026-02-16.json"))
    changes = diff_studies(old, new)
    assert [c.kind for c in changes] == [ChangeKind.DATES, ChangeKind.SITES]
    dates, sites = changes
    assert set(dates.details) == {"primary_completion", "completion"}
    assert dates.details["primary_completion"]["slip_days"] == 92
    assert dates.details["completion"]["after"] == {"date": "2026-10-31", "type": "ESTIMATED"}
    assert "slipped 92 days to 2026-10-31" in dates.summary
    assert sites.details["removed"] == [{"facility": "Asan Medical Center", "city": "Seoul", "country": "South Korea"}]
    assert sites.summary == "Site removed: Asan Medical Center, Seoul, South Korea."
    assert sites.details["added"] == []
    assert sites.details["count"] == {"before": 44, "after": 43}


def test_nct05805501_0216_to_0218_versionholder_only_gives_nothing(real_study):
    old = real_study("study_NCT05805501_rcc_bispecific_2026-02-16.json")
    new = real_study("study_NCT05805501_rcc_bispecific_2026-02-18.json")
    assert old != new  # the files really differ (versionHolder)
    assert kinds(old, new) == []
    assert tracked_fingerprint(Study.from_record(old)) == tracked_fingerprint(Study.from_record(new))


def test_nct04514484_is_dates_and_enrollment(real_study):
    old = Study.from_record(real_study("study_NCT04514484_rcc_io_2026-02-05.json"))
    new = Study.from_record(real_study("study_NCT04514484_rcc_io_2026-02-10.json"))
    changes = diff_studies(old, new)
    assert [c.kind for c in changes] == [ChangeKind.DATES, ChangeKind.ENROLLMENT]
    dates, enrollment = changes
    assert dates.details["primary_completion"]["before"] == {"date": "2025-11-02", "type": "ESTIMATED"}
    assert dates.details["primary_completion"]["after"] == {"date": "2025-11-02", "type": "ACTUAL"}
    assert dates.details["completion"]["after"]["date"] == "2027-02-04"
    assert enrollment.summary == "Enrollment 18 estimated → 8 actual."
    assert enrollment.details["count"] == {"before": 18, "after": 8}


def test_bookkeeping_noise_on_real_record_gives_nothing(real_study):
    record = real_study("study_NCT05805501_rcc_bispecific_2026-02-16.json")
    noisy = copy.deepcopy(record)
    status = noisy["protocolSection"]["statusModule"]
    status["statusVerifiedDate"] = "2030-01"
    status["lastUpdateSubmitDate"] = "2030-01-02"
    status["lastUpdatePostDateStruct"] = {"date": "2030-01-03", "type": "ACTUAL"}
    noisy["derivedSection"]["miscInfoModule"]["versionHolder"] = "2030-01-04"
    for location in noisy["protocolSection"]["contactsLocationsModule"]["locations"]:
        if "geoPoint" in location:
            location["geoPoint"]["lat"] += 0.001
    assert kinds(record, noisy) == []


def test_removing_one_site_of_the_large_record_is_one_change(real_study):
    record = real_study("study_NCT02513394_with_results_large.json")
    shorter = copy.deepcopy(record)
    removed = shorter["protocolSection"]["contactsLocationsModule"]["locations"].pop(3)
    changes = diff_studies(Study.from_record(record), Study.from_record(shorter))
    assert [c.kind for c in changes] == [ChangeKind.SITES]
    assert [site["facility"] for site in changes[0].details["removed"]] == [removed["facility"]]


# --- our own small fixtures -----------------------------------------------------------------


def test_own_fixture_pair_gives_status_dates_sites():
    changes = diff_studies(
        Study.from_record(own("study_NCT09000001_v1")), Study.from_record(own("study_NCT09000001_v2"))
    )
    assert [c.kind for c in changes] == [ChangeKind.STATUS, ChangeKind.DATES, ChangeKind.SITES]
    assert changes[0].summary.startswith("Status changed from Recruiting to Active, not recruiting")


def test_status_change_carries_why_stopped():
    old = own("study_NCT09000001_v1")
    new = copy.deepcopy(old)
    new["protocolSection"]["statusModule"]["overallStatus"] = "TERMINATED"
    new["protocolSection"]["statusModule"]["whyStopped"] = "Sponsor decision"
    (change,) = diff_studies(Study.from_record(old), Study.from_record(new))
    assert change.kind is ChangeKind.STATUS
    assert change.summary == "Status changed from Recruiting to Terminated: Sponsor decision."
    assert change.details["why_stopped"] == {"before": None, "after": "Sponsor decision"}


def test_month_precision_dates_are_described_without_slip():
    old = own("study_NCT09000001_v1")
    new = copy.deepcopy(old)
    new["protocolSection"]["statusModule"]["completionDateStruct"] = {"date": "2028-01", "type": "ESTIMATED"}
    (change,) = diff_studies(Study.from_record(old), Study.from_record(new))
    assert "slip_days" not in change.details["completion"]
    assert "completion date moved from" in change.summary.lower()


def test_duplicate_site_names_are_counted_not_collapsed():
    old = own("study_NCT09000001_v1")
    locations = old["protocolSection"]["contactsLocationsModule"]["locations"]
    research = {"facility": "Research Site", "city": "Seoul", "country": "Korea, Republic of"}
    locations.extend([dict(research), dict(research)])
    new = copy.deepcopy(old)
    new["protocolSection"]["contactsLocationsModule"]["locations"].pop()
    (change,) = diff_studies(Study.from_record(old), Study.from_record(new))
    assert change.details["removed"] == [research]


# --- properties ---------------------------------------------------------------------------

SITE = st.fixed_dictionaries(
    {
        "facility": st.sampled_from(["Research Site", "Asan Medical Center", "UCLA", "Gustave Roussy"]),
        "city": st.sampled_from(["Seoul", "Paris", "Los Angeles"]),
        "country": st.sampled_from(["France", "United States", "Korea, Republic of"]),
        "geoPoint": st.fixed_dictionaries({"lat": st.floats(-90, 90), "lon": st.floats(-180, 180)}),
    }
)
DATE = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "date": st.dates().map(lambda d: d.isoformat()) | st.sampled_from(["2026-12", "2027"]),
            "type": st.sampled_from(["ACTUAL", "ESTIMATED"]),
        }
    ),
)
STATUS = st.sampled_from(["RECRUITING", "ACTIVE_NOT_RECRUITING", "COMPLETED", "TERMINATED"])


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    status: dict[str, Any] = {"overallStatus": draw(STATUS)}
    for key in ("startDateStruct", "primaryCompletionDateStruct", "completionDateStruct"):
        value = draw(DATE)
        if value:
            status[key] = value
    return {
        "protocolSection": {
            "identificationModule": {"nctId": "NCT09999999", "briefTitle": "Property study"},
            "statusModule": status,
            "designModule": {
                "enrollmentInfo": {
                    "count": draw(st.integers(0, 500)),
                    "type": draw(st.sampled_from(["ACTUAL", "ESTIMATED"])),
                }
            },
            "contactsLocationsModule": {"locations": draw(st.lists(SITE, max_size=8))},
        },
        "hasResults": draw(st.booleans()),
    }


@given(records())
def test_diff_of_a_record_with_itself_is_empty(record):
    assert kinds(record, copy.deepcopy(record)) == []


@given(records(), st.randoms())
def test_reordering_sites_gives_nothing(record, rnd):
    shuffled = copy.deepcopy(record)
    rnd.shuffle(shuffled["protocolSection"]["contactsLocationsModule"]["locations"])
    assert kinds(record, shuffled) == []


FIELDS_OF = {
    ChangeKind.STATUS: lambda s: (s.status, s.why_stopped),
    ChangeKind.RESULTS_POSTED: lambda s: s.has_results,
    ChangeKind.DATES: lambda s: (s.start, s.primary_completion, s.completion),
    ChangeKind.ENROLLMENT: lambda s: (s.enrollment_count, s.enrollment_type),
    ChangeKind.SITES: lambda s: sorted(site.key for site in s.sites),
}


@settings(max_examples=200)
@given(records(), records())
def test_every_change_names_a_field_that_really_differs(a, b):
    old, new = Study.from_record(a), Study.from_record(b)
    changes = diff_studies(old, new)
    for change in changes:
        assert FIELDS_OF[change.kind](old) != FIELDS_OF[change.kind](new)
        assert change.summary.endswith(".")
    if tracked_fingerprint(old) == tracked_fingerprint(new):
        assert changes == []
