"""`trialwatch due`: each held study's US results reporting verdict (watcher.milestones), with why."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from watcher.cli.shared import State, fail, guarded, make_service, now, out

STATES = ("not_applicable", "ongoing", "due_soon", "overdue", "reported", "reported_late")

app = typer.Typer()


@app.command()
def due(
    watch: Annotated[str | None, typer.Option(help="Only this watch.")] = None,
    state: Annotated[
        str | None,
        typer.Option(help="Only studies in this state: " + ", ".join(STATES) + "."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List when each held study's results are due under US law (FDAAA 801, 42 CFR 11.44) and
    whether they are late, as FDAAA TrialsTracker counts it: overdue first, then due soon
    ([milestones] due_soon_days, default 60), ongoing, reported late, reported, not applicable;
    each with the reason in words.

    Example: trialwatch due --watch "RCC bispecifics" --state overdue --json
    """

    from watcher.config import load_config
    from watcher.store import db
    from watcher.store.milestones import watch_verdicts

    def action() -> int:
        if state is not None and state not in STATES:
            fail(f"--state {state!r}: expected one of {', '.join(STATES)}")
        service = make_service(load_config(State.config_path))
        names = (
            [service.config.watch_named(watch).name] if watch is not None else [w.name for w in service.config.watch]
        )
        today, soon = now().date(), service.config.milestones.due_soon_days
        rows: list[dict[str, Any]] = []
        with db.transaction(service.engine) as session:
            for name in names:
                for verdict in watch_verdicts(session=session, watch=name, today=today, due_soon_days=soon):
                    if state is None or str(verdict.state) == state:
                        rows.append({"watch": name, **verdict.as_json()})
        if as_json:
            out.print(json.dumps(rows, indent=2, ensure_ascii=False), markup=False)
            return 0
        if not rows:
            out.print("no studies" + (f" {state.replace('_', ' ')}" if state else ""), markup=False)
        for row in rows:
            out.print(f"{row['watch']} {row['nct_id']} {row['state']}: {row['explanation']}", markup=False)
        return 0

    guarded(action)
