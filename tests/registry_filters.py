"""The local registry's filters, as ClinicalTrials.gov API v2 applies them (FakeRegistry uses them):
`filter.overallStatus` (comma list), `filter.advanced` (Essie: the AND of
`AREA[LastUpdatePostDate]RANGE[YYYY-MM-DD,MAX]` and `AREA[Phase]X` / `AREA[Phase](X OR Y)`;
anything else is refused with a 400, as an unsupported filter would be) and `filter.geo`
(`distance(lat,lon,Nmi)` or `Nkm`: a study with at least one site whose geoPoint lies within).
Written independently of watcher.rules, so the tests compare two implementations."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

Check = Callable[[dict[str, Any]], bool]
_UPDATED = re.compile(r"AREA\[LastUpdatePostDate\]RANGE\[(\d{4}-\d{2}-\d{2}),MAX\]")
_PHASE = re.compile(r"AREA\[Phase\](?:\(([A-Z0-9_]+(?: OR [A-Z0-9_]+)*)\)|([A-Z0-9_]+))")
_GEO = re.compile(r"distance\((-?[\d.]+),(-?[\d.]+),([\d.]+)(mi|km)\)")


def filter_checks(params: dict[str, str]) -> list[Check] | str:
    """One check per filter in the request, or the 400 message for a filter this registry refuses."""
    checks: list[Check] = []
    if "filter.overallStatus" in params:
        wanted = {s.strip() for s in params["filter.overallStatus"].split(",")}
        checks.append(lambda record: _status(record) in wanted)
    for part in params["filter.advanced"].split(" AND ") if "filter.advanced" in params else []:
        check = _advanced(part)
        if check is None:
            return f"Invalid filter.advanced: {params['filter.advanced']}"
        checks.append(check)
    if "filter.geo" in params:
        match = _GEO.fullmatch(params["filter.geo"])
        if match is None:
            return f"Invalid filter.geo: {params['filter.geo']}"
        lat, lon, radius = float(match.group(1)), float(match.group(2)), float(match.group(3))
        km = radius * 1.609344 if match.group(4) == "mi" else radius
        checks.append(lambda record: any(_km(lat, lon, point) <= km for point in _geo_points(record)))
    return checks


def _advanced(part: str) -> Check | None:
    updated = _UPDATED.fullmatch(part)
    if updated:
        since = updated.group(1)
        return lambda record: last_update(record) >= since
    phase = _PHASE.fullmatch(part)
    if phase:
        wanted = set((phase.group(1) or phase.group(2)).split(" OR "))
        return lambda record: bool(wanted & set(_module(record, "designModule").get("phases") or []))
    return None


def _module(record: dict[str, Any], name: str) -> dict[str, Any]:
    return (record.get("protocolSection") or {}).get(name) or {}


def _status(record: dict[str, Any]) -> str:
    return str(_module(record, "statusModule").get("overallStatus"))


def last_update(record: dict[str, Any]) -> str:
    return str((_module(record, "statusModule").get("lastUpdatePostDateStruct") or {}).get("date", "0000"))


def _geo_points(record: dict[str, Any]) -> list[tuple[float, float]]:
    sites = _module(record, "contactsLocationsModule").get("locations") or []
    return [(s["geoPoint"]["lat"], s["geoPoint"]["lon"]) for s in sites if s.get("geoPoint")]


def _km(lat: float, lon: float, point: tuple[float, float]) -> float:
    """Great-circle distance (spherical law of cosines, mean Earth radius)."""
    a, b = math.radians(lat), math.radians(point[0])
    cosine = math.sin(a) * math.sin(b) + math.cos(a) * math.cos(b) * math.cos(math.radians(point[1] - lon))
    return 6371.0 * math.acos(max(-1.0, min(1.0, cosine)))
