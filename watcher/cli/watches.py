"""`trialwatch watch archive`: archive a watch created in the browser or the API from the command
line, chosen by its name or its id, whatever the name holds (#25: a watch stored with a line break
in its name could not be reached in the browser, so it kept polling and mailing)."""

from __future__ import annotations

from typing import Annotated

import typer

from watcher.cli.shared import State, fail, guarded, now, out

watch_app = typer.Typer(
    help='Watches stored in the database.\n\nExample: trialwatch watch archive "RCC vaccines"',
    no_args_is_help=True,
)

ACTOR = "trialwatch watch archive"


@watch_app.command("archive")
def watch_archive(
    name: Annotated[str | None, typer.Argument(help="The watch's name, exactly as stored.")] = None,
    watch_id: Annotated[
        int | None, typer.Option("--id", help="The watch's id instead of its name (`db upgrade` prints it).")
    ] = None,
) -> None:
    """Archive a watch created in the browser or the API: polling and mail stop, its changes stay.

    A watch of the config file is archived by removing it from the file. A name that holds a line
    break (stored before names were checked) is given as the shell quotes it, or by --id.

    Example: trialwatch watch archive "RCC vaccines"   (or: trialwatch watch archive --id 7)
    """

    from watcher.config import load_config
    from watcher.store import db
    from watcher.store.watches import archive_stored_watch

    if (name is None) == (watch_id is None):
        fail("give the watch's NAME or --id, one of them")

    def action() -> int:
        config = load_config(State.config_path)
        if name is not None and any(watch.name == name for watch in config.watch):
            fail(f"{config.path}: watch {name!r} is defined in this file; remove it there to archive it")
        engine = db.make_engine(config.database.url)
        db.upgrade(engine)
        with db.transaction(engine) as session:
            row = archive_stored_watch(session=session, name=name, watch_id=watch_id, actor=ACTOR, now=now())
            shown = f"watch {row.name!r} (id {row.id})"
        out.print(f"archived {shown}: it is no longer polled or mailed", markup=False)
        return 0

    guarded(action)
