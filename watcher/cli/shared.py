"""What every command shares: the consoles, the clock, the one-line error convention, logging,
and `make_service`, the one place that chooses implementations (database, registry client, mail
transport, feed session)."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import typer

from watcher.errors import ConfigError, TrialwatchError

if TYPE_CHECKING:  # imported where used: `--help` and `version` stay quick
    from rich.console import Console
    from sqlalchemy import Engine

    from watcher.config import Config
    from watcher.literature.crossref import CrossrefClient
    from watcher.literature.europepmc import EuropepmcClient
    from watcher.literature.pubmed import PubmedClient
    from watcher.service import Service


class _LazyConsole:
    """A rich Console made on first use (importing rich costs a tenth of a second)."""

    def __init__(self, **options: Any) -> None:
        self._options = options

    @cached_property
    def _console(self) -> Console:
        from rich.console import Console

        return Console(**self._options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._console, name)


out: Console = _LazyConsole(highlight=False, soft_wrap=True)  # type: ignore[assignment]
err: Console = _LazyConsole(stderr=True, highlight=False, soft_wrap=True)  # type: ignore[assignment]
log = logging.getLogger("watcher")


def now() -> datetime:
    return datetime.now(UTC)


class State:
    """Options of the main command, seen by every subcommand."""

    config_path: Path | None = None


def configure_logging(*, verbose: bool, log_format: str) -> None:
    """Log lines to the current stderr, as text or one JSON object per line."""
    handler = _CurrentStderr()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[handler],
        force=True,
    )
    # alembic is imported by the commands that use it, after this: its plugins' lines too
    alembic = ("alembic.runtime.migration", "alembic.runtime.plugins")
    for noisy in ("apscheduler.executors", "apscheduler.scheduler", "urllib3", *alembic, "uvicorn"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("apprise").setLevel(logging.INFO)  # its DEBUG lines print channel URLs, secrets and all
    from watcher.channels import REDACTOR

    handler.addFilter(REDACTOR)  # channel secrets never in a log line, at any level


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


def make_pubmed_client(config: Config, *, stopping: threading.Event | None = None) -> PubmedClient | None:
    """The E-utilities client when [pubmed] is enabled (the API key from the environment only)."""
    if not config.pubmed.enabled:
        return None
    from watcher.config import Secrets
    from watcher.literature.pubmed import PubmedClient

    key = Secrets().ncbi_api_key
    return PubmedClient(
        config.pubmed, api_key=key.get_secret_value() if key else None, stopping=stopping,
        request_deadline=config.http.request_deadline,
    )  # fmt: skip


def make_crossref_client(config: Config, *, stopping: threading.Event | None = None) -> CrossrefClient | None:
    """Crossref's client when [crossref] is enabled."""
    if not config.crossref.enabled:
        return None
    from watcher.literature.crossref import CrossrefClient

    return CrossrefClient(config.crossref, stopping=stopping)


def make_europepmc_client(config: Config, *, stopping: threading.Event | None = None) -> EuropepmcClient | None:
    """Europe PMC's client when [europepmc] is enabled."""
    if not config.europepmc.enabled:
        return None
    from watcher.literature.europepmc import EuropepmcClient

    return EuropepmcClient(config.europepmc, stopping=stopping)


Watches = Literal["merged", "provisioned", "file"]


def effective_config(config: Config, *, engine: Engine, watches: Watches = "merged") -> Config:
    """`config` working on the file's watches and the database's web watches: "provisioned" syncs
    the file's watches into the database first (the daemon, poll, digest), "merged" only reads,
    "file" leaves the config as it is. A config watch with a web watch's name is a ConfigError."""
    from watcher.store.effective import merged_config, provisioned_config

    if watches == "provisioned":
        return provisioned_config(engine=engine, config=config, now=now())
    if watches == "merged":
        return merged_config(engine=engine, config=config)
    return config


def make_service(
    config: Config,
    *,
    migrate: bool = True,
    engine: Engine | None = None,
    stopping: threading.Event | None = None,
    watches: Watches = "merged",
) -> Service:
    """Everything a command needs, working on the effective watches (`effective_config`);
    `engine` reuses a running one (a reload keeps its connections), `stopping` is the daemon's
    stop flag (set, no new work starts and retry waits end at once)."""
    from watcher.channels import protect_logs
    from watcher.config import Secrets
    from watcher.http import make_session
    from watcher.mail.links import link_signer
    from watcher.mail.transport import make_transport
    from watcher.registry.client import CtgovClient
    from watcher.service import Service
    from watcher.store import db

    engine = engine or db.make_engine(config.database.url)
    stopping = stopping or threading.Event()
    if migrate:
        db.upgrade(engine)
    config = effective_config(config, engine=engine, watches=watches)
    protect_logs(url for watch in config.watch for url in watch.notify)
    return Service(
        config=config,
        engine=engine,
        client=CtgovClient(config.clinicaltrials, stopping=stopping, request_deadline=config.http.request_deadline),
        transport=make_transport(config.email, Secrets()),
        feed_http=make_session(config.feeds.user_agent, config.http.request_deadline),
        stopping=stopping,
        pubmed=make_pubmed_client(config, stopping=stopping),
        crossref=make_crossref_client(config, stopping=stopping),
        europepmc=make_europepmc_client(config, stopping=stopping),
        links=link_signer(config.server, lambda: link_secret(engine)),
    )


def link_secret(engine: Engine) -> bytes:
    """The app's secret key, which signs the recipient links in mails as it signs the web app's
    sessions: TRIALWATCH_SECRET_KEY, else the one generated once and kept in the database."""
    from watcher.config import Secrets
    from watcher.store import db, people
    from watcher.web.app import MIN_SECRET_LENGTH  # the web app's rule, the same key

    secret = Secrets().secret_key
    if secret is not None and len(secret.get_secret_value()) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"TRIALWATCH_SECRET_KEY is shorter than {MIN_SECRET_LENGTH} characters: it signs the links in mails",
            hint="make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))', or unset it",
        )
    if secret is not None:
        return secret.get_secret_value().encode()
    with db.transaction(engine) as session:
        return people.session_key(session=session, now=now()).encode()
