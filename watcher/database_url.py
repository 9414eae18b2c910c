"""The database URL of the config: refused in one line (password hidden) when trialwatch cannot
use it; a relative SQLite path made absolute against the config file's folder. Shared core."""

from __future__ import annotations

import os
import re
from pathlib import Path

from watcher.errors import ConfigError

SUPPORTED_DATABASES = ("sqlite", "postgresql")


def check_database_url(url: str, where: str) -> None:
    """Refuse, in one line without the password, a URL trialwatch cannot use."""
    from sqlalchemy.engine import make_url  # here: config stays importable without the database stack

    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 (a port that is not a number fails here)
    except Exception as exc:  # noqa: BLE001 (make_url raises several kinds; all mean "not a URL")
        raise ConfigError(f"{where}: not a database URL ({exc.__class__.__name__}): {_redacted(url)}") from exc
    if parsed.get_backend_name() not in SUPPORTED_DATABASES:
        raise ConfigError(
            f"{where}: {parsed.get_backend_name()!r} databases are not supported: use sqlite:/// or "
            "postgresql+psycopg://"
        )


def _redacted(url: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


def resolve_sqlite_url(url: str, base: Path) -> str:
    """Make a relative SQLite path absolute against the config file's folder."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    rest = url[len(prefix) :]
    if not rest or rest.startswith("/") or rest == ":memory:":
        return url
    return prefix + os.path.normpath(base / rest)
