"""Pure: changes in the registry's lists, keyed by identity, never by position.

A site is facility + city + country; an arm group its label; an intervention its type + name; an
outcome its measure. Several items with one key ("Research Site", several in one city) are
counted, so one removed is one change. A respelt city of the same facility and country is the
same site (NLM rewrites city spellings); a respelt facility still reads as one site removed and
one added: identity is only as good as the registry's spelling.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from watcher.model import ChangeKind, FieldChange, Site, Study
from watcher.registry.normalize import canonical_json, differing_keys, get_path, normalize_text, same_json

CITY_SIMILARITY = 0.8


@dataclass
class KeyedDiff:
    added: list[Any] = field(default_factory=list)
    removed: list[Any] = field(default_factory=list)
    changed: list[tuple[Any, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def keyed_diff(
    old: Sequence[Any], new: Sequence[Any], key: Callable[[Any], Hashable], same: Callable[[Any, Any], bool]
) -> KeyedDiff:
    """Pair items by key: within a key, identical items pair first, the rest in list order.

    So neither reordering the list nor reordering items that share a key reports anything.
    """
    result = KeyedDiff()
    old_groups: dict[Hashable, list[Any]] = {}
    for item in old:
        old_groups.setdefault(key(item), []).append(item)
    unpaired: list[Any] = []
    for item in new:
        group = old_groups.get(key(item), [])
        twin = next((index for index, before in enumerate(group) if same(before, item)), None)
        if twin is None:
            unpaired.append(item)
        else:
            group.pop(twin)
    for item in unpaired:
        rest = old_groups.get(key(item))
        if rest:
            result.changed.append((rest.pop(0), item))
        else:
            result.added.append(item)
    result.removed = [item for group in old_groups.values() for item in group]
    return result


def site_changes(old: Study, new: Study) -> list[FieldChange]:
    diff = keyed_diff(old.sites, new.sites, key=lambda s: s.key, same=lambda a, b: a.status == b.status)
    _pair_respelt_cities(diff)
    if not diff:
        return []
    parts = []
    if diff.added:
        parts.append(_list_sentence("Site", "sites", "added", [s.describe() for s in diff.added]))
    if diff.removed:
        parts.append(_list_sentence("Site", "sites", "removed", [s.describe() for s in diff.removed]))
    for before, after in diff.changed:
        parts.append(f"{after.describe()}: {_site_status(before)} → {_site_status(after)}")
    details = {
        "added": [site.as_dict() for site in diff.added],
        "removed": [site.as_dict() for site in diff.removed],
        "status_changed": [
            {**after.as_dict(), "before": before.status or None, "after": after.status or None}
            for before, after in diff.changed
        ],
        "count": {"before": len(old.sites), "after": len(new.sites)},
    }
    return [FieldChange(ChangeKind.SITES, "; ".join(parts) + ".", details)]


def _pair_respelt_cities(diff: KeyedDiff) -> None:
    """NLM rewrites city spellings ("Koeln" / "Köln", "Birmingham" / "Birmingham City"): a removed
    and an added site with the same facility and country and a near-identical city are one site
    (reported only if its recruiting status changed)."""
    for added in list(diff.added):
        twin = next((r for r in diff.removed if _same_place(r, added)), None)
        if twin is None:
            continue
        diff.added.remove(added)
        diff.removed.remove(twin)
        if twin.status != added.status:
            diff.changed.append((twin, added))


def _same_place(a: Site, b: Site) -> bool:
    if (a.key[0], a.key[2]) != (b.key[0], b.key[2]):
        return False
    city_a, city_b = _plain(a.city), _plain(b.city)
    if not city_a or not city_b:
        return False
    return city_a in city_b or city_b in city_a or SequenceMatcher(None, city_a, city_b).ratio() >= CITY_SIMILARITY


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if ch.isalnum())


def _site_status(site: Site) -> str:
    return site.status.replace("_", " ").lower() if site.status else "no status"


def arm_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    module = "protocolSection.armsInterventionsModule"
    if same_json(get_path(old, module), get_path(new, module)):
        return []
    arms = _named_diff(old, new, f"{module}.armGroups", lambda a: normalize_text(a.get("label", "")))
    drugs = _named_diff(
        old,
        new,
        f"{module}.interventions",
        lambda i: f"{i.get('type', '').lower()}: {normalize_text(i.get('name', ''))}",
    )
    parts = [*_describe_named("Arm", "arms", arms), *_describe_named("Intervention", "interventions", drugs)]
    if not parts:
        return []
    details = {"arm_groups": arms, "interventions": drugs}
    return [FieldChange(ChangeKind.ARMS, "; ".join(parts) + ".", details)]


def outcome_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    module = "protocolSection.outcomesModule"
    if same_json(get_path(old, module), get_path(new, module)):
        return []
    parts, details = [], {}
    for kind in ("primary", "secondary", "other"):
        path = f"protocolSection.outcomesModule.{kind}Outcomes"
        named = _named_diff(old, new, path, lambda o: normalize_text(o.get("measure", "")))
        if any(named.values()):
            details[kind] = named
            parts.extend(_describe_named(f"{kind.capitalize()} outcome", f"{kind} outcomes", named))
    return [FieldChange(ChangeKind.OUTCOMES, "; ".join(parts) + ".", details)] if parts else []


def eligibility_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    before = get_path(old, "protocolSection.eligibilityModule") or {}
    after = get_path(new, "protocolSection.eligibilityModule") or {}
    fields = differing_keys(before, after)
    if not fields:
        return []
    labels = {
        "eligibilityCriteria": "criteria text",
        "minimumAge": "minimum age",
        "maximumAge": "maximum age",
        "healthyVolunteers": "healthy volunteers",
        "stdAges": "age groups",
        "sex": "sex",
    }
    short = [f for f in fields if f != "eligibilityCriteria"]
    sentences = [f"{labels.get(f, f)} {before.get(f) or 'not given'} → {after.get(f) or 'not given'}" for f in short]
    if "eligibilityCriteria" in fields:
        sentences.insert(0, "criteria text changed")
    details = {f: {"before": before.get(f), "after": after.get(f)} for f in fields}
    summary = "Eligibility: " + "; ".join(sentences) + "."
    return [FieldChange(ChangeKind.ELIGIBILITY, summary, details)]


def _named_diff(
    old: dict[str, Any], new: dict[str, Any], path: str, name: Callable[[dict[str, Any]], str]
) -> dict[str, list[str]]:
    diff = keyed_diff(
        get_path(old, path) or [],
        get_path(new, path) or [],
        key=name,
        same=lambda a, b: same_json(a, b) or canonical_json(a) == canonical_json(b),
    )
    return {
        "added": [name(item) for item in diff.added],
        "removed": [name(item) for item in diff.removed],
        "changed": [name(after) for _, after in diff.changed],
    }


def _describe_named(singular: str, plural: str, named: dict[str, list[str]]) -> list[str]:
    return [
        _list_sentence(singular, plural, verb, names)
        for verb, names in (("added", named["added"]), ("removed", named["removed"]), ("changed", named["changed"]))
        if names
    ]


def _list_sentence(singular: str, plural: str, verb: str, names: list[str]) -> str:
    if len(names) == 1:
        return f"{singular} {verb}: {names[0]}"
    shown = "; ".join(names[:3])
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return f"{len(names)} {plural} {verb}: {shown}{more}"
