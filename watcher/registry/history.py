"""A study's timeline from its stored versions: when first seen, each version, what changed.

ClinicalTrials.gov API v2 serves only the latest version of a record; trialwatch keeps a version
each time a tracked field changed, so this timeline starts when trialwatch first saw the study.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from watcher.model import FieldChange, Study
from watcher.registry.diff import diff_records
from watcher.store import repo


@dataclass(frozen=True)
class VersionEntry:
    number: int
    seen_at: datetime
    last_update_posted: str | None
    status: str
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True)
class Timeline:
    nct_id: str
    title: str
    versions: tuple[VersionEntry, ...]

    @property
    def first_seen(self) -> datetime | None:
        return self.versions[0].seen_at if self.versions else None

    def lines(self) -> list[str]:
        """The timeline as plain text, oldest first."""
        if not self.versions:
            return [f"{self.nct_id}: never seen by trialwatch (no watch has matched it yet)"]
        out = [f"{self.nct_id}: {self.title}", f"first seen {self.first_seen:%Y-%m-%d %H:%M} UTC"]
        for entry in self.versions:
            posted = f", registry update posted {entry.last_update_posted}" if entry.last_update_posted else ""
            out.append(f"version {entry.number}: seen {entry.seen_at:%Y-%m-%d %H:%M} UTC{posted} ({entry.status})")
            if entry.number > 1 and not entry.changes:
                out.append("  - only fields ignored as noise changed")
            out.extend(f"  - [{change.kind}] {change.summary}" for change in entry.changes)
        return out


def study_timeline(*, session: Session, nct_id: str, ignore: Sequence[str]) -> Timeline:
    """Every stored version of a study with the changes from the version before it."""
    entries: list[VersionEntry] = []
    previous: dict[str, Any] | None = None
    title = nct_id
    for number, version in enumerate(repo.study_versions(session=session, nct_id=nct_id), start=1):
        record = repo.unpack_record(version.record)
        study = Study.from_record(record)
        changes = tuple(diff_records(previous, record, ignore)) if previous is not None else ()
        entries.append(
            VersionEntry(
                number=number,
                seen_at=version.seen_at,
                last_update_posted=version.last_update_posted,
                status=study.status_label,
                changes=changes,
            )
        )
        previous, title = record, study.title
    return Timeline(nct_id=nct_id, title=title, versions=tuple(entries))
