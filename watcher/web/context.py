"""`WebContext`: what the web app works with. Its own module so that app.py (which builds the app
around it) and auth.py (which every route uses to reach it) need not import each other (#25)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy

import watcher.config


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class WebContext:
    """What the app works with: the database, the current config (a SIGHUP swaps it: call it
    each time), and the clock."""

    engine: sqlalchemy.Engine
    config: Callable[[], watcher.config.Config]
    now: Callable[[], datetime] = field(default=_utc_now)
