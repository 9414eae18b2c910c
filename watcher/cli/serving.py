"""The long-running commands: `run` (the daemon: the web app, /healthz and /metrics on every
replica; polling and mail on the leader only) and `web` (the web app alone).

`run` serves HTTP from the start, leader or standby, and keeps serving through a lost leader lock
or a database blip: the jobs stop at once (nothing more stored or sent), the replica stands by,
tries the lock again with a bounded backoff, and leads again when it gets it. The web app lives in
watcher.web.app, imported here only (the daemon never imports web): the daemon is handed a
factory that builds it around /healthz and /metrics.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from watcher.cli.shared import State, fail, guarded, log, make_service, now
from watcher.daemon import signals
from watcher.errors import ConfigError, StoreError, TrialwatchError

if TYPE_CHECKING:  # each command imports what it uses when it runs: `--help` and `version` stay quick
    from sqlalchemy import Engine

    from watcher.config import Config
    from watcher.daemon.health import HealthServer, WebApp
    from watcher.daemon.lock import LeaderLock
    from watcher.daemon.scheduler import Runtime
    from watcher.service import Service

app = typer.Typer()


@app.command()
def run() -> None:
    """Run the daemon: serve the web app, poll on the configured interval (first poll right away),
    deliver digests.

    One daemon acts per database. With SQLite a second `run` refuses to start and names the
    process holding the lock file beside the database; with PostgreSQL it stands by (serving the
    web app) and takes over when the leader stops. A leader that loses its lock or its database
    stops polling and mailing at once, keeps serving, and leads again once it can take the lock.
    Stops cleanly on SIGTERM or SIGINT (Ctrl-C) after the job in hand; SIGHUP re-reads the config
    file (a bad file is refused and the running config is kept). With [server] listen set, serves
    the web app, /healthz and /metrics there.

    Example: trialwatch --config config/trialwatch.toml run
    """
    from watcher.config import load_config
    from watcher.daemon.lock import leader_lock

    signals.install()  # already done by the entry point; again for callers that start here

    def action() -> int:
        config = load_config(State.config_path)
        lock = leader_lock(engine_url=config.database.url)
        leading = _try_lock(lock)
        if not leading and not lock.allows_standby:
            lock.acquire()  # raises LockHeld naming the holder (SQLite: one daemon per database)
        daemon = Daemon(config, lock)
        daemon.serve()
        try:
            return daemon.lead(leading=leading)
        finally:
            lock.release()
            daemon.stop_serving()

    try:
        guarded(action)
    finally:
        signals.restore()


def _try_lock(lock: LeaderLock) -> bool:
    """Take the lock if free; a PostgreSQL that does not answer yet means standing by, not failing."""
    try:
        return lock.try_acquire()
    except StoreError as exc:
        if not lock.allows_standby:
            raise
        log.warning("%s: standing by until the database answers", exc.one_line())
        return False


class Daemon:
    """One `trialwatch run`: its HTTP server, and the loop of standing by and leading."""

    def __init__(self, config: Config, lock: LeaderLock) -> None:
        from watcher.daemon.health import Metrics, Monitor
        from watcher.store import db

        self.file_config, self.lock = config, lock
        self.engine = db.make_engine(config.database.url)  # the web's and the jobs' (a reload keeps it)
        self.runtime: Runtime | None = None
        self.server: HealthServer | None = None
        self.setup_checked = False
        sources = [watch.name for watch in config.watch] + [f"feed:{feed.name}" for feed in config.feed]
        sources += [f"pubmed:{watch.name}" for watch in config.pubmed_watches()]
        self.monitor = Monitor(
            metrics=Metrics(), poll_interval=config.health_interval(), started_at=now(), sources=sources
        )
        self.monitor.set_leader(leader=lock.held, at=now())

    def current_config(self) -> Config:
        """The config the jobs run now (the file's and the web's watches), for the web app."""
        runtime = self.runtime
        return runtime.service.config if runtime is not None else self.file_config

    def serve(self) -> None:
        """The web app, /healthz and /metrics on [server] listen, from now until the process ends."""
        listen = self.file_config.server.listen
        if not listen:
            return
        from watcher.daemon.health import HealthServer

        web = web_factory(self.engine, self.current_config)
        self.server = HealthServer(
            listen=listen,
            metrics=self.monitor.metrics,
            health=lambda: self.monitor.status(now=now()),
            web=web,
            forwarded_allow_ips=self.file_config.server.forwarded_allow_ips,
        )
        self.server.start()
        log.info("serving /healthz and /metrics on %s", self.server.url)
        if web is not None:
            log.info("serving the web app on %s/", self.server.url)

    def stop_serving(self) -> None:
        if self.server is not None:
            self.server.stop()

    def lead(self, *, leading: bool) -> int:
        """Lead while the lock is held; stand by when it is not; return 0 once asked to stop."""
        from watcher.daemon.scheduler import run_forever, stand_by

        while True:
            if not leading:
                if signals.stop_requested() or not stand_by(self.lock, monitor=self.monitor):
                    return 0
                self.file_config = _reread(self.file_config)  # it may have changed while standing by
            leading = False
            self.monitor.set_leader(leader=True, at=now())
            runtime = self._start_leading()
            if runtime is None:
                continue
            run_forever(runtime, signals.RECEIVED)  # the live list: a signal noted until its handlers are in is seen
            if runtime.stop_asked or not runtime.lost_leadership:
                return 0
            self._stand_down("the leader lock was lost")

    def _start_leading(self) -> Runtime | None:
        from sqlalchemy.exc import SQLAlchemyError

        from watcher.daemon.scheduler import Runtime, sources_of

        try:
            service = leader_service(self.file_config, self.engine)
        except (TrialwatchError, SQLAlchemyError) as exc:
            if self.lock.check():
                raise  # a real error (a bad migration, a name taken): exit, as before
            self._stand_down(f"the database was lost while starting ({_first_line(exc)})")
            return None
        self.monitor.reconfigure(sources=sources_of(service), poll_interval=service.config.health_interval())
        if not self.setup_checked:
            self.setup_checked = True
            if self.server is not None:  # no web served: nowhere to create the first admin
                log_setup_link(self.file_config, self.engine, self.server.url)
        self.runtime = Runtime(service=service, clock=now, reload=self._reload, lock=self.lock, monitor=self.monitor)
        return self.runtime

    def _stand_down(self, why: str) -> None:
        self.runtime = None
        self.lock.release()
        self.monitor.set_leader(leader=False, at=now())
        log.warning("%s: standing by to take the leader lock again; the web is still served", why)

    def _reload(self) -> Service:
        """SIGHUP: a service from the re-read config (provisioned), on the same database engine (the
        leader lock is held on that database: a changed [database] url needs a restart, as does a
        changed [server])."""
        from watcher.config import load_config

        config = load_config(State.config_path)
        if config.database.url != self.file_config.database.url:
            raise ConfigError(f"{config.path}: [database] url changed: restart trialwatch to use another database")
        if config.server != self.file_config.server:
            log.warning("%s: [server] changed: it takes effect at the next restart", config.path)
        assert self.runtime is not None
        service = make_service(
            config, engine=self.engine, stopping=self.runtime.service.stopping, watches="provisioned"
        )  # fmt: skip
        self.file_config = config
        return service


def _reread(previous: Config) -> Config:
    """The config file as it is now, or `previous` when it is bad or names another database (the
    lock and the engine are that of the database this process started on)."""
    from watcher.config import load_config

    try:
        config = load_config(State.config_path)
        if config.database.url != previous.database.url:
            raise ConfigError(f"{config.path}: [database] url changed: restart trialwatch to use another database")
    except ConfigError as exc:
        log.error("config not re-read, keeping the one in use: %s", exc.one_line())
        return previous
    return config


def leader_service(config: Config, engine: Engine) -> Service:
    """The daemon's service: the database migrated (only the leader does), the file's watches
    provisioned, working on them and the web watches; said in one line."""
    from watcher.store import db

    service = make_service(config, engine=engine, watches="provisioned")
    web = len(service.config.watch) - len(config.watch)
    log.info(
        "config %s: %d watch(es) (%d from the file, %d from the web), %d feed(s); database %s; mail to %s",
        config.path, len(service.config.watch), len(config.watch), web, len(config.feed),
        db.redact_url(config.database.url), service.transport.description,
    )  # fmt: skip
    return service


def web_factory(engine: Engine, config: Callable[[], Config]) -> WebApp | None:
    """What builds the web app around the daemon's routes, or None in a build without watcher.web.app."""
    try:
        from watcher.web.app import WebContext, create_app
    except ModuleNotFoundError as exc:
        if exc.name not in ("watcher.web.app",):
            raise
        log.warning("the web app (watcher.web.app) is not in this build: serving /healthz and /metrics only")
        return None
    context = WebContext(engine=engine, config=config, now=now)

    def build(routes: Sequence[Any]) -> Any:
        return create_app(context, extra_routes=routes)

    return build


def public_url(config: Config, served_at: str) -> str:
    """`[server] public_url` where the config has it, else where the server listens."""
    configured = getattr(config.server, "public_url", None)
    return str(configured).rstrip("/") if configured else served_at


def log_setup_link(config: Config, engine: Engine, served_at: str) -> None:
    """With no user yet, log the one-time link that creates the first admin (watcher.store.people)."""
    from sqlalchemy.exc import SQLAlchemyError

    from watcher.store import db

    try:
        from watcher.store.people import ensure_setup_token
    except ModuleNotFoundError as exc:
        if exc.name not in ("watcher.store.people",):
            raise
        log.debug("no user accounts in this build: no setup link")
        return
    try:
        with db.transaction(engine) as session:
            token = ensure_setup_token(session=session, now=now())
    except (TrialwatchError, SQLAlchemyError) as exc:  # never a reason to stop serving or polling
        log.warning("cannot check for a first user (no setup link logged): %s", _first_line(exc))
        return
    if token:
        log.info("open %s/setup/%s to create the first admin (valid 24 h)", public_url(config, served_at), token)


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, TrialwatchError):
        return exc.one_line()
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@app.command()
def web(
    listen: Annotated[
        str | None, typer.Option("--listen", help="host:port to serve on (default: [server] listen).")
    ] = None,
) -> None:
    """Serve the web app alone: no polling, no mail, no leader lock.

    For a read-mostly replica, or to try the pages without the daemon. Like the daemon, syncs the
    config file's watches into the database at start and on SIGHUP (so the browser shows them).
    Stops on SIGTERM or SIGINT.

    Example: trialwatch web --listen 127.0.0.1:8080
    """

    from watcher.config import load_config, parse_listen

    def action() -> int:
        config = load_config(State.config_path)
        address = listen or config.server.listen
        if not address:
            fail("nothing to listen on: set [server] listen in the config file or pass --listen")
        try:
            parse_listen(address)
        except ValueError as exc:
            fail(f"--listen: {exc}")
        return serve_web(config, address)

    guarded(action)


def serve_web(config: Config, listen: str) -> int:
    from watcher.daemon.health import HealthServer, Metrics, Monitor
    from watcher.store import db

    engine = db.make_engine(config.database.url)
    db.upgrade(engine)
    current = [_provisioned(engine, config)]
    web = web_factory(engine, lambda: current[0])
    if web is None:
        fail("the web app (watcher.web.app) is not part of this build")
    monitor = Monitor(metrics=Metrics(), poll_interval=config.clinicaltrials.poll_interval, started_at=now())
    monitor.set_leader(leader=False, at=now())
    received: list[int] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in signals.SIGNALS}
    try:
        with HealthServer(
            listen=listen,
            metrics=monitor.metrics,
            health=lambda: monitor.status(now=now()),
            web=web,
            forwarded_allow_ips=config.server.forwarded_allow_ips,
        ) as server:
            log.info("serving the web app on %s/ (no polling, no mail)", server.url)
            log_setup_link(config, engine, server.url)
            while not any(sig != signal.SIGHUP for sig in received):
                if signal.SIGHUP in received:
                    received.clear()
                    current[0] = _reload_for_web(engine, current[0])
                time.sleep(0.1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("web server stopped")
    return 0


def _provisioned(engine: Engine, config: Config) -> Config:
    """The file's watches synced into the database (so the browser shows them without a daemon)."""
    from sqlalchemy.exc import IntegrityError

    from watcher.store.effective import merged_config, provisioned_config

    try:
        return provisioned_config(engine=engine, config=config, now=now())
    except IntegrityError:  # the daemon provisioned the same file at the same moment: read what it wrote
        return merged_config(engine=engine, config=config)


def _reload_for_web(engine: Engine, running: Config) -> Config:
    from watcher.config import load_config

    try:
        config = _provisioned(engine, load_config(State.config_path))
    except TrialwatchError as exc:
        log.error("config reload refused, keeping the running config: %s", exc.one_line())
        return running
    log.info("config reloaded from %s", config.path)
    return config
