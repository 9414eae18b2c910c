"""Issue #14, "same results": the registry pipeline before (tests/reference_pipeline.py, the old
code path kept verbatim) and after (watcher/registry/pipeline.py) store the same versions, find
the same changes and owe the same alerts, on the real version pairs of ../shared/fixtures and on
hypothesis-made records; a database written by the old path (its canonical fingerprints) gives
no version and no alert when the new path polls it; overlapping watches store a study once."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import col, select

from tests import reference_pipeline
from tests.test_diff import records
from watcher.config import ClinicalTrialsConfig
from watcher.registry import pipeline
from watcher.registry.client import CtgovClient
from watcher.registry.diff import diff_records, record_fingerprint
from watcher.registry.normalize import (
    DEFAULT_IGNORE,
    _digest_view,
    _ignore_pattern,
    _path_tree,
    _prune,
    compact_json,
    content_digest,
    prune,
)
from watcher.store import db, repo
from watcher.store.models import ChangeRow, Notification, StudyRow, StudyVersion, WatchState, WatchStudy
from watcher.watch import WatchConfig

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WATCHES = (
    WatchConfig(name="RCC", conditions=["renal cell carcinoma"], recipients=["onc@example.org", "b@example.org"]),
    WatchConfig(name="RCC ids", terms=["bispecific"], nct_ids=["NCT05805501"], recipients=["onc@example.org"]),
)
POLLS = {"old": reference_pipeline.poll_watch, "new": pipeline.poll_watch}


class Side:
    """One database polled by one code path."""

    def __init__(self, path: str, database: Path, base_url: str, ignore: tuple[str, ...] = DEFAULT_IGNORE) -> None:
        self.poll_watch, self.ignore = POLLS[path], ignore
        self.engine = db.make_engine(f"sqlite:///{database}")
        self.client = CtgovClient(ClinicalTrialsConfig(base_url=base_url, requests_per_second=0, page_size=3))

    def report(self, watch: WatchConfig, mode: str, now: datetime, **options: Any) -> Any:
        plan = pipeline.Plan(mode, since=date(2000, 1, 1) if mode == "incremental" else None)
        return self.poll_watch(
            engine=self.engine, client=self.client, watch=watch, plan=plan, now=now, ignore=self.ignore, **options
        )

    def poll(self, watch: WatchConfig, mode: str, now: datetime) -> tuple[Any, ...]:
        report = self.report(watch, mode, now)
        return report.mode, report.studies, report.changes, report.kinds, report.error


def snapshot(engine: Any) -> dict[str, Any]:
    """Everything a poll stores, with database ids replaced by what they stand for (the
    fingerprint strings are left out: they are what changed)."""
    with db.transaction(engine) as session:
        versions = list(session.exec(select(StudyVersion).order_by(col(StudyVersion.nct_id), col(StudyVersion.id))))
        number = {v.id: (v.nct_id, sum(1 for w in versions if w.nct_id == v.nct_id and (w.id or 0) < (v.id or 0)))
                  for v in versions}  # fmt: skip
        changes = list(session.exec(select(ChangeRow).order_by(col(ChangeRow.id))))
        change_number = {change.id: n for n, change in enumerate(changes)}
        return {
            "versions": [(v.nct_id, repo.unpack_record(v.record), v.last_update_posted, v.seen_at) for v in versions],
            "studies": [
                (
                    s.nct_id,
                    s.title,
                    s.status,
                    s.phase,
                    s.last_update_posted,
                    number.get(s.version_id),
                    s.first_seen_at,
                    s.changed_at,
                )
                for s in session.exec(select(StudyRow).order_by(col(StudyRow.nct_id)))
            ],  # fmt: skip
            "links": sorted(
                (link.watch, link.nct_id, number[link.version_id], link.matched_at)
                for link in session.exec(select(WatchStudy))
            ),
            "changes": [(c.watch, c.kind, c.nct_id, c.title, c.summary, c.details, c.detected_at) for c in changes],
            "alerts": sorted((change_number[n.change_id], n.recipient) for n in session.exec(select(Notification))),
            "states": [
                (s.name, s.query_signature, s.baseline_at, s.last_full_at, s.last_success_at, s.last_error)
                for s in session.exec(select(WatchState).order_by(col(WatchState.name)))
            ],
        }


@pytest.fixture
def template(tmp_path: Path) -> Path:
    """A migrated SQLite database to copy (migrating once per test, not once per example)."""
    path = tmp_path / "template.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    return path


def sides(
    template: Path, folder: Path, base_url: str, paths: tuple[str, ...] = ("old", "new"), ignore: Any = DEFAULT_IGNORE
) -> list[Side]:
    made = []
    for n, path in enumerate(paths):
        database = folder / f"{path}-{n}.db"
        shutil.copy(template, database)
        made.append(Side(path, database, base_url, ignore))
    return made


def run_steps(registry: Any, both: list[Side], steps: list[tuple[Callable[[], None], list[tuple[int, str]]]]) -> None:
    """Each step changes the registry, then polls (watch, mode) on both sides; every report and
    everything stored must agree after every step."""
    for day, (change_registry, polls) in enumerate(steps):
        change_registry()
        now = T0 + timedelta(days=day)
        for watch, mode in polls:
            reports = [side.poll(WATCHES[watch], mode, now) for side in both]
            assert reports[0] == reports[1], (day, watch, mode)
        old, new = (snapshot(side.engine) for side in both)
        for key in old:
            assert old[key] == new[key], (day, key)


def test_real_version_pairs_give_the_same_versions_changes_and_alerts(registry, real_study, template, tmp_path):
    def put(*names: str) -> Callable[[], None]:
        return lambda: [registry.put(real_study(name)) for name in names]  # type: ignore[func-returns-value]

    both = sides(template, tmp_path, registry.base_url)
    run_steps(
        registry,
        both,
        [
            (put("study_NCT05805501_rcc_bispecific_2026-02-12.json", "study_NCT04514484_rcc_io_2026-02-05.json",
                 "study_NCT00554515_rcc_with_results.json"),
             [(0, "baseline"), (1, "baseline")]),
            (put("study_NCT05805501_rcc_bispecific_2026-02-16.json", "study_NCT04514484_rcc_io_2026-02-10.json"),
             [(0, "full"), (1, "incremental")]),
            (put("study_NCT05805501_rcc_bispecific_2026-02-18.json", "study_NCT05127824_kidney_cancer_recruiting.json"),
             [(1, "full"), (0, "incremental")]),
            (lambda: registry.remove("NCT00554515"), [(0, "full"), (1, "full")]),
        ],
    )  # fmt: skip
    changes = snapshot(both[1].engine)["changes"]
    assert [(c[0], c[1], c[2]) for c in changes] == [
        ("RCC", "dates", "NCT05805501"), ("RCC", "sites", "NCT05805501"),
        ("RCC", "dates", "NCT04514484"), ("RCC", "enrollment", "NCT04514484"),
        ("RCC ids", "dates", "NCT05805501"), ("RCC ids", "sites", "NCT05805501"),
        ("RCC ids", "dates", "NCT04514484"), ("RCC ids", "enrollment", "NCT04514484"),
        ("RCC ids", "new_study", "NCT05127824"), ("RCC", "new_study", "NCT05127824"),
        ("RCC", "no_longer_matching", "NCT00554515"), ("RCC ids", "no_longer_matching", "NCT00554515"),
    ]  # fmt: skip


def renumbered(record: dict[str, Any], nct_id: str) -> dict[str, Any]:
    record = copy.deepcopy(record)
    record["protocolSection"]["identificationModule"]["nctId"] = nct_id
    return record


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(records(), min_size=2, max_size=4),
    records(),
    st.sampled_from(["full", "incremental"]),
    st.sampled_from([DEFAULT_IGNORE, ()]),
)
def test_hypothesis_records_give_the_same_results(registry, template, tmp_path_factory, history, other, mode, ignore):
    registry.studies.clear()
    both = sides(template, tmp_path_factory.mktemp("same"), registry.base_url, ignore=ignore)
    steps = [(lambda: registry.put(renumbered(other, "NCT09000002")), [])]
    for version in history:
        steps.append((lambda version=version: registry.put(renumbered(version, "NCT09000001")), []))
    polls = [[(0, "baseline"), (1, "baseline")]] + [[(0, mode), (1, "full")]] * len(history)
    run_steps(registry, both, [(change, polls[n]) for n, (change, _) in enumerate(steps)])


def test_a_database_written_by_the_old_path_gives_no_version_and_no_alert(registry, real_study, template, tmp_path):
    """Fingerprints stored by an older trialwatch (canonical) differ from the new digests: the
    first new poll diffs, finds nothing, and refreshes them silently."""
    (old,) = sides(template, tmp_path, registry.base_url, paths=("old",))
    registry.put(real_study("study_NCT05805501_rcc_bispecific_2026-02-16.json"))
    registry.put(real_study("study_NCT04514484_rcc_io_2026-02-10.json"))
    old.poll(WATCHES[0], "baseline", T0)
    assert fingerprints(old.engine) == {n: record_fingerprint(r, DEFAULT_IGNORE) for n, r in registry.studies.items()}
    new = Side("new", tmp_path / "old-0.db", registry.base_url)  # the same database, upgraded trialwatch
    before = snapshot(new.engine)
    registry.put(real_study("study_NCT05805501_rcc_bispecific_2026-02-18.json"))  # versionHolder only
    assert new.poll(WATCHES[0], "full", T0 + timedelta(days=1))[:4] == ("full", 2, 0, {})
    after = snapshot(new.engine)
    assert after["versions"] == before["versions"] and after["changes"] == [] and after["alerts"] == []
    assert fingerprints(new.engine) == {n: content_digest(r, DEFAULT_IGNORE) for n, r in registry.studies.items()}
    assert new.report(WATCHES[0], "full", T0 + timedelta(days=2)).sorted == {"quiet": 2}
    registry.put(real_study("study_NCT04514484_rcc_io_2026-02-05.json"))  # a real change still alerts
    assert new.poll(WATCHES[0], "full", T0 + timedelta(days=3))[3] == {"dates": 1, "enrollment": 1}


def test_a_rewritten_geopoint_alone_costs_one_diff_and_stores_nothing(registry, real_study, template, tmp_path):
    """The content digest leaves `*.geoPoint` in (see normalize): NLM re-geocoding a site makes the
    digest differ, the study takes the per-study path once, the diff finds nothing, the stored
    fingerprint is refreshed silently and the next poll is quiet again."""
    (new,) = sides(template, tmp_path, registry.base_url, paths=("new",))
    record = real_study("study_NCT05805501_rcc_bispecific_2026-02-16.json")
    registry.put(record)
    new.poll(WATCHES[0], "baseline", T0)
    before = snapshot(new.engine)
    moved = copy.deepcopy(record)
    site = next(s for s in moved["protocolSection"]["contactsLocationsModule"]["locations"] if s.get("geoPoint"))
    site["geoPoint"] = {"lat": site["geoPoint"]["lat"] + 0.0001, "lon": site["geoPoint"]["lon"]}
    assert content_digest(moved) != content_digest(record) and prune(moved) == prune(record)
    registry.put(moved)
    report = new.report(WATCHES[0], "full", T0 + timedelta(days=1))
    assert (report.sorted, report.changes) == ({"full": 1}, 0)
    after = snapshot(new.engine)
    assert after["versions"] == before["versions"] and after["changes"] == [] and after["alerts"] == []
    assert fingerprints(new.engine) == {"NCT05805501": content_digest(moved)}
    assert new.report(WATCHES[0], "full", T0 + timedelta(days=2)).sorted == {"quiet": 1}


def fingerprints(engine: Any) -> dict[str, str]:
    with db.transaction(engine) as session:
        return {row.nct_id: row.fingerprint for row in session.exec(select(StudyRow))}


def test_overlapping_watches_store_each_study_once(registry, real_study, template, tmp_path):
    (new,) = sides(template, tmp_path, registry.base_url, paths=("new",))
    registry.put(real_study("study_NCT05805501_rcc_bispecific_2026-02-16.json"))
    registry.put(real_study("study_NCT04514484_rcc_io_2026-02-10.json"))
    same_query = [WATCHES[0].model_copy(update={"name": f"watch {n}"}) for n in range(3)]
    reports = [new.report(watch, "baseline", T0) for watch in same_query]
    assert [r.sorted for r in reports] == [{"new": 2}, {"link": 2}, {"link": 2}]
    stored = snapshot(new.engine)
    assert len(stored["versions"]) == 2 and len(stored["links"]) == 6
    registry.put(real_study("study_NCT05805501_rcc_bispecific_2026-02-18.json"))  # versionHolder only
    reports = [new.report(watch, "full", T0 + timedelta(days=1)) for watch in same_query]
    assert [(r.sorted, r.changes) for r in reports] == [({"quiet": 2}, 0)] * 3
    assert len(snapshot(new.engine)["versions"]) == 2


@settings(max_examples=200)
@given(records(), records(), st.sampled_from([DEFAULT_IGNORE, (), ("*.geoPoint", "protocolSection.statusModule")]))
def test_equal_content_digests_mean_the_diff_finds_nothing(a, b, ignore):
    if content_digest(a, ignore) == content_digest(b, ignore):
        assert prune(a, ignore) == prune(b, ignore)
        assert diff_records(a, b, ignore) == []
    assert content_digest(a, ignore) == content_digest(copy.deepcopy(a), ignore)


PATTERN_SETS = [
    DEFAULT_IGNORE,
    (),
    ("*.geoPoint",),
    ("*.geoPoint", "protocolSection.statusModule"),
    ("*Date*", "*.name"),
    ("protocolSection.*.date", "*.a.b", "*.", "hasResults"),
    ("derivedSection", "*.lat", "*.status", "protocolSection.contactsLocationsModule.locations.city"),
]


@settings(max_examples=300)
@given(records(), st.sampled_from(PATTERN_SETS))
def test_the_digest_prunes_exactly_what_prune_prunes(record, ignore):
    """content_digest walks only the paths that lead to an ignored field: the same result."""
    view = _digest_view(record, _path_tree(tuple(ignore)))
    assert view == _prune(record, _ignore_pattern(tuple(ignore)), "")
    assert compact_json(view) == compact_json(_prune(record, _ignore_pattern(tuple(ignore)), ""))


def test_the_digest_prunes_the_real_records_exactly(real_fixtures_dir):
    for path in sorted((real_fixtures_dir / "ctgov").glob("study_*.json")):
        record = json.loads(path.read_text())
        for ignore in PATTERN_SETS:
            expected = _prune(record, _ignore_pattern(tuple(ignore)), "")
            assert compact_json(_digest_view(record, _path_tree(tuple(ignore)))) == compact_json(expected), path.name
