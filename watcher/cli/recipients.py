"""`trialwatch recipients`: what each recipient of each watch receives (their own schedule, a
pause, an opt-out), and the lines `check` prints about recipients looking after themselves."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from watcher.cli.shared import State, guarded, make_service, now, out

if TYPE_CHECKING:  # each command imports what it uses when it runs: `--help` and `version` stay quick
    from sqlalchemy import Engine

    from watcher.config import Config

app = typer.Typer()


@app.command()
def recipients(
    watch: Annotated[str | None, typer.Option(help="Only this watch.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List each recipient of each watch with their schedule, pause and opt-out.

    A recipient changes these themselves through the links at the foot of every message (when
    [server] public_url is set and the web app is served): their own schedule (immediate, daily,
    weekly) instead of the watch's, a pause until a date, or unsubscribing. An opt-out is kept in
    the database, also for a watch of the config file (the file is never edited): a recipient
    removed from the file and added back stays opted out until they subscribe again.

    Example: trialwatch recipients --watch "RCC bispecifics" --json
    """

    from watcher.config import load_config

    def action() -> int:
        config = load_config(State.config_path)
        chosen = [config.watch_named(watch)] if watch else config.watch
        service = make_service(config)
        rows = recipient_rows(service.engine, config, [w.name for w in chosen], now())
        if as_json:
            out.print(json.dumps(rows, indent=2, ensure_ascii=False), markup=False)
            return 0
        for name in [w.name for w in chosen]:
            out.print(f"{name}:", markup=False)
            for row in (r for r in rows if r["watch"] == name):
                out.print(f"  {row['recipient']}: {describe(row)}", markup=False)
        return 0

    guarded(action)


def recipient_rows(engine: Engine, config: Config, watches: list[str], moment: datetime) -> list[dict[str, Any]]:
    """One row per (watch, recipient of the watch), in config order."""
    from watcher.store import db
    from watcher.store.recipients import receiving

    chosen = [(w.name, w.digest, w.recipients) for w in config.watch if w.name in watches]
    with db.transaction(engine) as session:
        return [row.as_json() for row in receiving(session=session, watches=chosen, now=moment)]


def describe(row: dict[str, Any]) -> str:
    if row["unsubscribed_at"]:
        return f"unsubscribed since {row['unsubscribed_at'][:16].replace('T', ' ')} UTC"
    whose = "their own" if row["own_schedule"] else "the watch's"
    text = f"{row['schedule']} ({whose})"
    if row["paused_until"]:
        then = "sent after it" if row["pause_changes"] == "deliver" else "skipped"
        text += f", paused until {row['paused_until'][:16].replace('T', ' ')} UTC (its changes {then})"
    return text


def check_lines(config: Config, engine: Engine, *, migrated: bool) -> list[str]:
    """What `check` says about recipients: the opt-outs per watch, and a warning when recipients
    cannot unsubscribe themselves."""
    from watcher.mail.links import self_service_problem

    lines = []
    if migrated:
        rows = recipient_rows(engine, config, [w.name for w in config.watch], now())
        for row in rows:
            if row["unsubscribed_at"]:
                lines.append(f"  opted out of {row['watch']}: {row['recipient']} ({describe(row)})")
    problem = self_service_problem(config.server)
    if problem:
        lines.append(f"warning: recipients cannot unsubscribe themselves: {problem}")
    return lines
