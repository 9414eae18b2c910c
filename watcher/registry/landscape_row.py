"""One study of a watch's landscape (#21): every column a reader sorts, filters or exports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from watcher.model import CTGOV_STUDY_URL, DatePoint, humanize_status
from watcher.store import landscape as stored


@dataclass(slots=True)
class LandscapeRow:
    """One study of the landscape, every column a reader sorts or filters on."""

    nct_id: str
    title: str
    status: str
    phase: str
    phases: tuple[str, ...]
    sponsor: str
    interventions: tuple[tuple[str, str], ...]  # (type, name)
    enrollment_count: int | None
    enrollment_type: str | None
    start: DatePoint
    primary_completion: DatePoint
    completion: DatePoint
    countries: tuple[str, ...]
    sites: int
    sites_recruiting: int
    results: bool
    results_date: str | None
    articles: int
    last_change: stored.LastChange | None
    recent: bool  # its last change in the watch is from the last 7 days
    left_at: datetime | None  # None: the watch holds it now

    @property
    def status_label(self) -> str:
        return humanize_status(self.status)

    @property
    def url(self) -> str:
        return CTGOV_STUDY_URL.format(nct_id=self.nct_id)

    @property
    def intervention_types(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(kind for kind, _ in self.interventions if kind))

    @property
    def interventions_text(self) -> str:
        return "; ".join(f"{kind.capitalize()}: {name}" if kind else name for kind, name in self.interventions)
