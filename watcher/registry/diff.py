"""Pure: two versions of a study record -> the meaningful changes between them.

Both records are first pruned of noise (config.DEFAULT_IGNORE, configurable): bookkeeping the
registry rewrites every day (`versionHolder`, last-update and status-verified dates, `geoPoint`,
the whole `derivedSection`) never produces a change, nor does an edit that changes only
whitespace or CommonMark escapes, nor the order of any list. Lists are keyed by identity
(diff_lists). Every field left after pruning is tracked: what no specific kind covers is reported
as `other`, naming the fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from watcher.model import ChangeKind, DatePoint, FieldChange, Study, humanize_status
from watcher.registry.diff_lists import arm_changes, eligibility_changes, outcome_changes, site_changes
from watcher.registry.normalize import (
    DEFAULT_IGNORE,
    canonical,
    differing_keys,
    fingerprint,
    get_path,
    leaf_paths,
    normalize_text,
    prune,
    same_json,
)

DATE_FIELDS: tuple[tuple[str, str], ...] = (
    ("start", "start"),
    ("primary_completion", "primary completion"),
    ("completion", "completion"),
)

LOCATIONS = "protocolSection.contactsLocationsModule.locations"

# Paths a specific kind reports; `other` covers the rest.
COVERED: tuple[str, ...] = (
    "hasResults",
    "resultsSection",
    "protocolSection.statusModule.overallStatus",
    "protocolSection.statusModule.whyStopped",
    "protocolSection.statusModule.startDateStruct",
    "protocolSection.statusModule.primaryCompletionDateStruct",
    "protocolSection.statusModule.completionDateStruct",
    "protocolSection.statusModule.resultsFirstSubmitDate",
    "protocolSection.statusModule.resultsFirstPostDateStruct",
    "protocolSection.designModule.enrollmentInfo",
    "protocolSection.designModule.phases",
    "protocolSection.contactsLocationsModule.locations",
    "protocolSection.armsInterventionsModule",
    "protocolSection.eligibilityModule",
    "protocolSection.outcomesModule",
    "protocolSection.sponsorCollaboratorsModule.leadSponsor",
    "protocolSection.sponsorCollaboratorsModule.collaborators",
    "protocolSection.identificationModule.briefTitle",
    "protocolSection.identificationModule.officialTitle",
    "protocolSection.identificationModule.nctId",
    "protocolSection.identificationModule.nctIdAliases",
)


def diff_records(old: dict[str, Any], new: dict[str, Any], ignore: Sequence[str] = DEFAULT_IGNORE) -> list[FieldChange]:
    """Every meaningful change from `old` to `new`, most important kind first."""
    return diff_pruned(prune(old, ignore), prune(new, ignore))


def diff_pruned(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    """diff_records of two records already pruned (the caller may fingerprint them too: see
    fingerprint)."""
    same_sites = same_json(get_path(old, LOCATIONS), get_path(new, LOCATIONS))
    before, after = Study.from_record(old, sites=not same_sites), Study.from_record(new, sites=not same_sites)
    changes = [
        *_status_change(before, after),
        *_results_change(before, after, old, new),
        *_date_changes(before, after),
        *_enrollment_change(before, after),
        *([] if same_sites else site_changes(before, after)),
        *arm_changes(old, new),
        *eligibility_changes(old, new),
        *outcome_changes(old, new),
        *_phase_change(before, after),
        *_sponsor_change(old, new),
        *_title_change(old, new),
        *_id_change(before, after),
        *_other_changes(old, new),
    ]
    return sorted(changes, key=lambda change: change.kind.rank)


def record_fingerprint(record: dict[str, Any], ignore: Sequence[str] = DEFAULT_IGNORE) -> str:
    """Equal fingerprints mean diff_records finds nothing."""
    return fingerprint(prune(record, ignore))


def _status_change(old: Study, new: Study) -> list[FieldChange]:
    if old.status == new.status and normalize_text(old.why_stopped or "") == normalize_text(new.why_stopped or ""):
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


def _results_change(
    old: Study, new: Study, old_record: dict[str, Any], new_record: dict[str, Any]
) -> list[FieldChange]:
    """Results first posted (`results_posted`); later, results updated or withdrawn (`other`)."""
    details: dict[str, Any]
    if not old.has_results and new.has_results:
        details = {"has_results": {"before": False, "after": True}}
        return [FieldChange(ChangeKind.RESULTS_POSTED, "Results were posted.", details)]
    if old.has_results and not new.has_results:
        details = {"has_results": {"before": True, "after": False}}
        return [FieldChange(ChangeKind.OTHER, "Results are no longer shown in the record.", details)]
    modules = differing_keys(old_record.get("resultsSection") or {}, new_record.get("resultsSection") or {})
    if not modules:
        return []
    details = {"results_modules": modules}
    return [FieldChange(ChangeKind.OTHER, f"Posted results were updated: {', '.join(modules)}.", details)]


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


def _phase_change(old: Study, new: Study) -> list[FieldChange]:
    if sorted(old.phases) == sorted(new.phases):
        return []
    details = {"phases": {"before": list(old.phases), "after": list(new.phases)}}
    return [FieldChange(ChangeKind.PHASE, f"Phase changed from {old.phase_label} to {new.phase_label}.", details)]


def _sponsor_change(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    module = "protocolSection.sponsorCollaboratorsModule"
    lead_before = get_path(old, f"{module}.leadSponsor.name")
    lead_after = get_path(new, f"{module}.leadSponsor.name")
    before = {normalize_text(c.get("name", "")) for c in get_path(old, f"{module}.collaborators") or []}
    after = {normalize_text(c.get("name", "")) for c in get_path(new, f"{module}.collaborators") or []}
    parts = []
    if canonical(lead_before) != canonical(lead_after):
        parts.append(f"Lead sponsor changed from {lead_before or 'none'} to {lead_after or 'none'}")
    if after - before:
        parts.append(f"Collaborator added: {'; '.join(sorted(after - before))}")
    if before - after:
        parts.append(f"Collaborator removed: {'; '.join(sorted(before - after))}")
    if not parts:
        return []
    details = {
        "lead_sponsor": {"before": lead_before, "after": lead_after},
        "collaborators": {"before": sorted(before), "after": sorted(after)},
    }
    return [FieldChange(ChangeKind.SPONSOR, "; ".join(parts) + ".", details)]


def _title_change(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    details = {}
    for key in ("briefTitle", "officialTitle"):
        before = get_path(old, f"protocolSection.identificationModule.{key}")
        after = get_path(new, f"protocolSection.identificationModule.{key}")
        if canonical(before) != canonical(after):
            details[key] = {"before": before, "after": after}
    if not details:
        return []
    which = "Title" if "briefTitle" in details else "Official title"
    shown = details.get("briefTitle", details.get("officialTitle", {}))["after"] or "removed"
    return [FieldChange(ChangeKind.TITLE, f"{which} changed to: {shown}.", details)]


def _id_change(old: Study, new: Study) -> list[FieldChange]:
    """The registry merged or renumbered the record (the old id is now one of its aliases)."""
    if old.nct_id == new.nct_id:
        return []
    details = {"nct_id": {"before": old.nct_id, "after": new.nct_id}}
    return [FieldChange(ChangeKind.OTHER, f"Registry id changed from {old.nct_id} to {new.nct_id}.", details)]


def _other_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    before, after = _differing_leaves(old, new)
    changed = sorted(
        path
        for path in set(before) | set(after)
        if not _covered(path) and canonical(before.get(path)) != canonical(after.get(path))
    )
    if not changed:
        return []
    details = {path: {"before": before.get(path), "after": after.get(path)} for path in changed}
    names = [path.removeprefix("protocolSection.") for path in changed]
    return [FieldChange(ChangeKind.OTHER, f"Other fields changed: {', '.join(names)}.", details)]


def _covered(path: str) -> bool:
    return any(path == c or path.startswith(c + ".") or c.startswith(path + ".") for c in COVERED)


def _differing_leaves(old: Any, new: Any, path: str = "", depth: int = 3) -> tuple[dict[str, Any], dict[str, Any]]:
    """leaf_paths(old) and leaf_paths(new), less the subtrees that are the same JSON in both (their
    leaves cannot differ): the record's unchanged bulk is compared in C, never canonicalised."""
    if not isinstance(old, dict) or not isinstance(new, dict) or depth == 0 or _dotted(old, new):
        return leaf_paths(old, path, depth), leaf_paths(new, path, depth)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for key, item in old.items():
        child = f"{path}.{key}" if path else key
        if key not in new:
            before.update(leaf_paths(item, child, depth - 1))
        elif not same_json(item, new[key]):
            below = _differing_leaves(item, new[key], child, depth - 1)
            before.update(below[0])
            after.update(below[1])
    for key, item in new.items():
        if key not in old:
            after.update(leaf_paths(item, f"{path}.{key}" if path else key, depth - 1))
    return before, after


def _dotted(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """A key with a dot could give two leaves one path (the later wins): walked as leaf_paths walks."""
    return any("." in key for key in old) or any("." in key for key in new)
