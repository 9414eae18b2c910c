"""The `trialwatch` command: the operating commands (check, poll, digest, run, db upgrade,
db backup, version); the inspecting ones live in cli.inspecting, what they share in cli.shared.

The cli modules are the only ones that read the clock, choose implementations and print.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from watcher import __version__
from watcher.cli.channels import app as channels_app
from watcher.cli.due import app as due_app
from watcher.cli.history import app as history_app
from watcher.cli.inspecting import app as inspect_app
from watcher.cli.people import token_app, user_app
from watcher.cli.recipients import app as recipients_app
from watcher.cli.serving import app as serving_app
from watcher.cli.shared import (
    State,
    configure_logging,
    err,
    fail,
    guarded,
    make_service,
    now,
    out,
)
from watcher.cli.studies import app as studies_app
from watcher.cli.watches import watch_app

if TYPE_CHECKING:  # each command imports what it uses when it runs: `--help` and `version` stay quick
    from sqlalchemy import Engine

    from watcher.config import Config
    from watcher.mail.digest import Digest
    from watcher.registry.client import Page
    from watcher.store.models import WatchRow
    from watcher.watch import WatchConfig

app = typer.Typer(
    help=(
        "Watch ClinicalTrials.gov for kidney-cancer immunotherapy trials and email what really changed.\n\n"
        "Example: trialwatch --config config/trialwatch.toml check"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.registered_commands.extend(inspect_app.registered_commands)  # changes, deliveries, history, preview, queries
app.registered_commands.extend(serving_app.registered_commands)  # run, web
app.registered_commands.extend(history_app.registered_commands)  # history, backfill
app.registered_commands.extend(recipients_app.registered_commands)  # recipients
app.registered_commands.extend(channels_app.registered_commands)  # notify-test
app.registered_commands.extend(due_app.registered_commands)  # due
db_app = typer.Typer(help="Database maintenance.\n\nExample: trialwatch db upgrade", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.registered_commands.extend(studies_app.registered_commands)  # studies (#21)
app.add_typer(watch_app, name="watch")


@app.callback()
def main_options(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Config file (default config/trialwatch.toml, or $TRIALWATCH_CONFIG)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    log_format: Annotated[
        str, typer.Option("--log-format", help="Log lines as 'text' (default) or 'json' (one object per line).")
    ] = "text",
) -> None:
    """trialwatch: ClinicalTrials.gov watches, change detection and email digests."""
    State.config_path = config
    if log_format not in ("text", "json"):
        fail(f"--log-format {log_format!r}: expected text or json")
    configure_logging(verbose=verbose, log_format=log_format)


@app.command()
def check() -> None:
    """Validate the config file and the database; print a summary of the watches.

    Lists the config file's watches and those created in the browser or the API, saying where
    each is defined. A config watch that takes the name of a watch created in the browser is an
    error: rename one of them.

    Example: trialwatch --config config/trialwatch.toml check
    """

    from watcher.cli.pubmed import pubmed_check_line
    from watcher.cli.readouts import readout_check_lines
    from watcher.cli.recipients import check_lines
    from watcher.config import load_config
    from watcher.rules import describe_rules
    from watcher.store import db
    from watcher.watch import name_problem

    def action() -> int:
        config = load_config(State.config_path)
        engine = db.make_engine(config.database.url)
        revision, head = db.current_revision(engine), db.head_revision()
        web = _web_watch_rows(config, engine) if revision == head else []
        out.print(f"ok: {config.path}", markup=False)
        out.print(f"database: {db.redact_url(config.database.url)} (revision {revision or 'empty'}, newest {head})")
        if revision != head:
            out.print("  run `trialwatch db upgrade` (or any other command) to migrate it", markup=False)
        mail = (
            f"SMTP {config.email.smtp_host}:{config.email.smtp_port}"
            if config.email.smtp_host
            else (f".eml files in {config.email.outbox_dir}")
        )
        out.print(f"mail: {mail}", markup=False)
        out.print(f"watches: {len(config.watch) + len(web)}", markup=False)
        for watch in config.watch:
            out.print(_watch_line(watch, "config file"), markup=False)
            out.print(f"    rules: {describe_rules(watch)}", markup=False)
        for row, watch in zip(web, web_watches_of(web), strict=True):
            out.print(_watch_line(watch, f"web, by {row.owner or 'unknown'}"), markup=False)
            out.print(f"    rules: {describe_rules(watch)}", markup=False)
            if problem := name_problem(row.name):  # stored before the rule (#25)
                out.print(
                    f"    warning: {problem}; rename it, or `trialwatch watch archive --id {row.id}`", markup=False
                )
        if revision != head:
            out.print("  (watches created in the browser are listed once the database is migrated)", markup=False)
        out.print(f"feeds: {len(config.feed)}", markup=False)
        for feed in config.feed:
            out.print(f"  - {feed.name} every {config.feed_interval(feed)}: {feed.url}", markup=False)
            if config.feed_interval(feed) < timedelta(hours=1):
                out.print("    note: publishers ask to be polled at most hourly; keep this for testing", markup=False)
        out.print(pubmed_check_line(config), markup=False)
        for line in readout_check_lines(config):
            out.print(line, markup=False)
        if revision == head:
            out.print(_history_line(config, engine), markup=False)
        for line in check_lines(config, engine, migrated=revision == head):
            out.print(line, markup=False)
        return 0

    guarded(action)


def _history_line(config: Config, engine: Engine) -> str:
    """The registry version history's backfill: on or off, and its progress."""
    from watcher.store import backfill, db

    if not config.clinicaltrials.history:
        return "registry history: off ([clinicaltrials] history = false)"
    with db.transaction(engine) as session:
        return backfill.progress(session=session).line()


def _web_watch_rows(config: Config, engine: Engine) -> list[WatchRow]:
    """The active web watches (a config watch taking one's name is a ConfigError naming the file)."""
    from watcher.store import db
    from watcher.store.effective import check_names
    from watcher.store.watches import watch_rows

    with db.transaction(engine) as session:
        check_names(session=session, config=config)
        return [row for row in watch_rows(session=session) if row.source == "web"]


def web_watches_of(rows: list[WatchRow]) -> list[WatchConfig]:
    from watcher.store.watches import watch_of

    return [watch_of(row) for row in rows]


def _watch_line(watch: WatchConfig, source: str) -> str:
    words = ", ".join(watch.conditions) or "any condition"
    terms = ", ".join(watch.terms) or "any term"
    channels = f" and {len(watch.notify)} channel(s)" if watch.notify else ""
    return (
        f"  - {watch.name} [{watch.digest}] to {', '.join(watch.recipients)}{channels}: "
        f"conditions {words}; terms {terms}; {len(watch.nct_ids)} NCT id(s) ({source})"
    )


@app.command()
def poll(
    full: Annotated[
        bool, typer.Option("--full", help="Fetch every study of every watch (a full reconciliation), not only updates.")
    ] = False,
) -> None:
    """Poll every watch once now, store what changed, send what is due for immediate watches.

    Asks the registry's /version first: when its data has not been refreshed since the last poll,
    nothing is fetched. Otherwise each watch fetches only the studies updated since its last poll
    (a few days of overlap), and every `full_every` (default 7 days) all its studies, which is how
    a study that left a watch is noticed. The first poll of a watch is a baseline: everything is
    stored, nothing is alerted. Prints one line per watch: kind of poll, studies seen, changes
    found, requests made and time taken. Exits 1 when a source failed.

    Example: trialwatch poll --full
    """

    from watcher.config import load_config
    from watcher.daemon.lock import leadership

    def action() -> int:
        config = load_config(State.config_path)
        with leadership(engine_url=config.database.url):  # not while a daemon polls the same database
            service = make_service(config, watches="provisioned")
            with _progress() as on_page:
                report = service.poll(now(), on_page=on_page, force_full=full)
        for line in report.lines():
            out.print(line, markup=False)
        for sent in report.delivery.sent:
            out.print(f"delivered to {sent}", markup=False)
        problems = report.failed_sources + report.delivery.failed
        for problem in problems:
            err.print(f"error: {problem}", markup=False)
        return 1 if problems else 0

    guarded(action)


class _progress:
    """A progress bar on stderr for long syncs, when stderr is a terminal."""

    def __enter__(self) -> Callable[[str, Page], None] | None:
        if not err.is_terminal:
            self.progress = None
            return None
        from rich.progress import Progress

        self.progress = Progress(console=err, transient=True)
        self.progress.start()
        self.tasks: dict[str, object] = {}
        return self.update

    def update(self, watch: str, page: Page) -> None:
        assert self.progress is not None
        if watch not in self.tasks:
            self.tasks[watch] = self.progress.add_task(watch, total=page.total)
        self.progress.update(self.tasks[watch], advance=len(page.studies))  # type: ignore[arg-type]

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


@app.command()
def digest(
    now_: Annotated[bool, typer.Option("--now", help="Deliver every pending change, whatever the schedule.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the messages; deliver nothing.")] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the HTML of the messages to this file (delivers nothing).")
    ] = None,
) -> None:
    """Deliver the digests that are due (daily at [digest] time, weekly on [digest] weekday).

    One message per recipient, holding every watch they are on. A change is marked delivered only
    once the SMTP server accepted it (or the .eml file is written), so running this twice sends it
    once. A temporary SMTP failure is retried by later runs with a growing backoff; `--now`
    retries at once. Exits 1 when a delivery failed; `trialwatch deliveries` shows why.

    Example: trialwatch digest --now --dry-run
    """

    from watcher.config import load_config
    from watcher.daemon.lock import leadership
    from watcher.mail.delivery import due_watches, preview_digests
    from watcher.mail.digest import render_text

    def action() -> int:
        config = load_config(State.config_path)
        moment = now()
        if dry_run or html:
            service = make_service(config)
            watches = due_watches(service.config, service.engine, moment, everything=now_)
            digests = preview_digests(
                engine=service.engine,
                config=service.config,
                watches=watches,
                now=moment,
                everything=now_,
                links=service.links,
            )
            if html:
                _write_html(html, digests)
            for item in digests if dry_run else []:
                out.print(f"To: {item.recipient}\nSubject: {item.subject()}\n", markup=False)
                out.print(render_text(item), markup=False)
            if not digests:
                out.print("nothing to deliver", markup=False)
            return 0
        with leadership(engine_url=config.database.url):  # never alongside the daemon's digest job
            report = make_service(config, watches="provisioned").deliver(moment, everything=now_)
        for sent in report.sent:
            out.print(f"delivered to {sent}", markup=False)
        for failure in report.failed:
            err.print(f"error: {failure}", markup=False)
        if not report.sent and not report.failed:
            out.print("nothing to deliver", markup=False)
        return 1 if report.failed else 0

    guarded(action)


def _write_html(path: Path, digests: list[Digest]) -> None:
    """One file per recipient: PATH itself for one, PATH-with-the-recipient for several."""
    from watcher.mail.digest import render_html

    for item in digests:
        target = path if len(digests) == 1 else path.with_name(f"{path.stem}-{item.recipient}{path.suffix}")
        try:
            target.write_text(render_html(item), encoding="utf-8")
        except OSError as exc:
            fail(f"--html {target}: {exc.strerror or exc}")
        out.print(f"wrote {target} ({item.recipient})", markup=False)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to the newest schema (Alembic).

    Example: trialwatch db upgrade
    """

    from watcher.config import load_config
    from watcher.daemon.lock import leadership
    from watcher.store import db

    def action() -> int:
        config = load_config(State.config_path)
        engine = db.make_engine(config.database.url)
        with leadership(engine_url=config.database.url):  # not under a running daemon
            db.upgrade(engine)
        out.print(f"database {db.redact_url(config.database.url)} is at revision {db.current_revision(engine)}")
        return 0

    guarded(action)


@db_app.command("backup")
def db_backup(
    file: Annotated[Path, typer.Argument(help="Where to write the copy (a new file).", show_default=False)],
) -> None:
    """Copy the database, consistent as of one moment, while the daemon keeps running.

    SQLite: SQLite's online backup into FILE (never overwritten). PostgreSQL: prints the pg_dump
    command to run. Restore: stop the daemon, copy FILE back over the database file, start it.

    Example: trialwatch db backup var/backups/trialwatch-2026-12-08.db
    """

    from watcher.config import load_config
    from watcher.store import backup, db

    def action() -> int:
        config = load_config(State.config_path)
        source = backup.sqlite_path(config.database.url)
        if source is None:
            out.print("PostgreSQL: back it up with pg_dump (it reads the password from PGPASSWORD or ~/.pgpass):")
            out.print(backup.pg_dump_command(config.database.url, file), markup=False, soft_wrap=True)
            return 0
        made = backup.backup_sqlite(source, file)
        out.print(
            f"backed up {db.redact_url(config.database.url)} to {made.path} "
            f"({made.size / 1e6:.1f} MB, revision {made.revision or 'none'})", markup=False,
        )  # fmt: skip
        return 0

    guarded(action)


@app.command()
def version() -> None:
    """Print the trialwatch version.

    Example: trialwatch version
    """
    typer.echo(f"trialwatch {__version__}")  # not through rich: importing it would double the time


def main() -> None:
    app()
