"""Database tables (SQLModel). Alembic migrations in alembic/ must agree with these.

State per watch (`WatchState`), every study once (`StudyRow`) with its versions
(`StudyVersion`, stored only when a tracked field changed, compressed), which studies each watch
has seen and at which version (`WatchStudy`), detected changes (`ChangeRow`), and the outbox:
one `Notification` per change per recipient, grouped into `Delivery` messages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, UniqueConstraint, false, text, true
from sqlmodel import Field, SQLModel

from watcher.store.columns import UTCDateTime as UTCDateTime
from watcher.store.columns import counter as _counter
from watcher.store.columns import when as _when
from watcher.store.people_tables import ApiTokenRow as ApiTokenRow
from watcher.store.people_tables import SetupToken as SetupToken
from watcher.store.people_tables import SignInFailure as SignInFailure
from watcher.store.people_tables import UserRow as UserRow
from watcher.store.people_tables import WebSecret as WebSecret
from watcher.store.people_tables import WebSessionRow as WebSessionRow


class WatchState(SQLModel, table=True):
    __tablename__ = "watch_state"

    name: str = Field(primary_key=True, max_length=200)
    query_signature: str = Field(default="", max_length=64)
    baseline_at: datetime | None = _when(nullable=True)
    last_poll_at: datetime | None = _when(nullable=True)
    last_success_at: datetime | None = _when(nullable=True)
    last_error: str | None = Field(default=None)
    last_digest_at: datetime | None = _when(nullable=True)
    data_timestamp: str | None = Field(default=None, max_length=40)
    last_full_at: datetime | None = _when(nullable=True)
    failing_since: datetime | None = _when(nullable=True)
    request_count: int = _counter()  # registry requests charged to this watch, every poll
    unchanged_count: int = _counter()  # polls that ended at /version: the registry's "not modified"


class StudyRow(SQLModel, table=True):
    __tablename__ = "study"

    nct_id: str = Field(primary_key=True, max_length=16)
    title: str
    status: str = Field(max_length=40)
    phase: str = Field(default="", max_length=80)
    last_update_posted: str | None = Field(default=None, max_length=10)
    fingerprint: str = Field(max_length=64)
    version_id: int | None = Field(default=None)
    first_seen_at: datetime = _when()
    changed_at: datetime = _when()


class StudyVersion(SQLModel, table=True):
    __tablename__ = "study_version"

    id: int | None = Field(default=None, primary_key=True)
    nct_id: str = Field(index=True, max_length=16, foreign_key="study.nct_id")
    fingerprint: str = Field(max_length=64)
    record: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    last_update_posted: str | None = Field(default=None, max_length=10)
    seen_at: datetime = _when()
    # filled on first view by registry.studies (cache): the changes from the version before and the
    # facts the study page charts, so a page of a 1.5 MB record does not unpack every version
    summary: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # the registry's own version number (0 = the site's "Version 1") and submission day, when known:
    # read from its version history (registry/backfill.py), or cited after a poll (registry/citing.py)
    registry_version: int | None = Field(default=None)
    registry_date: str | None = Field(default=None, max_length=10)
    from_history: bool = Field(default=False, sa_column_kwargs={"server_default": false()})  # seen_at: its date


class HistoryBackfill(SQLModel, table=True):
    """A study's backfill from the registry's version history. A study some watch holds and that
    has no row here is queued (store/backfill.py); `status` pending | done | failing."""

    __tablename__ = "history_backfill"

    nct_id: str = Field(primary_key=True, max_length=16)
    status: str = Field(default="pending", max_length=16, index=True)
    queued_at: datetime = _when()
    attempts: int = _counter()  # failed tries since the last success
    next_attempt_at: datetime | None = _when(nullable=True)  # failing: not before then
    last_error: str | None = Field(default=None)
    done_at: datetime | None = _when(nullable=True)
    versions: int = _counter()  # registry versions stored for the study
    newest: int | None = Field(default=None)  # the newest registry version number listed


class WatchStudy(SQLModel, table=True):
    __tablename__ = "watch_study"

    watch: str = Field(primary_key=True, max_length=200)
    nct_id: str = Field(primary_key=True, max_length=16, foreign_key="study.nct_id")
    version_id: int = Field(foreign_key="study_version.id")
    matched_at: datetime = _when()


class ChangeRow(SQLModel, table=True):
    __tablename__ = "change"
    # the browser's timeline: newest first on (detected_at, id), keyset-paged, optionally filtered
    __table_args__ = (
        Index("ix_change_detected_at_id", "detected_at", "id"),
        Index("ix_change_watch_detected_at_id", "watch", "detected_at", "id"),
        Index("ix_change_watch_id_detected_at_id", "watch_id", "detected_at", "id"),
        Index("ix_change_nct_id_detected_at_id", "nct_id", "detected_at", "id"),
        Index("ix_change_kind_detected_at_id", "kind", "detected_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    watch: str = Field(index=True, max_length=200)  # its name when detected
    # the watch it belongs to (#25, W18: a new watch taking an archived watch's name starts empty);
    # None only for a watch never stored in the watch table (found by its name then)
    watch_id: int | None = Field(default=None, foreign_key="watch.id")
    kind: str = Field(max_length=40)
    source: str = Field(max_length=40)
    nct_id: str = Field(index=True, max_length=16)
    title: str
    summary: str
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    detected_at: datetime = _when(index=True)
    alerted: bool = Field(default=True, sa_column_kwargs={"server_default": true()})  # false: a rule held it back
    suppressed_by: str | None = Field(default=None)  # the rule that held it back ("min_slip_days=30")
    item_type: str | None = Field(
        default=None, max_length=20
    )  # an article change's: meeting_abstract | preprint | article
    # read from the registry's version history: a past change, never mailed (alerted false too)
    historical: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class FeedState(SQLModel, table=True):
    """One configured feed: where it lives now, its validators, its health and its schedule."""

    __tablename__ = "feed_state"

    name: str = Field(primary_key=True, max_length=200)
    configured_url: str = Field(default="")
    url: str = Field(default="")  # updated on 301 / 308
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = Field(default=None, max_length=64)
    ttl_minutes: int | None = None
    title: str | None = None
    baseline_at: datetime | None = _when(nullable=True)
    last_poll_at: datetime | None = _when(nullable=True)
    last_success_at: datetime | None = _when(nullable=True)
    next_poll_at: datetime | None = _when(nullable=True)
    error_count: int = 0
    last_error: str | None = None
    failing_since: datetime | None = _when(nullable=True)
    gone_at: datetime | None = _when(nullable=True)  # 410: polling stopped
    request_count: int = _counter()  # requests made, every poll
    not_modified_count: int = _counter()  # of which answered 304 Not Modified


class FeedItemRow(SQLModel, table=True):
    """One article, once, whichever feeds carried it (identity: literature.items.item_key)."""

    __tablename__ = "feed_item"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=500)
    feed: str = Field(index=True, max_length=200)  # the first feed it was seen in
    doi: str | None = Field(default=None, index=True, max_length=300)
    title: str
    link: str = Field(default="")
    published: datetime | None = _when(nullable=True)
    nct_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    first_seen_at: datetime = _when(index=True)
    pmid: str | None = Field(default=None, index=True, max_length=20)  # set once PubMed has returned it
    item_type: str = Field(default="article", max_length=20, sa_column_kwargs={"server_default": "article"})


class ArticleWatch(SQLModel, table=True):
    """A watch has had its say on an article (told of it, or it came with a baseline): each watch
    is told of one article at most once, whichever source brought it."""

    __tablename__ = "article_watch"

    item_id: int = Field(primary_key=True, foreign_key="feed_item.id")
    watch: str = Field(primary_key=True, max_length=200)
    seen_at: datetime = _when()


class PubmedState(SQLModel, table=True):
    """One watch's PubMed searches: the query its baseline was taken with, health, last success."""

    __tablename__ = "pubmed_state"

    watch: str = Field(primary_key=True, max_length=200)
    query_signature: str = Field(default="", max_length=64)
    baseline_at: datetime | None = _when(nullable=True)
    last_poll_at: datetime | None = _when(nullable=True)
    last_success_at: datetime | None = _when(nullable=True)
    last_error: str | None = None
    failing_since: datetime | None = _when(nullable=True)


class ReadoutState(SQLModel, table=True):
    """One Crossref journal (`crossref:<ISSN>`) or one watch's Europe PMC searches
    (`europepmc:<watch>`): the query its baseline was taken with, health, last success (#20)."""

    __tablename__ = "readout_state"

    name: str = Field(primary_key=True, max_length=220)
    query_signature: str = Field(default="", max_length=64)
    baseline_at: datetime | None = _when(nullable=True)
    last_poll_at: datetime | None = _when(nullable=True)
    last_success_at: datetime | None = _when(nullable=True)
    last_error: str | None = None
    failing_since: datetime | None = _when(nullable=True)
    request_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class Delivery(SQLModel, table=True):
    """One message to one recipient. Created (pending) before it is sent."""

    __tablename__ = "delivery"

    id: int | None = Field(default=None, primary_key=True)
    recipient: str = Field(index=True, max_length=320)
    message_id: str = Field(unique=True, max_length=200)
    status: str = Field(default="pending", index=True, max_length=16)
    subject: str = Field(default="")
    attempts: int = 0
    last_error: str | None = None
    created_at: datetime = _when()
    sent_at: datetime | None = _when(nullable=True)
    next_attempt_at: datetime | None = _when(nullable=True)
    claimed_at: datetime | None = _when(nullable=True)  # status "sending" since then
    quiet_watches: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, default=list))
    skip_reason: str | None = None  # status "skipped": never sent, and why (the recipient's choice)


class Notification(SQLModel, table=True):
    """One change owed to one recipient; delivery_id is set when a message carries it."""

    __tablename__ = "notification"
    __table_args__ = (UniqueConstraint("change_id", "recipient", name="uq_notification_change_recipient"),)

    id: int | None = Field(default=None, primary_key=True)
    change_id: int = Field(foreign_key="change.id", index=True)
    recipient: str = Field(index=True, max_length=320)
    delivery_id: int | None = Field(default=None, foreign_key="delivery.id", index=True)


class WatchRow(SQLModel, table=True):
    """Every watch, wherever it is defined: `source` "config" (provisioned from the TOML file at
    start and on SIGHUP, read-only elsewhere) or "web" (created in the browser or the API).
    `definition` holds the WatchConfig fields as JSON; archived watches keep their changes, their
    audit and their recipients' choices (keyed by `id`): a new watch may take an archived one's
    name and starts with none of them. Names are unique among the active watches."""

    __tablename__ = "watch"
    __table_args__ = (
        Index(
            "uq_watch_active_name", "name", unique=True,
            sqlite_where=text("archived_at IS NULL"), postgresql_where=text("archived_at IS NULL"),
        ),
    )  # fmt: skip

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    source: str = Field(default="web", max_length=16)
    owner: str | None = Field(default=None, max_length=320)  # the creating user's address (web)
    definition: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _when()
    updated_at: datetime = _when()
    archived_at: datetime | None = _when(nullable=True)


class AuditEntry(SQLModel, table=True):
    """Who created, edited, archived or provisioned a watch, when, and what changed
    (`changes`: field -> [before, after])."""

    __tablename__ = "audit"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _when(index=True)
    actor: str = Field(max_length=320)
    action: str = Field(max_length=16)  # create | update | archive | provision | restore
    watch: str = Field(index=True, max_length=200)  # its name then
    watch_id: int | None = Field(default=None, index=True, foreign_key="watch.id")
    changes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class RecipientPreference(SQLModel, table=True):
    """What one recipient asked for one watch (the manage page, the unsubscribe link), for config
    and web watches alike: the file is never edited. A row outlives the recipient's removal from
    the watch, so an address removed and added back stays opted out until it subscribes again.
    `schedule` None follows the watch's; `last_digest_at` is the recipient's own last digest slot
    while they have their own schedule."""

    __tablename__ = "recipient_preference"
    __table_args__ = (UniqueConstraint("watch_id", "recipient", name="uq_recipient_preference_watch_id_recipient"),)

    id: int | None = Field(default=None, primary_key=True)
    watch: str = Field(index=True, max_length=200)  # its name when first chosen
    watch_id: int | None = Field(default=None, foreign_key="watch.id")  # None: a watch not in the table
    recipient: str = Field(index=True, max_length=320)  # lower case, as in notification
    unsubscribed_at: datetime | None = _when(nullable=True)
    schedule: str | None = Field(default=None, max_length=16)  # immediate | daily | weekly
    paused_at: datetime | None = _when(nullable=True)
    paused_until: datetime | None = _when(nullable=True)
    pause_changes: str = Field(default="deliver", max_length=16)  # deliver (after the pause) | skip
    last_digest_at: datetime | None = _when(nullable=True)
    updated_at: datetime = _when()


class MilestoneMark(SQLModel, table=True):
    """A watch has had its say on a study's milestone (watcher.milestones): told of it once, or
    found it already past when it began to follow the study. `marker`: "" for results_overdue (once
    per study), the date for estimated_date_passed (once per date)."""

    __tablename__ = "milestone_mark"

    watch: str = Field(primary_key=True, max_length=200)
    nct_id: str = Field(primary_key=True, max_length=16)
    kind: str = Field(primary_key=True, max_length=40)
    marker: str = Field(primary_key=True, max_length=20)
    noted_at: datetime = _when()


class MilestoneWatch(SQLModel, table=True):
    """Since when a watch's milestones are followed (what happened before is never mailed), and
    the last day they were looked at (a milestone happens on a day: once a day is enough)."""

    __tablename__ = "milestone_watch"

    watch: str = Field(primary_key=True, max_length=200)
    since: datetime = _when()
    passed_on: str | None = Field(default=None, max_length=10)


class CalendarEvent(SQLModel, table=True):
    """One dated event of a study in the calendar feeds (`primary_completion`, `completion`,
    `results_due`): its day as last published and its SEQUENCE, which grows each time the day moves."""

    __tablename__ = "calendar_event"

    nct_id: str = Field(primary_key=True, max_length=16)
    event: str = Field(primary_key=True, max_length=24)
    day: str = Field(max_length=10)
    sequence: int = Field(default=0)
    updated_at: datetime = _when()
