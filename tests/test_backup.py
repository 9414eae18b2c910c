"""`trialwatch db backup FILE`: a consistent copy while the daemon runs (SQLite's online backup
API; the pg_dump command for PostgreSQL). Restoring it (stop, copy back, start) makes the next
poll alert nothing that was alerted before the backup."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

from watcher.store.backup import pg_dump_command


def test_a_backup_taken_during_a_write_restores_to_a_database_that_alerts_nothing_twice(
    tmp_path: Path, changed: Any, smtp: Any
) -> None:
    database = tmp_path / "tw.db"
    cli = changed(smtp=smtp, database_url=f"sqlite:///{database}")
    cli("digest", "--now")
    alerted = len(smtp.wait_for(2))

    writer = sqlite3.connect(database)  # the daemon, in the middle of a write it has not committed
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE watch_state SET request_count = 999999")
    backup = tmp_path / "backups" / "tw-1.db"
    backup.parent.mkdir()
    output = cli("db", "backup", str(backup))
    writer.rollback()
    writer.close()
    assert f"to {backup}" in output and "revision" in output
    with sqlite3.connect(backup) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("SELECT max(request_count) FROM watch_state").fetchone()[0] != 999999, "uncommitted"
    assert not list(backup.parent.glob("*.partial")) and not Path(f"{backup}-wal").exists()
    assert "exists already" in cli("db", "backup", str(backup), code=2), "a backup never overwrites"

    for lost in tmp_path.glob("tw.db*"):  # the disk is lost: stop, copy the backup back, start
        lost.unlink()
    shutil.copyfile(backup, database)
    assert "0 changes" in cli("poll", "--full")
    assert "nothing to deliver" in cli("digest", "--now")
    assert len(smtp.received) == alerted


def test_postgresql_gets_the_pg_dump_command(tmp_path: Path, cli_for: Any, postgres_url: str) -> None:
    cli = cli_for(database_url=postgres_url)
    cli("db", "upgrade")
    output = cli("db", "backup", str(tmp_path / "tw.dump"))
    database = postgres_url.rsplit("/", 1)[1]
    assert "pg_dump --format=custom" in output and f"/{database}" in output and "+psycopg" not in output
    assert not (tmp_path / "tw.dump").exists()


def test_the_pg_dump_command_never_shows_the_password() -> None:
    line = pg_dump_command("postgresql+psycopg://tw:s3cret@db.example:5433/trialwatch", Path("/b/tw.dump"))
    assert line == "pg_dump --format=custom --no-owner --file /b/tw.dump postgresql://tw@db.example:5433/trialwatch"
