"""Commands that show what trialwatch knows or would do: audit, changes, deliveries, history,
preview, queries. They read; only `preview` talks to the sources, and it stores nothing. Each sees
the config file's watches and those created in the browser or the API (store.effective)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from watcher.cli.shared import State, fail, guarded, make_pubmed_client, make_service, now, out

if TYPE_CHECKING:  # each command imports what it uses when it runs: `--help` and `version` stay quick
    from watcher.config import Config, WatchConfig
    from watcher.service import Service

app = typer.Typer()


@app.command()
def deliveries(
    status: Annotated[
        str | None, typer.Option(help="Only messages in this state: pending, sending, sent, failed or skipped.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Put failed messages back in the queue (after fixing the cause).")
    ] = False,
) -> None:
    """List sent, pending and failed messages with the server's answer, newest first.

    Changes a recipient will never get (they unsubscribed, or paused and chose to skip the
    pause's changes) are listed as "skipped" messages, with why; nothing is sent for them.

    A message the server refused for good stays failed; once the cause is fixed (a mailbox, an
    address in the config), `--retry-failed` queues it again for the next digest run, with the
    same Message-ID.

    Example: trialwatch deliveries --status failed
    """

    from watcher.config import load_config
    from watcher.store import db, outbox

    def action() -> int:
        if status is not None and status not in ("pending", "sending", "sent", "failed", "skipped"):
            fail(f"--status {status!r}: expected pending, sending, sent or failed (or skipped: the recipient's choice)")
        service = make_service(load_config(State.config_path))
        if retry_failed:
            with db.transaction(service.engine) as session:
                count = outbox.requeue_failed(session=session)
            out.print(f"{count} failed message(s) queued again; `trialwatch digest --now` sends them now", markup=False)
        with db.transaction(service.engine) as session:
            listed = outbox.list_deliveries(session=session, status=status, limit=limit)
            counts = outbox.delivery_change_counts(session=session, delivery_ids=[row.id for row in listed if row.id])
        shown = channel_names(service.config)
        rows = [_delivery_json(row, counts.get(row.id or 0, 0), shown) for row in listed]
        return _print_listing(rows, as_json=as_json, empty="no deliveries", line=_delivery_line)

    guarded(action)


def _print_listing(
    rows: list[dict[str, Any]], *, as_json: bool, empty: str, line: Callable[[dict[str, Any]], str]
) -> int:
    """A listing command's output: the rows as JSON, or one line each (`empty` when none)."""
    if as_json:
        out.print(json.dumps(rows, indent=2, ensure_ascii=False), markup=False)
        return 0
    if not rows:
        out.print(empty, markup=False)
    for row in rows:
        out.print(line(row), markup=False)
    return 0


def _delivery_line(row: dict[str, Any]) -> str:
    line = f"{row['created_at'][:16]} {row['status']:<7} {row['recipient']} {row['changes']} change(s)"
    if row["status"] == "pending" and row["next_attempt_at"]:
        line += f", next try {row['next_attempt_at'][:16]}"
    if row["last_error"]:
        line += f" — {row['last_error']}"
    if row["skip_reason"]:
        line += f" — {row['skip_reason']}"
    return line


def channel_names(config: Any) -> dict[str, str]:
    """Outbox address of each channel -> its URL masked (what may be printed)."""
    from watcher.channels import masked
    from watcher.mail.delivery import channel_urls

    return {address: masked(url) for address, url in channel_urls(config).items()}


def _delivery_json(row: Any, changes: int, channels: dict[str, str]) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    is_channel = row.recipient.startswith("channel:")
    return {
        "id": row.id,
        "recipient": channels.get(row.recipient, f"{row.recipient} (no watch sends to it now)")
        if is_channel
        else row.recipient,
        "channel": is_channel,
        "status": row.status,
        "subject": row.subject,
        "message_id": row.message_id,
        "changes": changes,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "created_at": iso(row.created_at),
        "sent_at": iso(row.sent_at),
        "next_attempt_at": iso(row.next_attempt_at),
        "skip_reason": row.skip_reason,
    }


@app.command()
def changes(
    since: Annotated[str | None, typer.Option(help="Only changes detected on or after this date (YYYY-MM-DD).")] = None,
    watch: Annotated[str | None, typer.Option(help="Only this watch.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    show_all: Annotated[
        bool,
        typer.Option(
            "--all", help="Also the changes a watch's rules held back, and those read from the registry's history."
        ),
    ] = False,
) -> None:
    """List detected changes, newest first: those mailed (alerted); with --all also those a
    watch's rules held back (stored, never mailed), each with the rule that held it back, and the
    past changes read from the registry's version history (`historical: true`, never mailed).

    Example: trialwatch changes --since 2026-11-01 --watch "RCC bispecifics" --json
    """

    from watcher.config import load_config
    from watcher.store import db, repo

    def action() -> int:
        service = make_service(load_config(State.config_path))
        if watch is not None:
            _known_watch(service, watch)
        since_at = _parse_since(since)
        with db.transaction(service.engine) as session:
            records = repo.list_changes(session=session, since=since_at, watch=watch, include_held_back=show_all)
        if as_json:
            out.print(json.dumps([r.as_json() for r in records], indent=2, ensure_ascii=False), markup=False)
            return 0
        if not records:
            out.print("no changes", markup=False)
        for record in records:
            held = f" (held back by {record.suppressed_by})" if not record.alerted else ""
            held = " (history: read from the registry's version history, never mailed)" if record.historical else held
            out.print(
                f"{record.detected_at:%Y-%m-%d %H:%M} {record.watch} {record.nct_id} [{record.kind}] {record.summary}"
                + held,
                markup=False,
            )
        return 0

    guarded(action)


def _known_watch(service: Service, name: str) -> None:
    """A watch polled now, or one archived (its changes stay readable); else the usual error."""
    from watcher.store import db
    from watcher.store.watches import get_watch_row

    if any(watch.name == name for watch in service.config.watch):
        return
    with db.transaction(service.engine) as session:
        archived = get_watch_row(session=session, name=name)
    if archived is None:
        service.config.watch_named(name)  # raises, listing the watches


def _with_web_watches(config: Config) -> Config:
    """The config file's watches and the web's (the database migrated first, as every command does)."""
    from watcher.store import db
    from watcher.store.effective import merged_config

    engine = db.make_engine(config.database.url)
    db.upgrade(engine)
    return merged_config(engine=engine, config=config)


def _named_watch(config: Config, name: str) -> WatchConfig:
    """A watch of the config file (the database untouched), else one created in the browser."""
    for watch in config.watch:
        if watch.name == name:
            return watch
    return _with_web_watches(config).watch_named(name)


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        fail(f"--since {value!r}: expected a date like 2026-11-01")
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@app.command()
def queries(
    watch: Annotated[str | None, typer.Argument(help="Watch name (default: every watch).")] = None,
) -> None:
    """Print the exact ClinicalTrials.gov queries a watch sends (and its PubMed, Crossref and Europe PMC
    queries), without sending them.

    Example: trialwatch queries "RCC bispecifics"
    """

    from watcher.cli.pubmed import pubmed_query_lines
    from watcher.cli.readouts import readout_query_lines
    from watcher.config import load_config
    from watcher.registry.client import scope_filters, watch_queries

    def action() -> int:
        config = load_config(State.config_path)
        chosen = [_named_watch(config, watch)] if watch else _with_web_watches(config).watch
        for item in chosen:
            out.print(f"{item.name}:", markup=False)
            for params in watch_queries(item, config.clinicaltrials.page_size):
                shown = " ".join(f"{k}={v!r}" for k, v in params.items())
                out.print(f"  GET {config.clinicaltrials.base_url}/studies {shown}", markup=False)
            if scope_filters(item):
                out.print("  (the baseline sends these filters; later polls search without them and", markup=False)
                out.print("   check statuses, phases and geography here, to see studies leave them)", markup=False)
            for line in [*pubmed_query_lines(config, item), *readout_query_lines(config, item)]:
                out.print(line, markup=False)
        return 0

    guarded(action)


@app.command()
def preview(
    watch: Annotated[str | None, typer.Argument(help="A watch (from the config file or the browser).")] = None,
    conditions: Annotated[list[str] | None, typer.Option("--conditions", help="A condition (repeatable).")] = None,
    terms: Annotated[list[str] | None, typer.Option("--terms", help="A term (repeatable).")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="A word to exclude (repeatable).")] = None,
    nct_ids: Annotated[list[str] | None, typer.Option("--nct-id", help="An NCT id (repeatable).")] = None,
    feeds: Annotated[
        bool, typer.Option("--feeds/--no-feeds", help="Also read the configured journal feeds now.")
    ] = True,
    pubmed: Annotated[
        bool, typer.Option("--pubmed/--no-pubmed", help="Also count the PubMed records (when [pubmed] is enabled).")
    ] = True,
    readouts: Annotated[
        bool,
        typer.Option("--readouts/--no-readouts", help="Also ask Crossref and Europe PMC (when enabled)."),
    ] = True,
) -> None:
    """Run a watch's query against the registry (and its words against the journal feeds) now and
    show what matches and why; stores nothing.

    Prints how many studies match, the first twenty with status, phase and the words that matched,
    and the exact request; then, per configured feed, the items the watch's words match; then how
    many PubMed records its PubMed query finds now; then how many of Crossref's recent meeting
    abstracts match and how many Europe PMC preprints and trial mentions it finds. Tune the
    keywords here before saving them in the config file.

    Example: trialwatch preview --conditions "renal cell carcinoma" --terms bispecific --terms volrustomig
    """

    from watcher.cli.pubmed import pubmed_count_lines
    from watcher.cli.readouts import readout_count_lines
    from watcher.config import load_config
    from watcher.http import make_session
    from watcher.literature import preview as feed_preview
    from watcher.registry import preview as registry_preview
    from watcher.registry.client import CtgovClient

    def action() -> int:
        config = load_config(State.config_path)
        if watch is not None:
            chosen = _named_watch(config, watch)
        elif conditions or terms or nct_ids:
            chosen = _adhoc_watch(conditions or [], terms or [], exclude or [], nct_ids or [])
        else:
            fail("give a watch name, or --conditions / --terms / --nct-id")
        for line in registry_preview.registry_lines(CtgovClient(config.clinicaltrials), chosen):
            out.print(line, markup=False)
        if feeds and chosen.feeds and (chosen.conditions or chosen.terms):
            for line in feed_preview.feed_lines(make_session(config.feeds.user_agent), config, chosen, now()):
                out.print(line, markup=False)
        client = make_pubmed_client(config)
        if pubmed and client is not None and chosen.pubmed:
            for line in pubmed_count_lines(client, chosen):
                out.print(line, markup=False)
        if readouts:
            for line in readout_count_lines(config, chosen, now()):
                out.print(line, markup=False)
        return 0

    guarded(action)


def _adhoc_watch(conditions: list[str], terms: list[str], exclude: list[str], nct_ids: list[str]) -> WatchConfig:
    """A watch from `preview`'s options, checked like one in the config file."""
    from pydantic import ValidationError

    from watcher.config import WatchConfig

    try:
        return WatchConfig(
            name="preview", conditions=conditions, terms=terms, exclude=exclude, nct_ids=nct_ids,
            recipients=["preview@localhost"],
        )  # fmt: skip
    except ValidationError as exc:
        first = exc.errors()[0]
        option = {"nct_ids": "nct-id"}.get(str(first["loc"][0]), str(first["loc"][0]))
        fail(f"--{option}: {first['msg'].removeprefix('Value error, ')}")


@app.command()
def audit(
    watch: Annotated[str | None, typer.Option(help="Only this watch.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
) -> None:
    """Print who created, edited, archived or provisioned each watch, when, and what changed.

    Watches edited in the browser or the API name the person; those synced from the config file
    name the file (trialwatch.toml). Newest first.

    Example: trialwatch audit --watch "RCC bispecifics"
    """

    from watcher.config import load_config
    from watcher.store import db
    from watcher.store.watches import audit_entries

    def action() -> int:
        config = load_config(State.config_path)
        engine = db.make_engine(config.database.url)
        db.upgrade(engine)
        with db.transaction(engine) as session:
            entries = [_audit_json(entry) for entry in audit_entries(session=session, watch=watch, limit=limit)]
        return _print_listing(entries, as_json=as_json, empty="no audit entries", line=_audit_line)

    guarded(action)


def _audit_json(entry: Any) -> dict[str, Any]:
    return {
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "watch": entry.watch,
        "changes": entry.changes,
    }


def _audit_line(entry: dict[str, Any]) -> str:
    changed = "; ".join(  # a new watch: the values it has; an edit: before → after
        f"{field} {json.dumps(new)}" if old is None else f"{field} {json.dumps(old)} → {json.dumps(new)}"
        for field, (old, new) in entry["changes"].items()
        if old is not None or new not in (None, [], {}, "")
    )
    line = f"{entry['at'][:16].replace('T', ' ')} {entry['actor']} {entry['action']} {entry['watch']!r}"
    return f"{line}: {changed}" if changed else line
