"""The studies of a poll's page that need the per-study path (a change, an alias, a watch with
join rules), read and written a page at a time: their rows, links and stored versions in one
query each; their new versions, changes and the notifications owed in one insert each, ids handed
back in order (repo.save_study_version and repo.record_change, in bulk). No commits here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, update
from sqlmodel import Session, col, select

from watcher.model import FieldChange, Source, Study
from watcher.store.models import ChangeRow, Notification, StudyRow, StudyVersion, WatchStudy
from watcher.store.packing import pack_record, unpack_record
from watcher.store.recipients import opted_out
from watcher.store.repo import get_watch_study, load_version
from watcher.store.studies import IN_CHUNK
from watcher.store.watch_keys import active_watch_id


@dataclass(slots=True)
class StoredRow:
    """A study's row as the per-study path reads it; `values`: the columns to write (None: none)."""

    nct_id: str
    fingerprint: str
    version_id: int | None
    values: dict[str, Any] | None = None
    new: bool = False  # inserted by this page


@dataclass(slots=True)
class Link:
    """The watch's link to a study; `values`: the columns to write (None: none)."""

    nct_id: str
    version_id: int
    values: dict[str, Any] | None = None
    new: bool = False  # inserted by this page


@dataclass(slots=True)
class PendingVersion:
    """A study version inserted with the page's others (`values`: its columns); `owners`: the study
    row and links that point at it once it has an id."""

    values: dict[str, Any]
    owners: list[StoredRow | Link] = field(default_factory=list)


@dataclass
class PageWriter:
    """One watch's per-study reads and writes, a page at a time: `load` the page, then per study
    `rows`, `links`, `record`, `save`, `refresh`, `join`, `point`, `adopt`, `add_change`; then
    `write` (also mid-page: what was written so far is then in the database) and `clear`."""

    session: Session
    watch: str
    recipients: Sequence[str]
    now: datetime
    rows: dict[str, StoredRow] = field(default_factory=dict)
    links: dict[str, Link] = field(default_factory=dict)
    blobs: dict[int, bytes] = field(default_factory=dict)  # stored versions' packed records, unpacked when read
    versions: list[PendingVersion] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    dirty: list[StoredRow | Link] = field(default_factory=list)  # rows and links with values to write
    left: set[str] | None = None  # the recipients who opted out of the watch (read once)
    watch_id: int | None = None  # the watch's id, its changes' key (read with `left`)

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
        self.blobs = version_blobs(session=self.session, version_ids=wanted)

    def record(self, version_id: int) -> dict[str, Any]:
        """A stored version's record: read with the page (kept packed: memory stays bounded by the
        page as sent), or now."""
        blob = self.blobs.get(version_id)
        return unpack_record(blob) if blob is not None else load_version(session=self.session, version_id=version_id)

    def save(self, record: dict[str, Any], study: Study, fingerprint: str) -> int | PendingVersion:
        """repo.save_study_version, a new version inserted with the page's others."""
        row = self.rows.get(study.nct_id)
        if row is not None and row.fingerprint == fingerprint and row.version_id is not None:
            return row.version_id
        if row is None:
            row = self.rows[study.nct_id] = StoredRow(study.nct_id, "", None, new=True)
            self._change(row, first_seen_at=self.now)
        self._change(
            row, title=study.title, status=study.status, phase=study.phase_label, fingerprint=fingerprint,
            last_update_posted=study.last_update_posted, changed_at=self.now,
        )  # fmt: skip
        row.fingerprint = fingerprint
        version = PendingVersion(
            {"nct_id": study.nct_id, "fingerprint": fingerprint, "record": pack_record(record),
             "last_update_posted": study.last_update_posted, "seen_at": self.now, "summary": None},
            [row],
        )  # fmt: skip
        self.versions.append(version)
        return version

    def refresh(self, row: StoredRow, fingerprint: str) -> None:
        """A new fingerprint for the same version (one stored by an older trialwatch)."""
        self._change(row, fingerprint=fingerprint)
        row.fingerprint = fingerprint

    def join(self, nct_id: str, version: int | PendingVersion) -> None:
        """The study joins the watch at this version."""
        link = self.links[nct_id] = Link(nct_id, 0, new=True)
        self._change(link, matched_at=self.now)
        self.point(link, version)

    def point(self, link: Link, version: int | PendingVersion) -> None:
        """The link at this version: now, or once the page's new versions have their ids."""
        if isinstance(version, PendingVersion):
            version.owners.append(link)
        else:
            link.version_id = version
        self._change(link)

    def adopt(self, alias: str, nct_id: str) -> Link | None:
        """The watch's link to a study stored under an old id (`alias`), moved to its current id."""
        self.write()  # what the page wrote so far is seen (a rare case)
        old = get_watch_study(session=self.session, watch=self.watch, nct_id=alias)
        if old is None:
            return None
        version_id, matched_at = old.version_id, old.matched_at
        self.session.delete(old)
        self.session.flush()
        self.links.pop(alias, None)
        link = self.links[nct_id] = Link(nct_id, version_id, new=True)
        self._change(link, matched_at=matched_at)
        return link

    def add_change(self, study: Study, change: FieldChange) -> None:
        """repo.record_change, written with the page's others, in this order."""
        self.changes.append(
            {"watch": self.watch, "kind": str(change.kind), "source": str(Source.CLINICALTRIALS),
             "nct_id": study.nct_id, "title": study.title, "summary": change.summary, "details": change.details,
             "detected_at": self.now, "alerted": change.suppressed_by is None, "suppressed_by": change.suppressed_by}
        )  # fmt: skip

    def write(self) -> None:
        """New rows, the new versions (rows and links then point at them), the rows and links
        changed, then the changes and the alerts owed."""
        new_rows = [row for row in self.dirty if isinstance(row, StoredRow) and row.new]
        if new_rows:  # first: their versions refer to them
            self.session.execute(insert(StudyRow), [{"nct_id": row.nct_id, **(row.values or {})} for row in new_rows])
            for row in new_rows:
                row.new = False  # its version id: updated with the others
        insert_versions(session=self.session, pending=self.versions)
        self._write_dirty()
        if self.changes:
            if self.left is None:
                self.left = opted_out(session=self.session, watch=self.watch)
                self.watch_id = active_watch_id(session=self.session, name=self.watch)
            for change in self.changes:
                change["watch_id"] = self.watch_id
            add_changes(session=self.session, changes=self.changes, recipients=self.recipients, left=self.left)
        self.versions, self.changes, self.dirty = [], [], []

    def clear(self) -> None:
        self.rows, self.links, self.blobs = {}, {}, {}

    def _change(self, owner: StoredRow | Link, **values: Any) -> None:
        """`values` to write (none: its version id only); written by the next `write`."""
        if owner.values is None:
            owner.values = {}
            self.dirty.append(owner)
        owner.values.update(values)

    def _write_dirty(self) -> None:
        """The rows and links changed (their version ids known now), in one statement per kind."""
        rows = [o for o in self.dirty if isinstance(o, StoredRow) and o.values is not None]
        links = [o for o in self.dirty if isinstance(o, Link) and o.values is not None]
        if rows:
            updates = [{"nct_id": r.nct_id, "version_id": r.version_id, **(r.values or {})} for r in rows]
            self.session.execute(update(StudyRow), updates)
        inserted = [{"watch": self.watch, "nct_id": k.nct_id, "version_id": k.version_id, **(k.values or {})}
                    for k in links if k.new]  # fmt: skip
        if inserted:
            self.session.execute(insert(WatchStudy), inserted)
        changed = [{"watch": self.watch, "nct_id": k.nct_id, "version_id": k.version_id} for k in links if not k.new]
        if changed:
            self.session.execute(update(WatchStudy), changed)
        for owner in rows + links:
            owner.values, owner.new = None, False


def page_rows(*, session: Session, nct_ids: Sequence[str]) -> dict[str, StoredRow]:
    """The stored rows of these studies (one query per 500)."""
    found: dict[str, StoredRow] = {}
    for start in range(0, len(nct_ids), IN_CHUNK):
        chunk = nct_ids[start : start + IN_CHUNK]
        query = select(StudyRow.nct_id, StudyRow.fingerprint, StudyRow.version_id).where(
            col(StudyRow.nct_id).in_(chunk)
        )
        found.update(
            (nct_id, StoredRow(nct_id, fingerprint, version_id))
            for nct_id, fingerprint, version_id in session.exec(query)
        )
    return found


def page_links(*, session: Session, watch: str, nct_ids: Sequence[str]) -> dict[str, Link]:
    """The watch's links to these studies (one query per 500)."""
    found: dict[str, Link] = {}
    for start in range(0, len(nct_ids), IN_CHUNK):
        chunk = nct_ids[start : start + IN_CHUNK]
        query = select(WatchStudy.nct_id, WatchStudy.version_id).where(
            WatchStudy.watch == watch, col(WatchStudy.nct_id).in_(chunk)
        )
        found.update((nct_id, Link(nct_id, version_id)) for nct_id, version_id in session.exec(query))
    return found


def version_blobs(*, session: Session, version_ids: Iterable[int]) -> dict[int, bytes]:
    """These stored versions' packed records (one query per 500; only the record is read)."""
    ids, found = sorted(set(version_ids)), dict[int, bytes]()
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        query = select(StudyVersion.id, StudyVersion.record).where(col(StudyVersion.id).in_(chunk))
        found.update((int(version_id or 0), blob) for version_id, blob in session.exec(query))
    return found


def insert_versions(*, session: Session, pending: Sequence[PendingVersion]) -> None:
    """Insert these versions in order, in one statement; point each one's owners at it (their
    rows, written after). The studies of new rows must be inserted first (a version's foreign key)."""
    if not pending:
        return
    statement = insert(StudyVersion).returning(col(StudyVersion.id), sort_by_parameter_order=True)
    ids = session.scalars(statement, [version.values for version in pending])
    for version, version_id in zip(pending, ids, strict=True):
        for owner in version.owners:
            owner.version_id = int(version_id or 0)


def add_changes(
    *, session: Session, changes: Sequence[dict[str, Any]], recipients: Iterable[str], left: set[str]
) -> None:
    """Insert these changes (ChangeRow columns) in order, in one statement, and owe each alerted
    one to each recipient not in `left` (opted out), as repo.add_change does one at a time."""
    owed = [address for address in dict.fromkeys(r.lower() for r in recipients) if address not in left]
    insert_changes(session=session, changes=[(change, owed) for change in changes])


def insert_changes(*, session: Session, changes: Sequence[tuple[dict[str, Any], Sequence[str]]]) -> None:
    """Insert these changes (ChangeRow columns, each with the addresses it is owed to) in order, in
    one statement, and owe each alerted one to its addresses (lower-cased, opted-out ones left out
    by the caller): add_changes for changes of several watches at once."""
    if not changes:
        return
    statement = insert(ChangeRow).returning(col(ChangeRow.id), sort_by_parameter_order=True)
    ids = list(session.scalars(statement, [change for change, _ in changes]))
    rows = [
        {"change_id": int(change_id or 0), "recipient": address}
        for (change, owed), change_id in zip(changes, ids, strict=True)
        if change["alerted"]
        for address in owed
    ]
    if rows:
        session.execute(insert(Notification), rows)
