"""Issue #14: `trialwatch --help` and `trialwatch version` stay quick because the command line
imports only typer and its own modules; each command imports what it uses when it runs, and a
poll what its work needs (Alembic to migrate, the feed and PubMed pipelines for feeds and PubMed,
Jinja2 for a mail). Checked by what a fresh interpreter has imported (never by timing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.harness import write_config
from watcher import __version__

HEAVY = ("sqlalchemy", "sqlmodel", "alembic", "requests", "rich", "apscheduler", "feedparser", "jinja2", "orjson",
         "psycopg", "tenacity", "prometheus_client", "pydantic_settings")  # fmt: skip


def imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return set(done.stdout.split())


def test_the_command_line_modules_import_no_heavy_library():
    assert imported_after("import watcher.cli.operating").isdisjoint(HEAVY)


def test_help_lists_every_command_without_heavy_imports():
    code = (
        "import sys\nfrom watcher.__main__ import main\nsys.argv = ['trialwatch', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    found = imported_after(code)
    assert found.isdisjoint(HEAVY), found & set(HEAVY)
    done = subprocess.run([sys.executable, "-m", "watcher", "--help"], capture_output=True, text=True, timeout=120)
    for command in ("check", "poll", "digest", "run", "changes", "history", "preview", "queries", "version", "db"):
        assert f" {command} " in done.stdout, command


def test_version_is_answered_by_the_entry_point():
    code = "import sys\nfrom watcher.__main__ import main\nsys.argv = ['trialwatch', 'version']\nmain()"
    found = imported_after(code)
    assert "typer" not in found and found.isdisjoint(HEAVY)
    done = subprocess.run([sys.executable, "-m", "watcher", "version"], capture_output=True, text=True, timeout=120)
    assert done.stdout == f"trialwatch {__version__}\n"


def test_a_command_still_imports_what_it_uses(tmp_path):
    config = tmp_path / "trialwatch.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/tw.db"\n')
    code = (
        f"import sys\nfrom watcher.__main__ import main\nsys.argv = ['trialwatch', '-c', {str(config)!r}, 'check']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code"
    )
    assert {"sqlalchemy", "alembic", "rich"} <= imported_after(code)


def command_imports(config: Path, *args: str) -> tuple[int, set[str]]:
    """The exit code of `trialwatch --config CONFIG ARGS` run by a fresh interpreter, and the
    modules it imported (full names)."""
    code = (
        f"import sys\nfrom watcher.__main__ import main\nsys.argv = ['trialwatch', '-c', {str(config)!r}, *{args!r}]\n"
        "try:\n    main()\n    status = 0\nexcept SystemExit as exc:\n    status = exc.code or 0\n"
        "print(status, ' '.join(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    status, _, modules = done.stdout.splitlines()[-1].partition(" ")
    return int(status), set(modules.split())


def test_a_poll_imports_alembic_only_to_migrate_and_the_feed_pipeline_only_for_feeds(tmp_path, registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    config = write_config(tmp_path, registry, database_url=f"sqlite:///{tmp_path}/tw.db")
    literature = {"feedparser", "watcher.literature.pipeline", "watcher.literature.pubmed_pipeline"}
    status, first = command_imports(config, "poll")  # an empty database: migrated, then the baseline
    assert status == 0 and "alembic" in first and first.isdisjoint(literature)
    status, again = command_imports(config, "poll")  # at the head, no feed, no PubMed, nothing to send
    assert status == 0 and again.isdisjoint({"alembic", "jinja2", *literature}), again & {"alembic", "jinja2"}
    feed = f'[[feed]]\nname = "Gone"\nurl = "{registry.base_url}/gone.rss"\n'
    with_feed = write_config(tmp_path, registry, database_url=f"sqlite:///{tmp_path}/tw.db", feeds=feed)
    status, fed = command_imports(with_feed, "poll")  # the feed fails (404): exit 1, after parsing nothing
    assert status == 1 and {"watcher.literature.pipeline", "feedparser"} <= fed and "alembic" not in fed
