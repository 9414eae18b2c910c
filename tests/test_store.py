"""Storage: migrations from empty to head and back, models agree with migrations, on SQLite and
PostgreSQL (the latter when TRIALWATCH_TEST_POSTGRES_URL is set, as in CI)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from watcher.errors import StoreError
from watcher.store import db, repo
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
