"""Running the `trialwatch` command in-process against a config that points at the test servers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import time_machine
from typer.testing import CliRunner

from watcher.cli.operating import app

REAL_0212 = "study_NCT05805501_rcc_bispecific_2026-02-12.json"
REAL_0216 = "study_NCT05805501_rcc_bispecific_2026-02-16.json"
REAL_0218 = "study_NCT05805501_rcc_bispecific_2026-02-18.json"


def write_config(
    tmp_path: Path,
    registry: Any,
    *,
    database_url: str | None = None,
    smtp: Any = None,
    watches: str | None = None,
    extra_ctgov: str = "",
    security: str = "none",
    extra_email: str = "",
    digest: str = "",
    feeds: str = "",
    pubmed: str = "",
    server: str = "",
    history: bool = False,
) -> Path:
    mail = f'smtp_host = "{smtp.host}"\nsmtp_port = {smtp.port}\nsecurity = "{security}"' if smtp else 'smtp_host = ""'
    text = f"""
[database]
url = "{database_url or "sqlite:///var/trialwatch.db"}"

[clinicaltrials]
base_url = "{registry.base_url}"
requests_per_second = 0
backoff_seconds = 0.01
max_attempts = 3
history = {"true" if history else "false"}
{extra_ctgov}

[email]
sender = "trialwatch <trialwatch@localhost>"
{mail}
outbox_dir = "var/outbox"
timeout = 5
{extra_email}

[digest]
{digest}

{feeds}

{pubmed}
{f"[server]{chr(10)}{server}" if server else ""}

{watches or WATCHES}
"""
    path = tmp_path / "trialwatch.toml"
    path.write_text(text)
    return path


WATCHES = """
[[watch]]
name = "RCC bispecifics"
conditions = ["renal cell carcinoma"]
terms = ["bispecific", "tobemstomig"]
nct_ids = ["NCT05805501"]
recipients = ["onc@example.org", "coordinator@example.org"]
digest = "daily"

[[watch]]
name = "RCC CAR-T"
conditions = ["renal cell carcinoma"]
terms = ["CAR-T"]
recipients = ["onc@example.org"]
digest = "weekly"
"""


# Our own fixtures' v2 was posted on 2026-11-20: the tests' clock stands just after it.
TODAY = "2026-11-21T10:00:00+00:00"


class Cli:
    """Runs `trialwatch --config … ARGS` in-process, with the clock at `self.now` (time-machine)."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.runner = CliRunner()
        self.last_poll = ""
        self.now = TODAY

    def __call__(self, *args: str, code: int = 0) -> str:
        with time_machine.travel(self.now, tick=True):
            result = self.runner.invoke(app, ["--config", str(self.config), *args])
        output = result.stdout + result.stderr
        assert result.exit_code == code, f"exit {result.exit_code}: {output}\n{result.exception!r}"
        return output

    def changes(self, *args: str) -> list[dict[str, Any]]:
        with time_machine.travel(self.now, tick=True):
            result = self.runner.invoke(app, ["--config", str(self.config), "changes", "--json", *args])
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)


def posted(record: dict[str, Any], day: str) -> dict[str, Any]:
    """A copy of `record` as the registry shows it after an update posted on `day`."""
    copied = copy.deepcopy(record)
    copied["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {"date": day, "type": "ACTUAL"}
    return copied
