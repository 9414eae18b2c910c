"""Plain typed records shared by the pipeline stages. No I/O here.

`Study` is the normalised view of one ClinicalTrials.gov API v2 record (only what we read);
`FieldChange` is what the diff finds between two versions of one study; `ChangeRecord` is a stored
change as the digest and the CLI see it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any


def get_path(record: Any, path: str) -> Any:
    """The value at a dotted path of dicts, or None."""
    value = record
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


CTGOV_STUDY_URL = "https://clinicaltrials.gov/study/{nct_id}"
CTGOV_HISTORY_URL = "https://clinicaltrials.gov/study/{nct_id}?tab=history"
# the site's comparison of two versions; a and b are the site's numbers (the API's version + 1)
CTGOV_COMPARE_URL = "https://clinicaltrials.gov/study/{nct_id}?tab=history&a={a}&b={b}#version-content-panel"


def registry_pair(details: dict[str, Any]) -> tuple[int, int] | None:
    """The registry version pair a change spans (`details["registry_versions"]`), when known."""
    pair = details.get("registry_versions")
    if isinstance(pair, list | tuple) and len(pair) == 2 and all(type(n) is int and n >= 0 for n in pair):
        return int(pair[0]), int(pair[1])
    return None


def compare_link(nct_id: str, pair: tuple[int, int]) -> tuple[str, str]:
    """The site's comparison of a registry version pair: (URL, 'compare versions 24 and 25 on
    ClinicalTrials.gov'), in the site's numbers."""
    a, b = pair[0] + 1, pair[1] + 1
    url = CTGOV_COMPARE_URL.format(nct_id=nct_id, a=a, b=b)
    return url, f"compare versions {a} and {b} on ClinicalTrials.gov"


class ChangeKind(StrEnum):
    """Kinds of change, in the order a reader wants them (most important first)."""

    STATUS = "status"
    RESULTS_POSTED = "results_posted"
    RESULTS_OVERDUE = "results_overdue"  # a held study's US results are 30 days past due (watcher.milestones)
    NEW_STUDY = "new_study"
    NO_LONGER_MATCHING = "no_longer_matching"
    DATES = "dates"
    ESTIMATED_DATE_PASSED = "estimated_date_passed"  # primary completion still estimated 30 days after it passed
    ENROLLMENT = "enrollment"
    SITES = "sites"
    ARMS = "arms"
    ELIGIBILITY = "eligibility"
    OUTCOMES = "outcomes"
    PHASE = "phase"
    SPONSOR = "sponsor"
    TITLE = "title"
    OTHER = "other"
    PUBLICATION = "publication"  # a new article that mentions a watched study
    NEW_ARTICLE = "new_article"  # a new article that matches the watch's words

    @property
    def rank(self) -> int:
        return list(ChangeKind).index(self)


class Source(StrEnum):
    CLINICALTRIALS = "clinicaltrials"
    FEEDS = "feeds"
    PUBMED = "pubmed"
    CROSSREF = "crossref"
    EUROPEPMC = "europepmc"


LITERATURE_SOURCES = frozenset({Source.FEEDS, Source.PUBMED, Source.CROSSREF, Source.EUROPEPMC})
ITEM_TYPES = ("meeting_abstract", "preprint", "article")  # what an article change is about (#20)


@dataclass(frozen=True)
class DatePoint:
    """A registry date: 'yyyy', 'yyyy-MM' or 'yyyy-MM-dd', ACTUAL / ESTIMATED or unknown."""

    value: str | None
    type: str | None = None

    @classmethod
    def from_struct(cls, struct: Mapping[str, Any] | None) -> DatePoint:
        struct = struct or {}
        return cls(value=struct.get("date"), type=struct.get("type"))

    def as_date(self) -> date | None:
        """The exact day, when the registry gives one."""
        if self.value and re.fullmatch(r"\d{4}-\d{2}-\d{2}", self.value):
            return date.fromisoformat(self.value)
        return None

    def describe(self) -> str:
        if not self.value:
            return "not given"
        return f"{self.value} ({self.type.lower()})" if self.type else self.value

    def as_dict(self) -> dict[str, str | None]:
        return {"date": self.value, "type": self.type}


@dataclass(frozen=True)
class Site:
    facility: str
    city: str
    country: str
    state: str = ""
    status: str = ""
    lat: float | None = None  # geoPoint, when the registry gives one (noise for the diff)
    lon: float | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity of a site: facility + city + country, case and spacing folded."""
        return (_fold(self.facility), _fold(self.city), _fold(self.country))

    def describe(self) -> str:
        return ", ".join(part for part in (self.facility, self.city, self.country) if part)

    def as_dict(self) -> dict[str, str]:
        return {"facility": self.facility, "city": self.city, "country": self.country}


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class Study:
    """What trialwatch reads from one API v2 study record."""

    nct_id: str
    title: str
    status: str
    why_stopped: str | None
    phases: tuple[str, ...]
    has_results: bool
    last_update_posted: str | None
    start: DatePoint
    primary_completion: DatePoint
    completion: DatePoint
    enrollment_count: int | None
    enrollment_type: str | None
    sites: tuple[Site, ...] = field(default=())
    aliases: tuple[str, ...] = field(default=())

    @classmethod
    def from_record(cls, record: Mapping[str, Any], *, sites: bool = True) -> Study:
        """The study as a record gives it; `sites=False`: without its sites (most of the work on a
        record with hundreds of them), for a reader that needs only the facts."""
        protocol = record.get("protocolSection") or {}
        ident = protocol.get("identificationModule") or {}
        status = protocol.get("statusModule") or {}
        design = protocol.get("designModule") or {}
        enrollment = design.get("enrollmentInfo") or {}
        locations = ((protocol.get("contactsLocationsModule") or {}).get("locations") or []) if sites else []
        nct_id = ident.get("nctId")
        if not nct_id:
            raise ValueError("study record without protocolSection.identificationModule.nctId")
        return cls(
            nct_id=nct_id,
            title=ident.get("briefTitle") or ident.get("officialTitle") or nct_id,
            status=status.get("overallStatus") or "UNKNOWN",
            why_stopped=status.get("whyStopped"),
            phases=tuple(design.get("phases") or ()),
            has_results=bool(record.get("hasResults")),
            last_update_posted=(status.get("lastUpdatePostDateStruct") or {}).get("date"),
            start=DatePoint.from_struct(status.get("startDateStruct")),
            primary_completion=DatePoint.from_struct(status.get("primaryCompletionDateStruct")),
            completion=DatePoint.from_struct(status.get("completionDateStruct")),
            enrollment_count=enrollment.get("count"),
            enrollment_type=enrollment.get("type"),
            sites=tuple(
                Site(
                    facility=loc.get("facility") or "",
                    city=loc.get("city") or "",
                    country=loc.get("country") or "",
                    state=loc.get("state") or "",
                    status=loc.get("status") or "",
                    **_geo_point(loc.get("geoPoint")),
                )
                for loc in locations
            ),
            aliases=tuple(ident.get("nctIdAliases") or ()),
        )

    @property
    def url(self) -> str:
        return CTGOV_STUDY_URL.format(nct_id=self.nct_id)

    @property
    def phase_label(self) -> str:
        return "/".join(p.replace("PHASE", "Phase ").replace("EARLY_", "Early ") for p in self.phases) or "n/a"

    @property
    def status_label(self) -> str:
        return humanize_status(self.status)


def _geo_point(point: Any) -> dict[str, float]:
    """{"lat": .., "lon": ..} of a site's geoPoint, or {} when absent or not numbers."""
    if not isinstance(point, dict):
        return {}
    lat, lon = point.get("lat"), point.get("lon")
    if isinstance(lat, int | float) and isinstance(lon, int | float) and not isinstance(lat, bool):
        return {"lat": float(lat), "lon": float(lon)}
    return {}


def humanize_status(status: str) -> str:
    """RECRUITING -> 'Recruiting', ACTIVE_NOT_RECRUITING -> 'Active, not recruiting'."""
    special = {"ACTIVE_NOT_RECRUITING": "Active, not recruiting"}
    return special.get(status, status.replace("_", " ").capitalize())


@dataclass(frozen=True)
class FieldChange:
    """One meaningful difference between two versions of a study."""

    kind: ChangeKind
    summary: str
    details: dict[str, Any]
    suppressed_by: str | None = None  # the watch rule that holds it back (watcher.rules); None: mailed

    @property
    def alerted(self) -> bool:
        return self.suppressed_by is None


@dataclass(frozen=True)
class ChangeRecord:
    """A stored change, as the digest and `trialwatch changes` show it."""

    id: int
    watch: str
    kind: ChangeKind
    source: Source
    nct_id: str
    title: str
    summary: str
    details: dict[str, Any]
    detected_at: datetime
    study_status: str = ""
    study_phase: str = ""
    alerted: bool = True
    suppressed_by: str | None = None
    historical: bool = False  # read from the registry's version history: never mailed

    @property
    def url(self) -> str:
        return CTGOV_STUDY_URL.format(nct_id=self.nct_id)

    @property
    def history_url(self) -> str:
        return CTGOV_HISTORY_URL.format(nct_id=self.nct_id)

    @property
    def registry_versions(self) -> tuple[int, int] | None:
        return None if self.is_article else registry_pair(self.details)

    @property
    def compare_url(self) -> str | None:
        pair = self.registry_versions
        return compare_link(self.nct_id, pair)[0] if pair else None

    @property
    def compare_label(self) -> str:
        pair = self.registry_versions
        return compare_link(self.nct_id, pair)[1] if pair else ""

    @property
    def is_article(self) -> bool:
        return self.source in LITERATURE_SOURCES

    @property
    def item_type(self) -> str:
        """'meeting_abstract', 'preprint' or 'article' (changes stored before #20: 'article')."""
        value = self.details.get("item_type")
        return value if value in ITEM_TYPES else "article"

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": self.id,
            "watch": self.watch,
            "kind": str(self.kind),
            "source": str(self.source),
            "nct_id": self.nct_id or None,
            "title": self.title,
            "summary": self.summary,
            "details": self.details,
            "detected_at": self.detected_at.isoformat(),
            "alerted": self.alerted,
            "suppressed_by": self.suppressed_by,
            "historical": self.historical,
        }
        if not self.is_article:
            pair = self.registry_versions
            entry["registry_versions"] = list(pair) if pair else None
            entry["compare_url"] = self.compare_url
        if self.is_article:  # the article's fields; a publication also names its study
            for key in ("feed", "title", "link", "doi", "nct_ids", "published", "why", "pmid", "journal"):
                entry[key] = self.details.get(key)
            entry["url"] = self.details.get("link")
            entry["item_type"] = self.item_type
            if self.kind is ChangeKind.PUBLICATION:
                entry["study_title"] = self.title
        else:
            entry["url"] = self.url
        return entry
