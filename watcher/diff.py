"""Pure: two versions of a study -> the meaningful changes between them.

Only tracked fields are compared, so bookkeeping the registry rewrites every day
(`versionHolder`, `lastUpdatePostDate`, `lastUpdateSubmitDate`, `statusVerifiedDate`, `geoPoint`,
the whole `derivedSection`) never produces a change. List items are keyed by identity (a site by
facility + city + country), never by position, and compared as multisets, so a removed site is
one change and not a shift of every later index.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

from watcher.model import ChangeKind, DatePoint, FieldChange, Site, Study, humanize_status

DATE_FIELDS: tuple[tuple[str, str], ...] = (
    ("start", "start"),
    ("primary_completion", "primary completion"),
    ("completion", "completion"),
)


def diff_studies(old: Study, new: Study) -> list[FieldChange]:
    """Every meaningful change from `old` to `new`, most important kind first."""
    changes = [
        *_status_change(old, new),
        *_results_change(old, new),
        *_date_changes(old, new),
        *_enrollment_change(old, new),
        *_site_changes(old, new),
    ]
    return sorted(changes, key=lambda change: change.kind.rank)


def tracked_fingerprint(study: Study) -> str:
    """A hash of every tracked field: equal fingerprints mean diff_studies finds nothing."""
    tracked = {
        "status": study.status,
        "why_stopped": study.why_stopped,
        "has_results": study.has_results,
        "dates": [getattr(study, name).as_dict() for name, _ in DATE_FIELDS],
        "enrollment": [study.enrollment_count, study.enrollment_type],
        "sites": sorted([*site.key, site.status] for site in study.sites),
        "title": study.title,
        "phases": sorted(study.phases),
    }
    encoded = json.dumps(tracked, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


def _status_change(old: Study, new: Study) -> list[FieldChange]:
    if old.status == new.status and old.why_stopped == new.why_stopped:
        return []
    summary = f"Status changed from {humanize_status(old.status)} to {humanize_status(new.status)}"
    if old.status == new.status:
        summary = f"Reason for stopping updated ({humanize_status(new.status)})"
    if new.why_stopped:
        summary += f": {new.why_stopped}"
    details = {
        "overall_status": {"before": old.status, "after": new.status},
        "why_stopped": {"before": old.why_stopped, "after": new.why_stopped},
    }
    return [FieldChange(ChangeKind.STATUS, summary + ".", details)]


def _results_change(old: Study, new: Study) -> list[FieldChange]:
    if old.has_results or not new.has_results:
        return []
    details = {"has_results": {"before": False, "after": True}}
    return [FieldChange(ChangeKind.RESULTS_POSTED, "Results were posted.", details)]


def _date_changes(old: Study, new: Study) -> list[FieldChange]:
    moved: dict[str, Any] = {}
    sentences: list[str] = []
    for attr, label in DATE_FIELDS:
        before: DatePoint = getattr(old, attr)
        after: DatePoint = getattr(new, attr)
        if before == after:
            continue
        entry: dict[str, Any] = {"before": before.as_dict(), "after": after.as_dict()}
        slip = _slip_days(before, after)
        if slip is not None:
            entry["slip_days"] = slip
        moved[attr] = entry
        sentences.append(describe_date_change(label, before, after, slip))
    if not moved:
        return []
    summary = "; ".join(sentences)
    return [FieldChange(ChangeKind.DATES, summary[0].upper() + summary[1:] + ".", moved)]


def _slip_days(before: DatePoint, after: DatePoint) -> int | None:
    old_day, new_day = before.as_date(), after.as_date()
    if old_day is None or new_day is None or old_day == new_day:
        return None
    return (new_day - old_day).days


def describe_date_change(label: str, before: DatePoint, after: DatePoint, slip: int | None) -> str:
    """'primary completion slipped 92 days to 2026-10-31 (estimated)' and the like."""
    if slip is not None:
        verb = "slipped" if slip > 0 else "moved earlier"
        days = abs(slip)
        return f"{label} {verb} {days} day{'s' if days != 1 else ''} to {after.describe()}"
    if before.value == after.value and after.value:
        old_type = (before.type or "unknown").lower()
        new_type = (after.type or "unknown").lower()
        return f"{label} date {after.value} is now {new_type} (was {old_type})"
    if not after.value:
        return f"{label} date removed (was {before.describe()})"
    if not before.value:
        return f"{label} date set to {after.describe()}"
    return f"{label} date moved from {before.describe()} to {after.describe()}"


def _enrollment_change(old: Study, new: Study) -> list[FieldChange]:
    before = (old.enrollment_count, old.enrollment_type)
    after = (new.enrollment_count, new.enrollment_type)
    if before == after:
        return []
    summary = f"Enrollment {_describe_enrollment(*before)} → {_describe_enrollment(*after)}."
    details = {
        "count": {"before": old.enrollment_count, "after": new.enrollment_count},
        "type": {"before": old.enrollment_type, "after": new.enrollment_type},
    }
    return [FieldChange(ChangeKind.ENROLLMENT, summary, details)]


def _describe_enrollment(count: int | None, kind: str | None) -> str:
    text = "not given" if count is None else str(count)
    return f"{text} {kind.lower()}" if kind else text


def _site_changes(old: Study, new: Study) -> list[FieldChange]:
    before = Counter(site.key for site in old.sites)
    after = Counter(site.key for site in new.sites)
    removed = _pick_sites(old.sites, before - after)
    added = _pick_sites(new.sites, after - before)
    if not removed and not added:
        return []
    parts = []
    if added:
        parts.append(_site_sentence("added", added))
    if removed:
        parts.append(_site_sentence("removed", removed))
    details = {
        "added": [site.as_dict() for site in added],
        "removed": [site.as_dict() for site in removed],
        "count": {"before": len(old.sites), "after": len(new.sites)},
    }
    return [FieldChange(ChangeKind.SITES, "; ".join(parts) + ".", details)]


def _pick_sites(sites: tuple[Site, ...], wanted: Counter[tuple[str, str, str]]) -> list[Site]:
    """The sites whose keys are in `wanted`, as many of each as counted, in list order."""
    remaining = Counter(wanted)
    picked = []
    for site in sites:
        if remaining[site.key] > 0:
            remaining[site.key] -= 1
            picked.append(site)
    return picked


def _site_sentence(verb: str, sites: list[Site]) -> str:
    if len(sites) == 1:
        return f"Site {verb}: {sites[0].describe()}"
    shown = "; ".join(site.describe() for site in sites[:3])
    more = f" and {len(sites) - 3} more" if len(sites) > 3 else ""
    return f"{len(sites)} sites {verb}: {shown}{more}"
