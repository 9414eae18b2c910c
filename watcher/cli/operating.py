"""The `trialwatch` command: the operating commands (check, poll, digest, run, db upgrade,
version); the inspecting ones live in cli.inspecting, what they share in cli.shared.

The cli modules are the only ones that read the clock, choose implementations and print.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from watcher import __version__
from watcher.cli.inspecting import app as inspect_app
from watcher.cli.people import token_app, user_app
from watcher.cli.shared import (
    State,
    configure_logging,
    err,
    fail,
    guarded,
    log,
    make_service,
    now,
    out,
)
from watcher.config import Config, load_config
from watcher.daemon.health import HealthServer, Metrics, Monitor
from watcher.daemon.lock import leader_lock, leadership
from watcher.errors import ConfigError
from watcher.mail.delivery import due_watches, preview_digests
from watcher.mail.digest import Digest, render_html, render_text
from watcher.registry.client import Page
from watcher.service import Service
from watcher.store import db

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
db_app = typer.Typer(help="Database maintenance.\n\nExample: trialwatch db upgrade", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")


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

    Example: trialwatch --config config/trialwatch.toml check
    """

    def action() -> int:
        config = load_config(State.config_path)
        engine = db.make_engine(config.database.url)
        revision, head = db.current_revision(engine), db.head_revision()
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
        out.print(f"watches: {len(config.watch)}", markup=False)
        for watch in config.watch:
            words = ", ".join(watch.conditions) or "any condition"
            terms = ", ".join(watch.terms) or "any term"
            out.print(
                f"  - {watch.name} [{watch.digest}] to {', '.join(watch.recipients)}: "
                f"conditions {words}; terms {terms}; {len(watch.nct_ids)} NCT id(s)",
                markup=False,
            )
        out.print(f"feeds: {len(config.feed)}", markup=False)
        for feed in config.feed:
            out.print(f"  - {feed.name} every {config.feed_interval(feed)}: {feed.url}", markup=False)
            if config.feed_interval(feed) < timedelta(hours=1):
                out.print("    note: publishers ask to be polled at most hourly; keep this for testing", markup=False)
        return 0

    guarded(action)


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

    def action() -> int:
        config = load_config(State.config_path)
        with leadership(engine_url=config.database.url):  # not while a daemon polls the same database
            service = make_service(config)
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

    def action() -> int:
        service = make_service(load_config(State.config_path))
        moment = now()
        if dry_run or html:
            watches = due_watches(service.config, service.engine, moment, everything=now_)
            digests = preview_digests(engine=service.engine, config=service.config, watches=watches, now=moment)
            if html:
                _write_html(html, digests)
            for item in digests if dry_run else []:
                out.print(f"To: {item.recipient}\nSubject: {item.subject()}\n", markup=False)
                out.print(render_text(item), markup=False)
            if not digests:
                out.print("nothing to deliver", markup=False)
            return 0
        with leadership(engine_url=service.config.database.url):  # never alongside the daemon's digest job
            report = service.deliver(moment, everything=now_)
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
    for item in digests:
        target = path if len(digests) == 1 else path.with_name(f"{path.stem}-{item.recipient}{path.suffix}")
        try:
            target.write_text(render_html(item), encoding="utf-8")
        except OSError as exc:
            fail(f"--html {target}: {exc.strerror or exc}")
        out.print(f"wrote {target} ({item.recipient})", markup=False)


@app.command()
def run() -> None:
    """Run the daemon: poll on the configured interval (first poll right away), deliver digests.

    One daemon acts per database. With SQLite a second `run` refuses to start and names the
    process holding the lock file beside the database; with PostgreSQL it stands by and takes
    over when the leader stops. Stops cleanly on SIGTERM or SIGINT (Ctrl-C) after the job in
    hand; SIGHUP re-reads the config file (a bad file is refused and the running config is kept).
    With [server] listen set, serves /healthz and /metrics. Exits 1 if leadership was lost.

    Example: trialwatch --config config/trialwatch.toml run
    """
    from watcher.daemon import signals
    from watcher.daemon.scheduler import Runtime, run_forever, stand_by

    signals.install()  # already done by the entry point; again for callers that start here

    def action() -> int:
        config = load_config(State.config_path)
        lock = leader_lock(engine_url=config.database.url)
        leading = lock.try_acquire()
        if not leading and not lock.allows_standby:
            lock.acquire()  # raises LockHeld naming the holder (SQLite: one daemon per database)
        monitor, server = _health(config, leading=leading)
        try:
            if not leading:
                if signals.stop_requested() or not stand_by(lock):  # stand_by restores the early signal handlers
                    return 0
                monitor.set_leader(leader=True, at=now())
                config = load_config(State.config_path)  # it may have changed while standing by
            service = _leader_service(config)
            runtime = Runtime(
                service=service, clock=now, reload=lambda: _reload(service), lock=lock, monitor=monitor
            )  # fmt: skip
            run_forever(runtime, signals.RECEIVED)
            return 1 if runtime.lost_leadership else 0
        finally:
            lock.release()
            if server is not None:
                server.stop()

    try:
        guarded(action)
    finally:
        signals.restore()


def _leader_service(config: Config) -> Service:
    """The daemon's service (migrating the database: only the leader does), said in one line."""
    service = make_service(config)
    log.info(
        "config %s: %d watch(es), %d feed(s); database %s; mail to %s",
        config.path, len(config.watch), len(config.feed), db.redact_url(config.database.url),
        service.transport.description,
    )  # fmt: skip
    return service


def _reload(running: Service) -> Service:
    """A service from the re-read config, on the same database engine (the leader lock is held on
    that database: a changed [database] url needs a restart, as does a changed [server])."""
    config = load_config(State.config_path)
    if config.database.url != running.config.database.url:
        raise ConfigError(f"{config.path}: [database] url changed: restart trialwatch to use another database")
    if config.server != running.config.server:
        log.warning("%s: [server] changed: it takes effect at the next restart", config.path)
    return make_service(config, engine=running.engine, stopping=running.stopping)


def _health(config: Config, *, leading: bool) -> tuple[Monitor, HealthServer | None]:
    """The job monitor, and the /healthz + /metrics server when [server] listen is set."""
    sources = [watch.name for watch in config.watch] + [f"feed:{feed.name}" for feed in config.feed]
    monitor = Monitor(
        metrics=Metrics(), poll_interval=config.clinicaltrials.poll_interval, started_at=now(), sources=sources
    )
    monitor.set_leader(leader=leading, at=now())
    if not config.server.listen:
        return monitor, None
    server = HealthServer(
        listen=config.server.listen, metrics=monitor.metrics, health=lambda: monitor.status(now=now())
    )
    server.start()
    log.info("serving /healthz and /metrics on %s", server.url)
    return monitor, server


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to the newest schema (Alembic).

    Example: trialwatch db upgrade
    """

    def action() -> int:
        config = load_config(State.config_path)
        engine = db.make_engine(config.database.url)
        with leadership(engine_url=config.database.url):  # not under a running daemon
            db.upgrade(engine)
        out.print(f"database {db.redact_url(config.database.url)} is at revision {db.current_revision(engine)}")
        return 0

    guarded(action)


@app.command()
def version() -> None:
    """Print the trialwatch version.

    Example: trialwatch version
    """
    out.print(f"trialwatch {__version__}")


def main() -> None:
    app()
