"""diff.py: ground truth from real registry version pairs, and properties of the pure diff."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.model import ChangeKind
from watcher.registry.diff import diff_records, record_fingerprint
from watcher.registry.normalize import (
    DEFAULT_IGNORE,
    canonical,
    compact_json,
    get_path,
    prune,
    prune_beside,
    same_json,
)

DATA = Path(__file__).parent / "data"


def own(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())


def kinds(old: dict[str, Any], new: dict[str, Any]) -> list[ChangeKind]:
    return [change.kind for change in diff_records(old, new)]


# --- real version pairs (../shared/BRIEF.md, "The real version pairs") -------------------------


def test_nct05805501_0212_to_0216_is_dates_and_asan_removed(real_study):
    old = real_study("study_NCT05805501_rcc_bispecific_2026-02-12.json")
    new = real_study("study_NCT05805501_rcc_bispecific_2026-02-16.json")
    changes = diff_records(old, new)
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
    assert record_fingerprint(old) == record_fingerprint(new)


def test_nct04514484_is_dates_and_enrollment(real_study):
    old = real_study("study_NCT04514484_rcc_io_2026-02-05.json")
    new = real_study("study_NCT04514484_rcc_io_2026-02-10.json")
    changes = diff_records(old, new)
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
    changes = diff_records(record, shorter)
    assert [c.kind for c in changes] == [ChangeKind.SITES]
    assert [site["facility"] for site in changes[0].details["removed"]] == [removed["facility"]]


def test_results_first_posted_on_a_real_record(real_study):
    posted = real_study("study_NCT00554515_rcc_with_results.json")
    assert posted["hasResults"] is True
    before = copy.deepcopy(posted)
    before["hasResults"] = False
    del before["resultsSection"]
    before["protocolSection"]["statusModule"].pop("resultsFirstPostDateStruct", None)
    before["protocolSection"]["statusModule"].pop("resultsFirstSubmitDate", None)
    (change,) = diff_records(before, posted)
    assert change.kind is ChangeKind.RESULTS_POSTED and change.summary == "Results were posted."
    assert diff_records(posted, copy.deepcopy(posted)) == []
    updated = copy.deepcopy(posted)
    updated["resultsSection"]["moreInfoModule"]["pointOfContact"]["title"] = "Another contact"
    (change,) = diff_records(posted, updated)
    assert (change.kind, change.summary) == (ChangeKind.OTHER, "Posted results were updated: moreInfoModule.")


# --- our own small fixtures -----------------------------------------------------------------


def test_own_fixture_pair_gives_status_dates_sites():
    changes = diff_records(own("study_NCT09000001_v1"), own("study_NCT09000001_v2"))
    assert [c.kind for c in changes] == [ChangeKind.STATUS, ChangeKind.DATES, ChangeKind.SITES]
    assert changes[0].summary.startswith("Status changed from Recruiting to Active, not recruiting")


def test_status_change_carries_why_stopped():
    old = own("study_NCT09000001_v1")
    new = copy.deepcopy(old)
    new["protocolSection"]["statusModule"]["overallStatus"] = "TERMINATED"
    new["protocolSection"]["statusModule"]["whyStopped"] = "Sponsor decision"
    (change,) = diff_records(old, new)
    assert change.kind is ChangeKind.STATUS
    assert change.summary == "Status changed from Recruiting to Terminated: Sponsor decision."
    assert change.details["why_stopped"] == {"before": None, "after": "Sponsor decision"}


def test_month_precision_dates_are_described_without_slip():
    old = own("study_NCT09000001_v1")
    new = copy.deepcopy(old)
    new["protocolSection"]["statusModule"]["completionDateStruct"] = {"date": "2028-01", "type": "ESTIMATED"}
    (change,) = diff_records(old, new)
    assert "slip_days" not in change.details["completion"]
    assert "completion date moved from" in change.summary.lower()


def test_duplicate_site_names_are_counted_not_collapsed():
    old = own("study_NCT09000001_v1")
    locations = old["protocolSection"]["contactsLocationsModule"]["locations"]
    research = {"facility": "Research Site", "city": "Seoul", "country": "Korea, Republic of"}
    locations.extend([dict(research), dict(research)])
    new = copy.deepcopy(old)
    new["protocolSection"]["contactsLocationsModule"]["locations"].pop()
    (change,) = diff_records(old, new)
    assert change.details["removed"] == [research]


def test_new_kinds_on_own_fixture():
    old = own("study_NCT09000001_v1")
    new = copy.deepcopy(old)
    protocol = new["protocolSection"]
    protocol.setdefault("armsInterventionsModule", {}).setdefault("interventions", []).append(
        {"type": "DRUG", "name": "Volrustomig"}
    )
    protocol.setdefault("designModule", {})["phases"] = ["PHASE3"]
    protocol.setdefault("sponsorCollaboratorsModule", {})["leadSponsor"] = {"name": "New Sponsor Ltd"}
    protocol["identificationModule"]["briefTitle"] = "A renamed study"
    protocol.setdefault("eligibilityModule", {})["minimumAge"] = "21 Years"
    protocol.setdefault("outcomesModule", {}).setdefault("primaryOutcomes", []).append({"measure": "Overall survival"})
    protocol.setdefault("conditionsModule", {})["keywords"] = ["a brand new keyword"]
    changes = {change.kind: change for change in diff_records(old, new)}
    assert set(changes) == {
        ChangeKind.ARMS,
        ChangeKind.PHASE,
        ChangeKind.SPONSOR,
        ChangeKind.TITLE,
        ChangeKind.ELIGIBILITY,
        ChangeKind.OUTCOMES,
        ChangeKind.OTHER,
    }
    assert changes[ChangeKind.ARMS].summary == "Intervention added: drug: Volrustomig."
    assert changes[ChangeKind.TITLE].summary == "Title changed to: A renamed study."
    assert "minimum age" in changes[ChangeKind.ELIGIBILITY].summary
    assert changes[ChangeKind.OUTCOMES].details["primary"]["added"] == ["Overall survival"]
    assert "conditionsModule.keywords" in changes[ChangeKind.OTHER].summary
    assert "New Sponsor Ltd" in changes[ChangeKind.SPONSOR].summary


def test_site_recruiting_status_change_names_the_site(real_study):
    old = real_study("study_NCT05805501_rcc_bispecific_2026-02-16.json")
    new = copy.deepcopy(old)
    site = new["protocolSection"]["contactsLocationsModule"]["locations"][0]
    site["status"] = "COMPLETED" if site.get("status") != "COMPLETED" else "RECRUITING"
    (change,) = diff_records(old, new)
    assert change.kind is ChangeKind.SITES
    (moved,) = change.details["status_changed"]
    assert (moved["facility"], moved["after"]) == (site["facility"], site["status"])
    assert site["facility"] in change.summary


def test_an_escape_only_edit_of_why_stopped_is_noise():
    old = own("study_NCT09000001_v1")
    old["protocolSection"]["statusModule"].update(overallStatus="TERMINATED", whyStopped="Sponsor decision (portfolio)")
    new = copy.deepcopy(old)
    new["protocolSection"]["statusModule"]["whyStopped"] = "Sponsor decision \\(portfolio\\)"
    assert kinds(old, new) == []


def test_a_respelt_city_of_the_same_site_is_noise_unless_its_status_moved(real_study):
    old = real_study("study_NCT05805501_rcc_bispecific_2026-02-16.json")
    new = copy.deepcopy(old)
    site = new["protocolSection"]["contactsLocationsModule"]["locations"][0]
    site["city"] = site["city"].upper() + " City"
    assert kinds(old, new) == []
    site["status"] = "WITHDRAWN"
    (change,) = diff_records(old, new)
    assert change.kind is ChangeKind.SITES and change.details["added"] == change.details["removed"] == []
    moved = copy.deepcopy(old)
    moved["protocolSection"]["contactsLocationsModule"]["locations"][0]["city"] = "Reykjavik"
    (change,) = diff_records(old, moved)
    assert len(change.details["added"]) == len(change.details["removed"]) == 1  # a real move: not paired


def test_whitespace_and_markdown_escape_edits_are_noise(real_study):
    record = real_study("study_NCT05805501_rcc_bispecific_2026-02-16.json")
    edited = copy.deepcopy(record)
    module = edited["protocolSection"]["eligibilityModule"]
    criteria = module["eligibilityCriteria"]
    module["eligibilityCriteria"] = criteria.replace(" ", "  ").replace("\\[", "[").replace("\\>", ">")
    edited["protocolSection"]["identificationModule"]["briefTitle"] += "  "
    assert module["eligibilityCriteria"] != record["protocolSection"]["eligibilityModule"]["eligibilityCriteria"]
    assert kinds(record, edited) == []


def test_ignore_fields_are_configurable(real_study):
    record = real_study("study_NCT05805501_rcc_bispecific_2026-02-16.json")
    edited = copy.deepcopy(record)
    edited["protocolSection"]["identificationModule"]["briefTitle"] = "Changed"
    assert kinds(record, edited) == [ChangeKind.TITLE]
    ignore = (*DEFAULT_IGNORE, "protocolSection.identificationModule.briefTitle")
    assert diff_records(record, edited, ignore) == []
    noisy = copy.deepcopy(record)
    noisy["derivedSection"]["miscInfoModule"]["versionHolder"] = "2031-01-01"
    assert [c.kind for c in diff_records(record, noisy, ignore=())] == [ChangeKind.OTHER]


def test_every_real_record_diffed_with_itself_and_reordered_is_empty(real_fixtures_dir):
    import random

    for path in sorted((real_fixtures_dir / "ctgov").glob("study_*.json")):
        record = json.loads(path.read_text())
        shuffled = _shuffle_lists(copy.deepcopy(record), random.Random(path.name))
        assert diff_records(record, shuffled) == [], path.name
        assert record_fingerprint(record) == record_fingerprint(shuffled)


def _shuffle_lists(value: Any, rnd: Any) -> Any:
    if isinstance(value, dict):
        return {key: _shuffle_lists(item, rnd) for key, item in value.items()}
    if isinstance(value, list):
        items = [_shuffle_lists(item, rnd) for item in value]
        rnd.shuffle(items)
        return items
    return value


# --- properties ---------------------------------------------------------------------------

SITE = st.fixed_dictionaries(
    {
        "facility": st.sampled_from(["Research Site", "Asan Medical Center", "UCLA", "Gustave Roussy"]),
        "city": st.sampled_from(["Seoul", "Paris", "Los Angeles"]),
        "country": st.sampled_from(["France", "United States", "Korea, Republic of"]),
        "status": st.sampled_from(["RECRUITING", "COMPLETED"]),
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
WORD = st.sampled_from(["alpha", "beta", "gamma", "PD-1 \\[x\\]", "CAR-T"])
ARM = st.fixed_dictionaries({"label": WORD, "type": st.sampled_from(["EXPERIMENTAL", "ACTIVE_COMPARATOR"])})
DRUG = st.fixed_dictionaries({"type": st.sampled_from(["DRUG", "BIOLOGICAL"]), "name": WORD})
OUTCOME = st.fixed_dictionaries({"measure": WORD, "timeFrame": st.sampled_from(["1 year", "2 years"])})


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    status: dict[str, Any] = {
        "overallStatus": draw(STATUS),
        "lastUpdatePostDateStruct": {"date": draw(st.dates()).isoformat()},
        "statusVerifiedDate": draw(st.sampled_from(["2026-01", "2026-02"])),
    }
    if draw(st.booleans()):
        status["whyStopped"] = draw(WORD)
    for key in ("startDateStruct", "primaryCompletionDateStruct", "completionDateStruct"):
        value = draw(DATE)
        if value:
            status[key] = value
    return {
        "protocolSection": {
            "identificationModule": {"nctId": "NCT09999999", "briefTitle": draw(WORD)},
            "statusModule": status,
            "sponsorCollaboratorsModule": {
                "leadSponsor": {"name": draw(WORD)},
                "collaborators": [{"name": name} for name in draw(st.lists(WORD, max_size=3, unique=True))],
            },
            "designModule": {
                "phases": draw(st.lists(st.sampled_from(["PHASE1", "PHASE2", "PHASE3"]), max_size=2, unique=True)),
                "enrollmentInfo": {
                    "count": draw(st.integers(0, 500)),
                    "type": draw(st.sampled_from(["ACTUAL", "ESTIMATED"])),
                },
            },
            "armsInterventionsModule": {
                "armGroups": draw(st.lists(ARM, max_size=3)),
                "interventions": draw(st.lists(DRUG, max_size=3)),
            },
            "outcomesModule": {"primaryOutcomes": draw(st.lists(OUTCOME, max_size=3))},
            "eligibilityModule": {"sex": draw(st.sampled_from(["ALL", "MALE"])), "minimumAge": draw(WORD)},
            "conditionsModule": {"keywords": draw(st.lists(WORD, max_size=3))},
            "contactsLocationsModule": {"locations": draw(st.lists(SITE, max_size=8))},
        },
        "derivedSection": {"miscInfoModule": {"versionHolder": draw(st.dates()).isoformat()}},
        "hasResults": draw(st.booleans()),
    }


@given(records())
def test_diff_of_a_record_with_itself_is_empty(record):
    assert kinds(record, copy.deepcopy(record)) == []


@given(records(), st.randoms())
def test_reordering_any_list_gives_nothing(record, rnd):
    assert kinds(record, _shuffle_lists(copy.deepcopy(record), rnd)) == []


STATUS_MODULE = "protocolSection.statusModule"
PATHS_OF = {
    ChangeKind.STATUS: (f"{STATUS_MODULE}.overallStatus", f"{STATUS_MODULE}.whyStopped"),
    ChangeKind.RESULTS_POSTED: ("hasResults",),
    ChangeKind.DATES: tuple(
        f"{STATUS_MODULE}.{k}" for k in ("startDateStruct", "primaryCompletionDateStruct", "completionDateStruct")
    ),
    ChangeKind.ENROLLMENT: ("protocolSection.designModule.enrollmentInfo",),
    ChangeKind.SITES: ("protocolSection.contactsLocationsModule.locations",),
    ChangeKind.ARMS: ("protocolSection.armsInterventionsModule",),
    ChangeKind.ELIGIBILITY: ("protocolSection.eligibilityModule",),
    ChangeKind.OUTCOMES: ("protocolSection.outcomesModule",),
    ChangeKind.PHASE: ("protocolSection.designModule.phases",),
    ChangeKind.SPONSOR: ("protocolSection.sponsorCollaboratorsModule",),
    ChangeKind.TITLE: ("protocolSection.identificationModule.briefTitle",),
    ChangeKind.OTHER: ("protocolSection.conditionsModule", "hasResults", "resultsSection"),
}


@settings(max_examples=300)
@given(records(), records())
def test_every_change_names_a_field_that_really_differs(a, b):
    changes = diff_records(a, b)
    old, new = prune(a, DEFAULT_IGNORE), prune(b, DEFAULT_IGNORE)
    for change in changes:
        paths = PATHS_OF[change.kind]
        assert any(canonical(get_path(old, p)) != canonical(get_path(new, p)) for p in paths), change
        assert change.summary.endswith(".")
    assert len({(change.kind, change.summary) for change in changes}) == len(changes)
    if record_fingerprint(a) == record_fingerprint(b):
        assert changes == []
    else:
        assert changes, "fingerprints differ but the diff found nothing"


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 2)
    | st.sampled_from([0.0, -0.0, 1.0, 0.5])
    | st.sampled_from(["a", " a", "\\[a"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "a.b"]), inner, max_size=3),
    max_leaves=8,
)


SCALARS = [True, 1, 1.0, 2, False, 0, 0.0, -0.0, -0.5]


@st.composite
def equal_twins(draw: st.DrawFn) -> tuple[Any, Any]:
    """Two values equal under == whose scalars may differ in type (True and 1, 0.0 and -0.0)."""
    value = draw(JSON | st.lists(st.sampled_from(SCALARS), max_size=4))
    twin = _retyped(copy.deepcopy(value), draw)
    return value, twin


def _retyped(value: Any, draw: st.DrawFn) -> Any:
    if isinstance(value, dict):
        return {key: _retyped(item, draw) for key, item in value.items()}
    if isinstance(value, list):
        return [_retyped(item, draw) for item in value]
    if isinstance(value, int | float):
        return draw(st.sampled_from([value, *(s for s in SCALARS if s == value)]))
    return value


@settings(max_examples=500)
@given(JSON, JSON, equal_twins())
def test_the_same_json_is_the_same_canonical_form(a, b, twins):
    """The diff skips canonicalising what same_json says is equal: never wrongly (1, True, 1.0 differ)."""
    for x, y in ((a, b), twins):
        if same_json(x, y):
            assert canonical(x) == canonical(y)
    assert same_json(a, copy.deepcopy(a))


IGNORE_SETS = [DEFAULT_IGNORE, (), ("*.geoPoint", "protocolSection.statusModule"), ("*Date*", "*.name")]


@settings(max_examples=300)
@given(records(), records(), st.sampled_from(IGNORE_SETS), st.integers(0, 500))
def test_pruning_beside_another_version_is_pruning(a, b, ignore, count):
    """prune_beside shares what two versions have the same: the result is prune's, key order too."""
    changed = copy.deepcopy(a)
    changed["protocolSection"]["designModule"]["enrollmentInfo"]["count"] = count
    changed["derivedSection"]["miscInfoModule"]["versionHolder"] = "2027-01-01"
    for old, new in ((a, b), (a, changed), (changed, a)):
        assert compact_json(prune_beside(new, old, prune(old, ignore), ignore)) == compact_json(prune(new, ignore))
