"""A study's timeline from its stored versions: when first seen, each version, what changed.

ClinicalTrials.gov API v2 serves only the latest version of a record; trialwatch keeps a version
each time a tracked field changed, and reads the versions before it first saw the study from the
registry's own version history (registry/backfill.py): those carry the registry's number and the
day they were submitted, and their changes are history, never mailed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from watcher.model import FieldChange, Study, compare_link
from watcher.registry.diff import diff_records
from watcher.store import repo
from watcher.store.backfill import backfill_state


@dataclass(frozen=True)
class VersionEntry:
    number: int
    seen_at: datetime
    last_update_posted: str | None
    status: str
    changes: tuple[FieldChange, ...]
    registry_version: int | None = None  # the registry's own number (the site shows it plus one)
    registry_date: str | None = None
    from_history: bool = False  # read from the registry's version history, not seen by a poll

    def heading(self) -> str:
        cited = ""
        if self.registry_version is not None:
            cited = f", registry version {self.registry_version + 1}"
            cited += f" submitted {self.registry_date}" if self.registry_date else ""
        if self.from_history:
            return f"version {self.number}: from the registry's history{cited} ({self.status})"
        posted = f", registry update posted {self.last_update_posted}" if self.last_update_posted else ""
        return f"version {self.number}: seen {self.seen_at:%Y-%m-%d %H:%M} UTC{posted}{cited} ({self.status})"


@dataclass(frozen=True)
class Timeline:
    nct_id: str
    title: str
    versions: tuple[VersionEntry, ...]

    history_note: str = ""  # the backfill's state, when it has not read the history (yet)

    @property
    def first_seen(self) -> datetime | None:
        own = [entry.seen_at for entry in self.versions if not entry.from_history]
        return own[0] if own else None

    def lines(self) -> list[str]:
        """The timeline as plain text, oldest first."""
        if not self.versions:
            return [f"{self.nct_id}: never seen by trialwatch (no watch has matched it yet)"]
        first = f"first seen {self.first_seen:%Y-%m-%d %H:%M} UTC" if self.first_seen else "never seen by a poll"
        out = [f"{self.nct_id}: {self.title}", first]
        if self.history_note:
            out.append(self.history_note)
        previous: VersionEntry | None = None
        for entry in self.versions:
            out.append(entry.heading())
            if previous is not None and previous.registry_version is not None and entry.registry_version is not None:
                url, label = compare_link(self.nct_id, (previous.registry_version, entry.registry_version))
                out.append(f"  {label}: {url}")
            previous = entry
            if entry.number > 1 and not entry.changes:
                out.append("  - only fields ignored as noise changed")
            out.extend(f"  - [{change.kind}] {change.summary}" for change in entry.changes)
            if entry.changes and entry.from_history:
                out.append("    (history: never mailed)")
        return out


def study_timeline(*, session: Session, nct_id: str, ignore: Sequence[str], history: bool = False) -> Timeline:
    """Every stored version of a study with the changes from the version before it; `history`:
    with a note when the registry's version history has not been read (yet)."""
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
                registry_version=version.registry_version,
                registry_date=version.registry_date,
                from_history=version.from_history,
            )
        )
        previous, title = record, study.title
    return Timeline(
        nct_id=nct_id,
        title=title,
        versions=tuple(entries),
        history_note=history_note(session, nct_id) if history and entries else "",
    )


def history_note(session: Session, nct_id: str) -> str:
    """What the backfill has done for the study, when it has not read its history."""
    state = backfill_state(session=session, nct_id=nct_id)
    if state is None or state.status == "pending":
        return "the registry's version history: not read yet (queued)"
    if state.status == "failing":
        retry = f"; tried again after {state.next_attempt_at:%Y-%m-%d %H:%M} UTC" if state.next_attempt_at else ""
        return f"the registry's version history could not be read: {state.last_error}{retry}"
    return ""
