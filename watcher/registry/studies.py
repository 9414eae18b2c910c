"""A study as the browser shows it: the record now, every stored version with the changes from the
one before (diff_records with the configured ignore list: the mail's noise rules), the facts the
chart draws (dates, estimated or actual, and enrollment), its sites with the date each was added
or removed, and the diff between any two stored versions.

Diffing a 1.5 MB record takes about 0.2 s, so each version's changes and facts are computed once
and cached on the version (`study_version.summary`, keyed by the ignore list); a page reads the
cache and unpacks only the newest record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from watcher.model import ChangeKind, DatePoint, FieldChange, Site, Study
from watcher.registry.diff import diff_records
from watcher.registry.landscape import facts_of
from watcher.store import repo, timeline
from watcher.store.timeline import VersionMeta


@dataclass(frozen=True)
class VersionFacts:
    """What the chart draws for one version."""

    status: str
    start: DatePoint
    primary_completion: DatePoint
    completion: DatePoint
    enrollment_count: int | None
    enrollment_type: str | None

    @classmethod
    def of(cls, study: Study) -> VersionFacts:
        return cls(
            status=study.status, start=study.start, primary_completion=study.primary_completion,
            completion=study.completion, enrollment_count=study.enrollment_count,
            enrollment_type=study.enrollment_type,
        )  # fmt: skip

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "start": self.start.as_dict(),
            "primary_completion": self.primary_completion.as_dict(),
            "completion": self.completion.as_dict(),
            "enrollment": {"count": self.enrollment_count, "type": self.enrollment_type},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VersionFacts:
        enrollment = data.get("enrollment") or {}
        return cls(
            status=data.get("status") or "UNKNOWN",
            start=DatePoint.from_struct(data.get("start")),
            primary_completion=DatePoint.from_struct(data.get("primary_completion")),
            completion=DatePoint.from_struct(data.get("completion")),
            enrollment_count=enrollment.get("count"),
            enrollment_type=enrollment.get("type"),
        )


@dataclass(frozen=True)
class VersionView:
    meta: VersionMeta
    facts: VersionFacts
    changes: tuple[FieldChange, ...]  # from the version before (none for the first)


@dataclass(frozen=True)
class SiteView:
    site: Site
    added_at: datetime | None  # None: there since the first stored version
    removed_at: datetime | None  # None: still listed


@dataclass(frozen=True)
class StudyView:
    study: Study  # the newest stored version
    sponsor: str
    versions: tuple[VersionView, ...]
    sites: tuple[SiteView, ...]


def ignore_signature(ignore: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ignore).encode()).hexdigest()[:16]


def study_view(*, session: Session, nct_id: str, ignore: Sequence[str]) -> StudyView | None:
    """The study page's data; None when no version of the study is stored."""
    versions = _version_views(session=session, nct_id=nct_id, ignore=ignore)
    if not versions:
        return None
    newest = timeline.version_blobs(session=session, nct_id=nct_id, version_ids=[versions[-1].meta.id])
    record = repo.unpack_record(newest[versions[-1].meta.id])
    study = Study.from_record(record)
    sponsor = (
        ((record.get("protocolSection") or {}).get("sponsorCollaboratorsModule") or {}).get("leadSponsor") or {}
    ).get("name") or ""
    return StudyView(study=study, sponsor=sponsor, versions=versions, sites=site_history(study, versions))


def _version_views(*, session: Session, nct_id: str, ignore: Sequence[str]) -> tuple[VersionView, ...]:
    """Every version with its cached summary; stale or missing summaries computed and cached."""
    signature = ignore_signature(ignore)
    stored = timeline.version_summaries(session=session, nct_id=nct_id)
    stale = [i for i, (_, summary) in enumerate(stored) if not summary or summary.get("ignore") != signature]
    if stale:
        needed = {stored[j][0].id for i in stale for j in (i - 1, i) if j >= 0}
        blobs = timeline.version_blobs(session=session, nct_id=nct_id, version_ids=sorted(needed))
        computed = {}
        for i in stale:
            before = repo.unpack_record(blobs[stored[i - 1][0].id]) if i > 0 else None
            computed[stored[i][0].id] = summarize(before, repo.unpack_record(blobs[stored[i][0].id]), ignore)
        timeline.save_version_summaries(session=session, summaries=computed)
        stored = [(meta, computed.get(meta.id, summary)) for meta, summary in stored]
    return tuple(_view(meta, summary or {}) for meta, summary in stored)


def summarize(before: dict[str, Any] | None, after: dict[str, Any], ignore: Sequence[str]) -> dict[str, Any]:
    """A version's cache entry: its facts and the changes from `before` (the version before it)."""
    changes = diff_records(before, after, ignore) if before is not None else []
    return study_summary(Study.from_record(after), changes, ignore, after)


def study_summary(
    study: Study, changes: Sequence[FieldChange], ignore: Sequence[str], record: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A version's cache entry from changes already computed (the poll that stored it); with the
    `record`, also its facts for a watch's landscape (registry.landscape, #21)."""
    summary = {
        "ignore": ignore_signature(ignore),
        "facts": VersionFacts.of(study).as_json(),
        "changes": [{"kind": str(c.kind), "summary": c.summary, "details": c.details} for c in changes],
    }
    if record is not None:
        summary["landscape"] = facts_of(record)
    return summary


def first_summary(study: Study, ignore: Sequence[str], record: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The cache entry of a study's first version (no changes), from the study already read."""
    return study_summary(study, [], ignore, record)


def _view(meta: VersionMeta, summary: dict[str, Any]) -> VersionView:
    changes = tuple(
        FieldChange(ChangeKind(c["kind"]), c["summary"], c.get("details") or {}) for c in summary.get("changes", [])
    )
    return VersionView(meta=meta, facts=VersionFacts.from_json(summary.get("facts") or {}), changes=changes)


def site_history(study: Study, versions: Sequence[VersionView]) -> tuple[SiteView, ...]:
    """The sites listed now, and those removed since the first stored version, with the date each
    was added or removed (from the `sites` changes between consecutive versions)."""
    added: dict[tuple[str, str, str], datetime] = {}
    removed: dict[tuple[str, str, str], tuple[Site, datetime]] = {}
    for version in versions[1:]:
        for change in version.changes:
            if change.kind is not ChangeKind.SITES:
                continue
            for entry in change.details.get("added") or []:
                site = _site(entry)
                added[site.key] = version.meta.seen_at
                removed.pop(site.key, None)
            for entry in change.details.get("removed") or []:
                site = _site(entry)
                removed[site.key] = (site, version.meta.seen_at)
    now = [SiteView(site=s, added_at=added.get(s.key), removed_at=None) for s in study.sites]
    listed = {s.key for s in study.sites}
    gone = [
        SiteView(site=site, added_at=added.get(key), removed_at=when)
        for key, (site, when) in removed.items()
        if key not in listed
    ]
    return tuple(now + sorted(gone, key=lambda view: view.removed_at or datetime.min))


def _site(entry: dict[str, Any]) -> Site:
    return Site(facility=entry.get("facility") or "", city=entry.get("city") or "", country=entry.get("country") or "")


@dataclass(frozen=True)
class VersionDiff:
    nct_id: str
    old: VersionMeta
    new: VersionMeta
    changes: tuple[FieldChange, ...]


def version_diff(
    *, session: Session, nct_id: str, from_id: int, to_id: int, ignore: Sequence[str]
) -> VersionDiff | None:
    """The meaningful changes between two stored versions of one study; None when either is not
    a version of this study."""
    metas = {meta.id: meta for meta in timeline.version_list(session=session, nct_id=nct_id)}
    if from_id not in metas or to_id not in metas:
        return None
    blobs = timeline.version_blobs(session=session, nct_id=nct_id, version_ids=[from_id, to_id])
    old, new = repo.unpack_record(blobs[from_id]), repo.unpack_record(blobs[to_id])
    changes = tuple(diff_records(old, new, ignore)) if from_id != to_id else ()
    return VersionDiff(nct_id=nct_id, old=metas[from_id], new=metas[to_id], changes=changes)


def side_by_side(change: FieldChange) -> list[tuple[str, str, str]]:
    """(field, before, after) rows for a change, read from its details: {"before", "after"} pairs,
    lists of things added or removed, sites whose status changed, named arms and outcomes."""
    return _rows("", change.details)


def _rows(prefix: str, details: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    for key, value in details.items():
        label = f"{prefix}{key}".replace("_", " ")
        if isinstance(value, dict) and ("before" in value or "after" in value):
            rows.append((label, _text(value.get("before")), _text(value.get("after"))))
        elif isinstance(value, dict):
            rows.extend(_rows(f"{label}: ", value))
        elif isinstance(value, list) and value and key in ("added", "removed"):
            listed = "\n".join(_text(item) for item in value)
            rows.append((label, "" if key == "added" else listed, listed if key == "added" else ""))
        elif isinstance(value, list) and value and key == "status_changed":
            rows.extend((f"site {_text(item)}", _text(item.get("before")), _text(item.get("after"))) for item in value)
        elif isinstance(value, list) and value:
            rows.append((label, "", "\n".join(_text(item) for item in value)))
    return rows


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict):
        if set(value) <= {"date", "type"}:
            return DatePoint.from_struct(value).describe()
        if "facility" in value:
            return ", ".join(str(value[k]) for k in ("facility", "city", "country") if value.get(k))
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_text(item) for item in value) or "none"
    return str(value)
