"""The effective list of watches every command and job works on: the config file's watches
(provisioned into the database, see store.watches) followed by the active web watches by name.

`provisioned_config` writes (the daemon at start and on SIGHUP, `poll`, `digest`); `merged_config`
only reads (every other command: a command run with another config file never archives the
daemon's watches). Both refuse a config watch that takes an active web watch's name, naming the
file. `refreshed_watches` is what the daemon's watches job compares with what it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session

from watcher.config import Config
from watcher.store.db import transaction
from watcher.store.watches import (
    WatchNameTaken,
    provision_watches,
    watch_of,
    watch_rows,
    web_name_conflicts,
)
from watcher.watch import WatchConfig

log = logging.getLogger(__name__)


def web_watches(*, session: Session) -> list[WatchConfig]:
    """The active watches created in the browser or the API, by name."""
    return [watch_of(row) for row in watch_rows(session=session) if row.source == "web"]


def provisioned_config(*, engine: Engine, config: Config, now: datetime) -> Config:
    """Sync the file's watches into the database (one transaction), then `config` working on
    them and the web watches. A ConfigError naming the file when a name is taken; nothing written."""
    with transaction(engine) as session:
        touched = provision_watches(session=session, watches=config.watch, now=now, where=str(config.path))
        web = web_watches(session=session)
    if touched:
        log.info("%s: watches provisioned into the database: %s", config.path, ", ".join(map(repr, touched)))
    return config.with_watches([*config.watch, *web])


def merged_config(*, engine: Engine, config: Config) -> Config:
    """`config` working on its file's watches and the web watches, writing nothing."""
    with transaction(engine) as session:
        check_names(session=session, config=config)
        web = web_watches(session=session)
    return config.with_watches([*config.watch, *web])


def check_names(*, session: Session, config: Config) -> None:
    """ConfigError (WatchNameTaken) naming the file when a config watch has an active web watch's name."""
    taken = web_name_conflicts(session=session, names=[watch.name for watch in config.watch])
    if taken:
        raise WatchNameTaken(
            f"{config.path}: watch {taken[0]!r}: the name is taken by a watch created in the browser; "
            "rename one of them"
        )


def refreshed_watches(*, session: Session, running: Sequence[WatchConfig]) -> list[WatchConfig]:
    """What the database says the daemon should run now: the running config watches that are still
    provisioned (as the file has them), then the active web watches as stored now."""
    rows = watch_rows(session=session)
    provisioned = {row.name for row in rows if row.source == "config"}
    return [
        *(watch for watch in running if watch.name in provisioned),
        *(watch_of(row) for row in rows if row.source == "web"),
    ]
