"""Watches in the database (store.watches): provisioning from the file, web watches, names unique
across both, archive instead of delete, and the audit of each, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watcher.config import Config
from watcher.errors import ConfigError
from watcher.store import db
from watcher.store import watches as stored
from watcher.watch import WatchConfig

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def watch(name: str, **fields: object) -> WatchConfig:
    return WatchConfig.model_validate({"name": name, "conditions": ["renal cell carcinoma"],
                                       "recipients": ["onc@example.org"], **fields})  # fmt: skip


@pytest.fixture
def engine(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    return engine


def test_provisioning_inserts_updates_and_archives_the_files_watches(engine):
    with db.transaction(engine) as session:
        assert stored.provision_watches(session=session, watches=[watch("A"), watch("B")], now=NOW, where="t.toml") == [
            "A", "B"]  # fmt: skip
    with db.transaction(engine) as session:  # the same file again: nothing to do, nothing audited
        assert stored.provision_watches(session=session, watches=[watch("A"), watch("B")], now=NOW, where="t") == []
    later = NOW + timedelta(hours=1)
    with db.transaction(engine) as session:
        changed = stored.provision_watches(
            session=session, watches=[watch("A", terms=["CAR-T"])], now=later, where="t.toml"
        )
        assert changed == ["A", "B"]
    with db.transaction(engine) as session:
        assert [w.name for w in stored.active_watches(session=session)] == ["A"]
        assert stored.active_watches(session=session)[0].terms == ["CAR-T"]
        log = stored.audit_entries(session=session)
        assert [(e.action, e.watch) for e in log] == [("archive", "B"), ("provision", "A"), ("provision", "B"),
                                                       ("provision", "A")]  # fmt: skip
        assert log[1].changes == {"terms": [[], ["CAR-T"]]}
        assert log[1].actor == stored.CONFIG_ACTOR


def test_web_watches_are_created_edited_archived_and_audited(engine):
    with db.transaction(engine) as session:
        stored.create_watch(session=session, watch=watch("Mine"), owner="ann@example.org", now=NOW)
    with db.transaction(engine) as session, pytest.raises(stored.WatchNameTaken):
        stored.create_watch(session=session, watch=watch("Mine"), owner="bob@example.org", now=NOW)
    with db.transaction(engine) as session:
        stored.update_watch(session=session, name="Mine", watch=watch("Mine", digest="weekly"),
                            actor="ann@example.org", now=NOW)  # fmt: skip
        row = stored.get_watch_row(session=session, name="Mine")
        assert row is not None and row.source == "web" and row.owner == "ann@example.org"
        assert stored.watch_of(row).digest == "weekly"
    with db.transaction(engine) as session:
        stored.archive_watch(session=session, name="Mine", actor="ann@example.org", now=NOW)
    with db.transaction(engine) as session:
        assert stored.active_watches(session=session) == []
        assert [e.action for e in stored.audit_entries(session=session, watch="Mine")] == ["archive", "update",
                                                                                          "create"]  # fmt: skip
        assert stored.audit_entries(session=session, watch="Mine")[1].changes == {"digest": ["daily", "weekly"]}
        stored.create_watch(session=session, watch=watch("Mine"), owner="bob@example.org", now=NOW)  # name free again


def test_names_are_unique_across_the_file_and_the_browser(engine):
    with db.transaction(engine) as session:
        stored.create_watch(session=session, watch=watch("Shared"), owner="ann@example.org", now=NOW)
    with (
        pytest.raises(
            ConfigError, match=r"t\.toml: watch 'Shared': the name is taken by a watch created in the browser"
        ),
        db.transaction(engine) as session,
    ):
        stored.provision_watches(session=session, watches=[watch("Shared"), watch("Other")], now=NOW, where="t.toml")
    with db.transaction(engine) as session:  # refused whole: "Other" was not written either
        assert [w.name for w in stored.active_watches(session=session)] == ["Shared"]
        stored.provision_watches(session=session, watches=[watch("Filed")], now=NOW, where="t.toml")
    with db.transaction(engine) as session:
        with pytest.raises(stored.WatchNameTaken):
            stored.create_watch(session=session, watch=watch("Filed"), owner="ann@example.org", now=NOW)
        with pytest.raises(ConfigError, match="managed in trialwatch.toml"):
            stored.update_watch(session=session, name="Filed", watch=watch("Filed"), actor="ann@example.org", now=NOW)
        with pytest.raises(ConfigError, match="managed in trialwatch.toml"):
            stored.archive_watch(session=session, name="Filed", actor="ann@example.org", now=NOW)


def test_config_with_the_databases_watches_keeps_everything_else():
    config = Config.model_validate({"watch": [watch("A").model_dump()]})
    merged = config.with_watches([watch("A"), watch("B")])
    assert [w.name for w in merged.watch] == ["A", "B"]
    assert merged.clinicaltrials == config.clinicaltrials and [w.name for w in config.watch] == ["A"]
