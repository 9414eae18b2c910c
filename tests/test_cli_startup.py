"""Issue #14: `trialwatch --help` and `trialwatch version` stay quick because the command line
imports only typer and its own modules; each command imports what it uses when it runs. Checked
by what a fresh interpreter has imported (never by timing)."""

from __future__ import annotations

import subprocess
import sys

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
