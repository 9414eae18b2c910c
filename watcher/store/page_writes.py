"""The studies of a poll's page that need the per-study path (a change, an alias, a watch with
join rules), read and written a page at a time: their rows, links and stored versions in one
query each; their new versions, changes and the notifications owed in one insert each, ids handed
back in order (repo.save_study_version and repo.record_change, in bulk). No commits here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from watcher.model import FieldChange, Source, Study
from watcher.store.models import ChangeRow, Notification, StudyRow, StudyVersion, WatchStudy
from watcher.store.recipients import opted_out
from watcher.store.repo import load_version, pack_record, unpack_record
from watcher.store.studies import IN_CHUNK


@dataclass(slots=True)
class PendingVersion:
    """A study version inserted with the page's others (`values`: its columns); `owners`: the study
    row and links that point at it once it has an id (added to the session then)."""

    values: dict[str, Any]
    owners: list[StudyRow | WatchStudy] = field(default_factory=list)


@dataclass
class PageWriter:
    """One watch's per-study reads and writes, a page at a time: `load` the page, then `row`,
    `link`, `record`, `save`, `point`, `add_change` per study, then `write` (also mid-page: what
    was written so far is then in the database) and `clear` at the page's end."""

    session: Session
    watch: str
    now: datetime
    rows: dict[str, StudyRow] = field(default_factory=dict)
    links: dict[str, WatchStudy] = field(default_factory=dict)
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    versions: list[PendingVersion] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    left: set[str] | None = None  # the recipients who opted out of the watch (read once)

    def load(self, digests: dict[str, str]) -> None:
        """The rows and links of these studies (by id, with their content digests now), and the
        stored versions their diffs will read."""
        ids = list(digests)
        self.rows = page_rows(session=self.session, nct_ids=ids)
        self.links = page_links(session=self.session, watch=self.watch, nct_ids=ids)
        wanted = set()
        for nct_id, digest in digests.items():
            row, link = self.rows.get(nct_id), self.links.get(nct_id)
            if row is not None and row.version_id is not None and row.fingerprint != digest:
                wanted.add(row.version_id)  # diffed against
            if link is not None and (row is None or link.version_id != row.version_id):
                wanted.add(link.version_id)  # the watch is behind the stored version: diffed from there
        self.records = version_records(session=self.session, version_ids=wanted)

    def record(self, version_id: int) -> dict[str, Any]:
        """A stored version's record: loaded with the page, or now."""
        found = self.records.get(version_id)
        return found if found is not None else load_version(session=self.session, version_id=version_id)

    def save(self, record: dict[str, Any], study: Study, fingerprint: str) -> int | PendingVersion:
        """repo.save_study_version, a new version inserted with the page's others."""
        row = self.rows.get(study.nct_id)
        if row is not None and row.fingerprint == fingerprint and row.version_id is not None:
            return row.version_id
        if row is None:
            row = StudyRow(nct_id=study.nct_id, first_seen_at=self.now, title="", status="", fingerprint="")
            self.session.add(row)
            self.rows[study.nct_id] = row
        row.title, row.status, row.phase = study.title, study.status, study.phase_label
        row.last_update_posted, row.fingerprint, row.changed_at = study.last_update_posted, fingerprint, self.now
        version = PendingVersion(
            {"nct_id": study.nct_id, "fingerprint": fingerprint, "record": pack_record(record),
             "last_update_posted": study.last_update_posted, "seen_at": self.now, "summary": None},
            [row],
        )  # fmt: skip
        self.versions.append(version)
        return version

    def point(self, link: WatchStudy, version: int | PendingVersion) -> None:
        """The link at this version: now, or once the page's new versions have their ids."""
        if isinstance(version, PendingVersion):
            version.owners.append(link)
        else:
            link.version_id = version
            self.session.add(link)

    def add_change(self, study: Study, change: FieldChange) -> None:
        """repo.record_change, written with the page's others, in this order."""
        self.changes.append(
            {"watch": self.watch, "kind": str(change.kind), "source": str(Source.CLINICALTRIALS),
             "nct_id": study.nct_id, "title": study.title, "summary": change.summary, "details": change.details,
             "detected_at": self.now, "alerted": change.suppressed_by is None, "suppressed_by": change.suppressed_by}
        )  # fmt: skip

    def write(self, recipients: Iterable[str]) -> None:
        """The new versions (rows and links then point at them), then the changes and alerts."""
        if self.versions:
            self.session.flush()  # new study rows first: their versions refer to them
            insert_versions(session=self.session, pending=self.versions)
        self.session.flush()
        if self.changes:
            if self.left is None:
                self.left = opted_out(session=self.session, watch=self.watch)
            add_changes(session=self.session, changes=self.changes, recipients=recipients, left=self.left)
        self.versions, self.changes = [], []

    def clear(self) -> None:
        self.rows, self.links, self.records = {}, {}, {}


def page_rows(*, session: Session, nct_ids: Sequence[str]) -> dict[str, StudyRow]:
    """The stored rows of these studies, loaded into the session (one query per 500)."""
    found: dict[str, StudyRow] = {}
    for start in range(0, len(nct_ids), IN_CHUNK):
        query = select(StudyRow).where(col(StudyRow.nct_id).in_(nct_ids[start : start + IN_CHUNK]))
        found.update((row.nct_id, row) for row in session.exec(query))
    return found


def page_links(*, session: Session, watch: str, nct_ids: Sequence[str]) -> dict[str, WatchStudy]:
    """The watch's links to these studies, loaded into the session (one query per 500)."""
    found: dict[str, WatchStudy] = {}
    for start in range(0, len(nct_ids), IN_CHUNK):
        chunk = nct_ids[start : start + IN_CHUNK]
        query = select(WatchStudy).where(WatchStudy.watch == watch, col(WatchStudy.nct_id).in_(chunk))
        found.update((link.nct_id, link) for link in session.exec(query))
    return found


def version_records(*, session: Session, version_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """These stored versions' records, unpacked (one query per 500; only the record is read)."""
    ids, found = sorted(set(version_ids)), dict[int, dict[str, Any]]()
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        query = select(StudyVersion.id, StudyVersion.record).where(col(StudyVersion.id).in_(chunk))
        found.update((int(version_id or 0), unpack_record(blob)) for version_id, blob in session.exec(query))
    return found


def insert_versions(*, session: Session, pending: Sequence[PendingVersion]) -> None:
    """Insert these versions in order, in one statement; point each one's owners at it. The
    studies of new rows must be flushed first (a version's foreign key)."""
    if not pending:
        return
    statement = insert(StudyVersion).returning(col(StudyVersion.id), sort_by_parameter_order=True)
    ids = session.scalars(statement, [version.values for version in pending])
    for version, version_id in zip(pending, ids, strict=True):
        for owner in version.owners:
            owner.version_id = int(version_id or 0)
            session.add(owner)


def add_changes(
    *, session: Session, changes: Sequence[dict[str, Any]], recipients: Iterable[str], left: set[str]
) -> None:
    """Insert these changes (ChangeRow columns) in order, in one statement, and owe each alerted
    one to each recipient not in `left` (opted out), as repo.add_change does one at a time."""
    if not changes:
        return
    statement = insert(ChangeRow).returning(col(ChangeRow.id), sort_by_parameter_order=True)
    ids = list(session.scalars(statement, list(changes)))
    owed = [address for address in dict.fromkeys(r.lower() for r in recipients) if address not in left]
    rows = [
        {"change_id": int(change_id or 0), "recipient": address}
        for change, change_id in zip(changes, ids, strict=True)
        if change["alerted"]
        for address in owed
    ]
    if rows:
        session.execute(insert(Notification), rows)
