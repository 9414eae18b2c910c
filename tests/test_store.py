"""Storage: migrations from empty to head and back, models agree with migrations, on SQLite and
PostgreSQL (the latter when TRIALWATCH_TEST_POSTGRES_URL is set, as in CI)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from watcher.errors import StoreError
from watcher.store import db, outbox, repo
from watcher.store.models import ChangeRow, Notification

TABLES = {"watch_state", "study", "study_version", "watch_study", "change", "delivery", "notification"}


def test_migrate_empty_to_head_and_back(database_url):
    engine = db.make_engine(database_url)
    assert db.current_revision(engine) is None
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    assert set(inspect(engine).get_table_names()) >= TABLES
    db.downgrade(engine, "base")
    assert db.current_revision(engine) is None
    assert not TABLES & set(inspect(engine).get_table_names())
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()


REVISIONS = [
    "0001",
    "0002",
    "0003",
    "0004",
    "0005",
    "0006",
    "0008",
    "0009",
    "0010",
    "0012",
    "0013",
    "0021",
    "0019",
    "0014",
    "0018",
    "0016",
]


def test_each_migration_steps_up_and_back_down_with_data_in_place(database_url):
    engine = db.make_engine(database_url)
    assert db.head_revision() == REVISIONS[-1]
    db.upgrade(engine, "0002")
    with engine.begin() as connection:  # a message stored before 0003 added its columns
        connection.execute(
            text("INSERT INTO delivery (recipient, message_id, status, subject, attempts, created_at) "
                 "VALUES ('a@example.org', '<m@x>', 'sent', 's', 1, :at)"),
            {"at": datetime(2026, 11, 1)},
        )  # fmt: skip
    for revision in REVISIONS[2:]:
        if revision == "0008":  # a change stored before 0008 added alerted / suppressed_by
            with engine.begin() as connection:
                connection.execute(
                    text("INSERT INTO change (watch, kind, source, nct_id, title, summary, details, detected_at) "
                         "VALUES ('w', 'status', 'clinicaltrials', 'NCT09000001', 't', 's.', '{}', :at)"),
                    {"at": datetime(2026, 11, 1)},
                )  # fmt: skip
        if revision == "0014":  # a user and their token stored before 0014 rebuilt web_user (SQLite)
            with engine.begin() as connection:
                connection.execute(
                    text("INSERT INTO web_user (email, password_hash, role, session_version, created_at) "
                         "VALUES ('ann@example.org', 'h', 'admin', 1, :at)"),
                    {"at": datetime(2026, 11, 1)},
                )  # fmt: skip
                connection.execute(
                    text("INSERT INTO api_token (user_id, name, token_hash, created_at) "
                         "SELECT id, 'feeds', 'abc', :at FROM web_user"),
                    {"at": datetime(2026, 11, 1)},
                )  # fmt: skip
        db.upgrade(engine, revision)
        assert db.current_revision(engine) == revision
    with engine.begin() as connection:  # the token made before scopes existed still acts in full
        assert connection.execute(text("SELECT scope FROM api_token")).scalars().all() == ["full"]
    with db.transaction(engine) as session:
        assert [d.quiet_watches for d in outbox.list_deliveries(session=session)] == [[]]
        (before_rules,) = repo.list_changes(session=session)  # alerted, as every change was before rules
        assert (before_rules.alerted, before_rules.suppressed_by) == (True, None)
    for previous in reversed(REVISIONS[:-1]):  # head to previous, one step at a time
        db.downgrade(engine, "-1")
        assert db.current_revision(engine) == previous
    assert "feed_item" not in inspect(engine).get_table_names()
    db.upgrade(engine)
    assert {"feed_item", "feed_state"} <= set(inspect(engine).get_table_names())


def test_the_head_revision_in_code_is_alembics_head():
    assert db.head_revision() == db.HEAD_REVISION, "a new migration: set watcher.store.db.HEAD_REVISION to it"


def test_upgrade_at_the_head_reads_the_version_and_leaves_a_database_behind_or_ahead_to_alembic(database_url):
    from alembic.util import CommandError

    engine = db.make_engine(database_url)
    assert db._stored_revisions(engine) == ()
    db.upgrade(engine, REVISIONS[-2])
    assert db._stored_revisions(engine) == (REVISIONS[-2],)
    db.upgrade(engine)  # behind: migrated
    assert db._stored_revisions(engine) == (db.HEAD_REVISION,) and db.current_revision(engine) == db.head_revision()
    db.upgrade(engine)  # at the head: nothing to do
    with engine.begin() as connection:  # a newer trialwatch's migration ran on it
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(CommandError, match="9999"):
        db.upgrade(engine)


def test_upgrade_that_cannot_connect_says_so(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path}")  # a folder: no database opens there
    with pytest.raises(StoreError, match=f"sqlite:///{tmp_path}: cannot migrate: unable to open database file$"):
        db.upgrade(engine)


def test_models_and_migrations_agree(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_ensure_migrated_refuses_an_empty_database(database_url):
    engine = db.make_engine(database_url)
    with pytest.raises(StoreError) as info:
        db.ensure_migrated(engine)
    assert "revision empty" in info.value.one_line() and "run `trialwatch db upgrade`" in info.value.one_line()


def test_notification_is_unique_per_change_and_recipient(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    with db.transaction(engine) as session:
        change = ChangeRow(
            watch="w",
            kind="status",
            source="clinicaltrials",
            nct_id="NCT09000001",
            title="t",
            summary="s.",
            details={"a": [1, "é"]},
            detected_at=now,
        )
        session.add(change)
        session.flush()
        session.add(Notification(change_id=change.id, recipient="a@example.org"))
    with pytest.raises(Exception), db.transaction(engine) as session:  # noqa: B017 (backend-specific class)
        session.add(Notification(change_id=change.id, recipient="a@example.org"))
    with db.transaction(engine) as session:
        (record,) = repo.list_changes(session=session)
    assert record.details == {"a": [1, "é"]}
    assert record.detected_at == now


def test_redact_url_hides_password():
    assert "s3cret" not in db.redact_url("postgresql+psycopg://user:s3cret@db/tw")


def test_a_study_version_is_packed_with_zstd_and_an_older_zlib_blob_still_reads():
    import json
    import zlib

    record = {"protocolSection": {"identificationModule": {"nctId": "NCT00000001", "briefTitle": "Ünïcode ≥ 1"}}}
    packed = repo.pack_record(record)
    assert packed[:4] == b"\x28\xb5\x2f\xfd"  # a zstd frame
    assert repo.unpack_record(packed) == record
    older = zlib.compress(json.dumps(record, separators=(",", ":")).encode(), 1)  # as trialwatch 0.13 stored it
    assert repo.unpack_record(older) == record
    assert repo.unpack_record(zlib.compress(json.dumps(record).encode(), 6)) == record
    huge = {"n": 2**70}  # orjson refuses it; the json module packs and reads it
    assert repo.unpack_record(repo.pack_record(huge)) == huge
