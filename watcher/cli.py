"""The `trialwatch` command. Wires config, database, source and mail transport together.

This is the only module that reads the clock, chooses implementations and prints.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress

from watcher import __version__
from watcher import preview as preview_lines
from watcher.config import NCT_ID, Config, Secrets, WatchConfig, load_config
from watcher.delivery import due_watches, preview_digests
from watcher.digest import Digest, render_html, render_text
from watcher.errors import TrialwatchError
from watcher.http import make_session
from watcher.notify.email import make_transport
from watcher.service import Service
from watcher.sources.ctgov import CtgovClient, Page, watch_queries
from watcher.store import db, repo

app = typer.Typer(
    help=(
        "Watch ClinicalTrials.gov for kidney-cancer immunotherapy trials and email what really changed.\n\n"
        "Example: trialwatch --config config/trialwatch.toml check"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
db_app = typer.Typer(help="Database maintenance.\n\nExample: trialwatch db upgrade", no_args_is_help=True)
app.add_typer(db_app, name="db")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
log = logging.getLogger("watcher")


def now() -> datetime:
    return datetime.now(UTC)


class State:
    config_path: Path | None = None


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
    handler = _CurrentStderr()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[handler],
        force=True,
    )
    for noisy in ("apscheduler.executors", "urllib3", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time of the record (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message (and the error)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


def guarded(action: Callable[[], int | None]) -> None:
    """Run a command; a TrialwatchError becomes one line on stderr and exit code 2."""
    try:
        code = action()
    except TrialwatchError as exc:
        fail(exc.one_line())
    if code:
        raise typer.Exit(code)


def make_service(config: Config, *, migrate: bool = True) -> Service:
    engine = db.make_engine(config.database.url)
    if migrate:
        db.upgrade(engine)
    return Service(
        config=config,
        engine=engine,
        client=CtgovClient(config.clinicaltrials),
        transport=make_transport(config.email, Secrets()),
        feed_http=make_session(config.feeds.user_agent),
    )


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
        service = make_service(load_config(State.config_path))
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
def deliveries(
    status: Annotated[str | None, typer.Option(help="Only messages in this state: pending, sent or failed.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """List sent, pending and failed messages with the server's answer, newest first.

    Example: trialwatch deliveries --status failed
    """

    def action() -> int:
        if status is not None and status not in ("pending", "sent", "failed"):
            fail(f"--status {status!r}: expected pending, sent or failed")
        service = make_service(load_config(State.config_path))
        with db.transaction(service.engine) as session:
            rows = [
                _delivery_json(row, repo.count_delivery_changes(session=session, delivery_id=row.id or 0))
                for row in repo.list_deliveries(session=session, status=status, limit=limit)
            ]
        if as_json:
            out.print(json.dumps(rows, indent=2, ensure_ascii=False), markup=False)
            return 0
        if not rows:
            out.print("no deliveries", markup=False)
        for row in rows:
            line = f"{row['created_at'][:16]} {row['status']:<7} {row['recipient']} {row['changes']} change(s)"
            if row["status"] == "pending" and row["next_attempt_at"]:
                line += f", next try {row['next_attempt_at'][:16]}"
            if row["last_error"]:
                line += f" — {row['last_error']}"
            out.print(line, markup=False)
        return 0

    guarded(action)


def _delivery_json(row: Any, changes: int) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": row.id,
        "recipient": row.recipient,
        "status": row.status,
        "subject": row.subject,
        "message_id": row.message_id,
        "changes": changes,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "created_at": iso(row.created_at),
        "sent_at": iso(row.sent_at),
        "next_attempt_at": iso(row.next_attempt_at),
    }


@app.command()
def changes(
    since: Annotated[str | None, typer.Option(help="Only changes detected on or after this date (YYYY-MM-DD).")] = None,
    watch: Annotated[str | None, typer.Option(help="Only this watch.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List detected changes, newest first.

    Example: trialwatch changes --since 2026-11-01 --watch "RCC bispecifics" --json
    """

    def action() -> int:
        config = load_config(State.config_path)
        if watch is not None:
            config.watch_named(watch)
        since_at = _parse_since(since)
        service = make_service(config)
        with db.transaction(service.engine) as session:
            records = repo.list_changes(session=session, since=since_at, watch=watch)
        if as_json:
            out.print(json.dumps([r.as_json() for r in records], indent=2, ensure_ascii=False), markup=False)
            return 0
        if not records:
            out.print("no changes", markup=False)
        for record in records:
            out.print(
                f"{record.detected_at:%Y-%m-%d %H:%M} {record.watch} {record.nct_id} [{record.kind}] {record.summary}",
                markup=False,
            )
        return 0

    guarded(action)


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        fail(f"--since {value!r}: expected a date like 2026-11-01")
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@app.command()
def run() -> None:
    """Run the daemon: poll on the configured interval (first poll right away), deliver digests.

    Stops cleanly on SIGTERM or SIGINT (Ctrl-C) after the job in hand; SIGHUP re-reads the
    config file (a bad file is refused and the running config is kept).

    Example: trialwatch --config config/trialwatch.toml run
    """
    from watcher.scheduler import Runtime, run_forever

    def action() -> int:
        service = make_service(load_config(State.config_path))
        log.info(
            "config %s: %d watch(es); database %s; mail to %s",
            service.config.path,
            len(service.config.watch),
            db.redact_url(service.config.database.url),
            service.transport.description,
        )

        def reload() -> Service:
            return make_service(load_config(State.config_path))

        run_forever(Runtime(service=service, clock=now, reload=reload))
        return 0

    guarded(action)


@app.command()
def queries(
    watch: Annotated[str | None, typer.Argument(help="Watch name (default: every watch).")] = None,
) -> None:
    """Print the exact ClinicalTrials.gov queries a watch sends, without sending them.

    Example: trialwatch queries "RCC bispecifics"
    """

    def action() -> int:
        config = load_config(State.config_path)
        chosen = [config.watch_named(watch)] if watch else config.watch
        for item in chosen:
            out.print(f"{item.name}:", markup=False)
            for params in watch_queries(item, config.clinicaltrials.page_size):
                shown = " ".join(f"{k}={v!r}" for k, v in params.items())
                out.print(f"  GET {config.clinicaltrials.base_url}/studies {shown}", markup=False)
        return 0

    guarded(action)


@app.command()
def history(nct_id: Annotated[str, typer.Argument(help="The study's NCT id, e.g. NCT05805501.")]) -> None:
    """Print a study's timeline: when first seen, each stored version and what changed between them.

    trialwatch stores a new version only when a tracked field changed, so versions that differ
    only in bookkeeping (versionHolder, last-update dates) never appear.

    Example: trialwatch history NCT05805501
    """
    from watcher.history import study_timeline

    def action() -> int:
        config = load_config(State.config_path)
        wanted = nct_id.strip().upper()
        if not NCT_ID.fullmatch(wanted):
            fail(f"{nct_id!r} is not an NCT id (NCT followed by 8 digits)")
        service = make_service(config)
        with db.transaction(service.engine) as session:
            timeline = study_timeline(session=session, nct_id=wanted, ignore=config.clinicaltrials.ignore_fields)
        for line in timeline.lines():
            out.print(line, markup=False)
        return 0

    guarded(action)


@app.command()
def preview(
    watch: Annotated[str | None, typer.Argument(help="A watch from the config file.")] = None,
    conditions: Annotated[list[str] | None, typer.Option("--conditions", help="A condition (repeatable).")] = None,
    terms: Annotated[list[str] | None, typer.Option("--terms", help="A term (repeatable).")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="A word to exclude (repeatable).")] = None,
    nct_ids: Annotated[list[str] | None, typer.Option("--nct-id", help="An NCT id (repeatable).")] = None,
    feeds: Annotated[
        bool, typer.Option("--feeds/--no-feeds", help="Also read the configured journal feeds now.")
    ] = True,
) -> None:
    """Run a watch's query against the registry (and its words against the journal feeds) now and
    show what matches and why; stores nothing.

    Prints how many studies match, the first twenty with status, phase and the words that matched,
    and the exact request; then, per configured feed, the items the watch's words match. Tune the
    keywords here before saving them in the config file.

    Example: trialwatch preview --conditions "renal cell carcinoma" --terms bispecific --terms volrustomig
    """

    def action() -> int:
        config = load_config(State.config_path)
        if watch is not None:
            chosen = config.watch_named(watch)
        elif conditions or terms or nct_ids:
            try:
                chosen = WatchConfig(
                    name="preview",
                    conditions=conditions or [],
                    terms=terms or [],
                    exclude=exclude or [],
                    nct_ids=nct_ids or [],
                    recipients=["preview@localhost"],
                )
            except ValidationError as exc:
                first = exc.errors()[0]
                option = {"nct_ids": "nct-id"}.get(str(first["loc"][0]), str(first["loc"][0]))
                fail(f"--{option}: {first['msg'].removeprefix('Value error, ')}")
        else:
            fail("give a watch name, or --conditions / --terms / --nct-id")
        for line in preview_lines.registry_lines(CtgovClient(config.clinicaltrials), chosen):
            out.print(line, markup=False)
        if feeds and chosen.feeds and (chosen.conditions or chosen.terms):
            for line in preview_lines.feed_lines(make_session(config.feeds.user_agent), config, chosen, now()):
                out.print(line, markup=False)
        return 0

    guarded(action)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to the newest schema (Alembic).

    Example: trialwatch db upgrade
    """

    def action() -> int:
        config = load_config(State.config_path)
        engine = db.make_engine(config.database.url)
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
