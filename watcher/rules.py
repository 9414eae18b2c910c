"""Pure: a watch's rules applied to studies and changes. No I/O here.

Two kinds of rule (the keys are in watcher.watch.WatchConfig):
- *join rules* (`statuses`, `phases`, geography: `countries`, `states`, `cities`, `near`) decide
  which studies a watch holds: `join_rule` names the rule that keeps a study out, or None. The
  watch's own `nct_ids` are always held, whatever the rules. A held study that moves out of them
  is reported as the change it is, and let go (quietly) by the next full reconciliation.
- *alert rules* (`alert_on`, `min_slip_days`, `min_enrollment_change_percent`, and geography for
  `sites` changes) decide which changes are mailed: `judge` returns the change with
  `suppressed_by` naming the rule that holds it back ("alert_on", "min_slip_days=30",
  "geography"), or None when it is mailed. A held-back change is still stored, never mailed.

Geography: a site is in scope when it matches every geography key the watch sets (any of the
names within a key; names compared without case or accents); `near` by the haversine distance of
the site's `geoPoint` (a site without one is outside any circle).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date
from functools import lru_cache
from typing import Any

from watcher.model import ChangeKind, FieldChange, Site, Study, humanize_status
from watcher.watch import WatchConfig

EARTH_RADIUS_KM = 6371.0088  # the mean radius (IUGG)
KM_PER_MILE = 1.609344
GEO_MARGIN = 1.01  # the registry is asked for a slightly larger circle; our haversine decides


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres between two points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlambda = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def registry_geo_filter(watch: WatchConfig) -> str | None:
    """`filter.geo` for a watch's `near` ("distance(32.78,-96.8,62.76mi)"; the API takes miles),
    a little wider than the circle so the registry never leaves out a site our haversine keeps."""
    if watch.near is None:
        return None
    miles = math.ceil(watch.near.radius_km / KM_PER_MILE * GEO_MARGIN * 100) / 100
    return f"distance({watch.near.lat:g},{watch.near.lon:g},{miles:g}mi)"


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", " ".join(text.split()).casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=256)
def _folded(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(_fold(name) for name in names)


def site_in_scope(watch: WatchConfig, site: Site) -> bool:
    """Whether a site lies in the watch's geography (always, when the watch sets none)."""
    for names, value in ((watch.countries, site.country), (watch.states, site.state), (watch.cities, site.city)):
        if names and _fold(value) not in _folded(tuple(names)):
            return False
    if watch.near is not None:
        if site.lat is None or site.lon is None:
            return False
        return haversine_km(watch.near.lat, watch.near.lon, site.lat, site.lon) <= watch.near.radius_km
    return True


def has_join_rules(watch: WatchConfig) -> bool:
    return bool(watch.statuses or watch.phases or watch.has_geography)


def join_rule(watch: WatchConfig, study: Study) -> str | None:
    """The join rule that keeps this study out of the watch ("statuses", "phases", "geography"),
    or None when it may join (or stay). The watch's own nct_ids always may."""
    if study.nct_id in watch.nct_ids or any(alias in watch.nct_ids for alias in study.aliases):
        return None
    if watch.statuses and study.status not in watch.statuses:
        return "statuses"
    if watch.phases and not set(study.phases) & set(watch.phases):
        return "phases"
    if watch.has_geography and not any(site_in_scope(watch, site) for site in study.sites):
        return "geography"
    return None


def article_rule(watch: WatchConfig, kind: ChangeKind) -> str | None:
    """The rule that holds back a journal-article change (`new_article`, `publication`): only
    `alert_on` applies to them; the other rules concern registry records."""
    return "alert_on" if watch.alert_on is not None and str(kind) not in watch.alert_on else None


def judge(
    watch: WatchConfig, change: FieldChange, *, new: Study | None = None, old: Study | None = None
) -> FieldChange:
    """The change as this watch stores it: `suppressed_by` set when a rule holds it back; a
    `sites` change under geography narrowed to the sites in scope. `new` and `old` are the study's
    two versions as read from the raw records (their sites carry geoPoint), for `sites` changes."""
    if watch.alert_on is not None and str(change.kind) not in watch.alert_on:
        return replace(change, suppressed_by="alert_on")
    if change.kind is ChangeKind.DATES and watch.min_slip_days and not _dates_matter(change, watch.min_slip_days):
        return replace(change, suppressed_by=f"min_slip_days={watch.min_slip_days}")
    percent = watch.min_enrollment_change_percent
    if change.kind is ChangeKind.ENROLLMENT and percent and not _enrollment_matters(change, percent):
        return replace(change, suppressed_by=f"min_enrollment_change_percent={percent:g}")
    if change.kind is ChangeKind.SITES and watch.has_geography:
        return _sites_in_scope(watch, change, new=new, old=old)
    return change


def judge_all(
    watch: WatchConfig, changes: Iterable[FieldChange], *, new: Study, old_record: Mapping[str, Any] | None = None
) -> list[FieldChange]:
    """`judge` for every change of one study; the old record is read only when a rule needs its sites."""
    changes = list(changes)
    needs_old = watch.has_geography and old_record is not None and any(c.kind is ChangeKind.SITES for c in changes)
    old = Study.from_record(old_record) if needs_old and old_record is not None else None
    return [judge(watch, change, new=new, old=old) for change in changes]


# --- dates and enrollment ----------------------------------------------------------------------


def _dates_matter(change: FieldChange, min_days: int) -> bool:
    """A date that appeared, disappeared or became actual always matters; otherwise a date that
    moved `min_days` or more (either way)."""
    for entry in change.details.values():
        if not isinstance(entry, dict):
            continue
        before, after = entry.get("before") or {}, entry.get("after") or {}
        if not before.get("date") or not after.get("date"):
            return True
        if after.get("type") == "ACTUAL" and before.get("type") != "ACTUAL":
            return True
        moved = entry.get("slip_days")
        if moved is None:
            moved = _days_between(before["date"], after["date"])
        if moved is None or abs(moved) >= min_days:
            return True
    return False


def _days_between(before: str, after: str) -> int | None:
    """Days between two registry dates of any precision (a month or year counts from its first day)."""
    start, end = _first_day(before), _first_day(after)
    return None if start is None or end is None else (end - start).days


def _first_day(value: str) -> date | None:
    match = re.fullmatch(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?", value)
    if not match:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2) or 1), int(match.group(3) or 1))
    except ValueError:
        return None


def _enrollment_matters(change: FieldChange, min_percent: float) -> bool:
    """Estimated -> actual always matters; otherwise a change of `min_percent` or more of the old count."""
    count = change.details.get("count") or {}
    kind = change.details.get("type") or {}
    if kind.get("after") == "ACTUAL" and kind.get("before") != "ACTUAL":
        return True
    before, after = count.get("before"), count.get("after")
    if not isinstance(before, int) or not isinstance(after, int) or before <= 0:
        return True
    return abs(after - before) * 100 >= min_percent * before


# --- sites under geography ---------------------------------------------------------------------

SITE_LISTS = ("added", "removed", "status_changed")


def _sites_in_scope(watch: WatchConfig, change: FieldChange, *, new: Study | None, old: Study | None) -> FieldChange:
    """Keep the sites in scope: none -> held back by geography; some -> the summary names them."""
    known = {"added": new, "removed": old, "status_changed": new}
    in_scope: dict[str, list[dict[str, Any]]] = {}
    outside = 0
    for name in SITE_LISTS:
        items = change.details.get(name) or []
        version = known[name]
        by_key: dict[tuple[str, str, str], list[Site]] = {}
        for site in version.sites if version is not None else ():
            by_key.setdefault(site.key, []).append(site)
        in_scope[name] = [item for item in items if _listed_site_in_scope(watch, item, by_key)]
        outside += len(items) - len(in_scope[name])
    if not any(in_scope.values()):
        return replace(change, suppressed_by="geography")
    if not outside:
        return change
    summary = f"{_describe_sites(in_scope)} ({outside} more outside this watch's area)."
    return replace(change, summary=summary, details={**change.details, "in_scope": in_scope})


def _listed_site_in_scope(
    watch: WatchConfig, item: dict[str, Any], by_key: Mapping[tuple[str, str, str], Sequence[Site]]
) -> bool:
    """A site as a change lists it (facility, city, country), looked up in the record for its
    state and geoPoint; several sites with one key: in scope when any is."""
    listed = Site(facility=item.get("facility", ""), city=item.get("city", ""), country=item.get("country", ""))
    return any(site_in_scope(watch, site) for site in by_key.get(listed.key) or [listed])


def _describe_sites(in_scope: dict[str, list[dict[str, Any]]]) -> str:
    parts = []
    for verb in ("added", "removed"):
        names = [_site_name(item) for item in in_scope[verb]]
        if names:
            parts.append(
                f"Site {verb}: {names[0]}" if len(names) == 1 else f"{len(names)} sites {verb}: {'; '.join(names)}"
            )
    for item in in_scope["status_changed"]:
        before, after = (item.get(k) or "no status" for k in ("before", "after"))
        parts.append(f"{_site_name(item)}: {_plain_status(before)} → {_plain_status(after)}")
    return "; ".join(parts)


def _site_name(item: dict[str, Any]) -> str:
    return ", ".join(part for part in (item.get("facility"), item.get("city"), item.get("country")) if part)


def _plain_status(status: str) -> str:
    return status.replace("_", " ").lower()


# --- in words, for `trialwatch check` ---------------------------------------------------------


def describe_rules(watch: WatchConfig) -> str:
    """The watch's rules in one line ("mails: status, results posted; dates only when they move
    30 days or more; sites in Texas")."""
    kinds = ", ".join(kind.replace("_", " ") for kind in watch.alert_on) if watch.alert_on else "every kind of change"
    parts = [f"mails: {kinds}"]
    if watch.min_slip_days:
        parts.append(f"dates only when they move {_plural(watch.min_slip_days, 'day')} or more, or become actual")
    if watch.min_enrollment_change_percent:
        parts.append(
            f"enrollment only when it changes {watch.min_enrollment_change_percent:g}% or more, or becomes actual"
        )
    if watch.statuses:
        parts.append("studies " + " or ".join(humanize_status(s).lower() for s in watch.statuses))
    if watch.phases:
        labels = [
            p.replace("EARLY_PHASE", "early phase ").replace("PHASE", "phase ").replace("NA", "n/a")
            for p in watch.phases
        ]
        parts.append("studies in " + " or ".join(labels))
    if watch.has_geography:
        parts.append("sites " + " and ".join(_places(watch)))
    return "; ".join(parts)


def _places(watch: WatchConfig) -> list[str]:
    places = [f"in {' or '.join(names)}" for names in (watch.countries, watch.states, watch.cities) if names]
    if watch.near is not None:
        places.append(f"within {watch.near.radius_km:g} km of {watch.near.lat:g}, {watch.near.lon:g}")
    return places


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"
