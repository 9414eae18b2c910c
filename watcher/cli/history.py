"""The registry's version history on the command line: `history NCT… [--backfill]` (a study's
timeline, its past read now with --backfill) and `backfill [--watch NAME]` (queue a watch's studies)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from watcher.cli.shared import State, fail, guarded, make_service, now, out

if TYPE_CHECKING:
    from watcher.service import Service

app = typer.Typer()


@app.command()
def history(
    nct_id: Annotated[str, typer.Argument(help="The study's NCT id, e.g. NCT05805501.")],
    backfill: Annotated[
        bool, typer.Option("--backfill", help="Read the study's past from the registry's version history now.")
    ] = False,
) -> None:
    """Print a study's timeline: when first seen, each stored version and what changed between them.

    trialwatch stores a new version only when a tracked field changed, so versions that differ
    only in bookkeeping (versionHolder, last-update dates) never appear. Versions read from the
    registry's own version history carry its version number and submission day; their changes
    are history, never mailed. With --backfill the study's history is read now (one study).

    Example: trialwatch history NCT05805501 --backfill
    """
    from watcher.config import NCT_ID, load_config
    from watcher.registry.history import study_timeline
    from watcher.store import db

    def action() -> int:
        config = load_config(State.config_path)
        wanted = nct_id.strip().upper()
        if not NCT_ID.fullmatch(wanted):
            fail(f"{nct_id!r} is not an NCT id (NCT followed by 8 digits)")
        service = make_service(config)
        code = 0
        if backfill:
            code = _backfill_one(service, wanted)
        with db.transaction(service.engine) as session:
            timeline = study_timeline(
                session=session, nct_id=wanted, ignore=config.clinicaltrials.ignore_fields,
                history=config.clinicaltrials.history,
            )  # fmt: skip
        for line in timeline.lines():
            out.print(line, markup=False)
        return code

    guarded(action)


def _backfill_one(service: Service, nct_id: str) -> int:
    from watcher.store import backfill as queue
    from watcher.store import db

    if not service.config.clinicaltrials.history:
        fail("[clinicaltrials] history is false: the registry's version history is not read")
    with db.transaction(service.engine) as session:
        if not queue.is_stored(session=session, nct_id=nct_id):
            fail(f"{nct_id} is not stored: no watch holds it (poll first)")
    report = service.backfill(now(), nct_ids=[nct_id])
    out.print(report.line(), markup=False)
    for error in report.errors:
        out.print(f"  {error}", markup=False)
    return 1 if report.failed else 0


@app.command()
def backfill(
    watch: Annotated[str | None, typer.Option(help="Only this watch's studies (default: every watch's).")] = None,
) -> None:
    """Queue studies for a backfill from the registry's version history (each asks the version list
    anew and reads only the versions not stored). The backfill runs after the polls, at most
    `[clinicaltrials] history_per_cycle` studies a cycle; `trialwatch check` shows its progress.

    Example: trialwatch backfill --watch "RCC bispecifics"
    """
    from watcher.config import load_config
    from watcher.store import backfill as queue
    from watcher.store import db, repo

    def action() -> int:
        service = make_service(load_config(State.config_path))
        if not service.config.clinicaltrials.history:
            fail("[clinicaltrials] history is false: the registry's version history is not read")
        names = [service.config.watch_named(watch).name] if watch else [w.name for w in service.config.watch]
        with db.transaction(service.engine) as session:
            ids = sorted({nct_id for name in names for nct_id in repo.watch_study_ids(session=session, watch=name)})
            queued = queue.queue_studies(session=session, nct_ids=ids, now=now())
            progress = queue.progress(session=session)
        out.print(f"queued {queued} studies for the registry's version history", markup=False)
        out.print(progress.line(), markup=False)
        return 0

    guarded(action)
