"""Typed configuration: one TOML file for what to watch, the environment for secrets.

`load_config(path)` returns a `Config` or raises `ConfigError` with one line that names the file
and the place ("config/trialwatch.toml: watch 'RCC CAR-T': unknown key 'keywrds'"). Relative
paths in the file are relative to the file. Secrets (SMTP user and password) and the database URL
override come only from the environment (`Secrets`); the config file has no key for a password.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import time as Time
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from watcher.database_url import check_database_url, resolve_sqlite_url
from watcher.errors import ConfigError
from watcher.intervals import MIN_INTERVAL, Interval, parse_interval
from watcher.pubmed_config import NCBI_RATE_WITHOUT_KEY, PubmedConfig
from watcher.readouts_config import CrossrefConfig, EuropepmcConfig
from watcher.server_config import ServerConfig, parse_listen
from watcher.watch import NCT_ID, Address, Section, WatchConfig, check_address

# defined in watcher.watch and watcher.intervals, used from here too
__all__ = [
    "MIN_INTERVAL",
    "NCT_ID",
    "Address",
    "Interval",
    "ServerConfig",
    "WatchConfig",
    "check_address",
    "parse_interval",
]
__all__ += ["parse_listen"]

# Registry bookkeeping that is never a change (watcher.registry.normalize prunes it); the default of
# [clinicaltrials] ignore_fields, so it lives with the config.
DEFAULT_IGNORE: tuple[str, ...] = (
    "derivedSection",
    "*.geoPoint",
    "protocolSection.statusModule.statusVerifiedDate",
    "protocolSection.statusModule.lastUpdateSubmitDate",
    "protocolSection.statusModule.lastUpdatePostDateStruct",
    "protocolSection.statusModule.studyFirstSubmitQcDate",
    "protocolSection.statusModule.resultsFirstSubmitQcDate",
    "protocolSection.statusModule.dispFirstSubmitQcDate",
    "*.versionHolder",
)

DEFAULT_CONFIG_PATH = Path("config/trialwatch.toml")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class HttpConfig(Section):
    request_deadline: float = Field(
        default=120.0, gt=0, description="seconds a request to an outside server may take in all, body included"
    )


class DatabaseConfig(Section):
    url: str = "sqlite:///var/trialwatch.db"


class ClinicalTrialsConfig(Section):
    base_url: str = "https://clinicaltrials.gov/api/v2"
    poll_interval: Interval = timedelta(hours=6)
    requests_per_second: float = Field(default=1.0, ge=0)
    timeout: float = Field(default=60.0, gt=0, description="seconds per request")
    page_size: int = Field(default=1000, ge=1, le=1000)
    full_every: Interval = Field(default=timedelta(days=7), description="full reconciliation interval")
    overlap_days: int = Field(default=3, ge=0, le=60, description="incremental window reaches this far back")
    max_attempts: int = Field(default=5, ge=1, le=20, description="tries per request before the poll fails")
    backoff_seconds: float = Field(default=2.0, ge=0, description="first retry delay; doubles each try")
    user_agent: str = "trialwatch/0.1 (+https://github.com/trialwatch/trialwatch)"
    ignore_fields: list[str] = Field(
        default_factory=lambda: list(DEFAULT_IGNORE),
        description="dotted paths (fnmatch patterns) never reported as changes",
    )
    history: bool = Field(default=True, description="read the registry's version history (false: nowhere)")
    history_max_versions: int = Field(
        default=100, ge=1, le=10_000, description="a backfill stores the newest this many, plus the first"
    )
    history_per_cycle: int = Field(default=50, ge=0, le=10_000, description="studies backfilled after each poll")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url {value!r} must start with http:// or https://")
        return value.rstrip("/")

    @property
    def history_url(self) -> str:
        """The internal API behind the site's history tab: base_url with /api/v2 as /api/int."""
        root, found, _rest = self.base_url.rpartition("/api/v2")
        return f"{root}/api/int" if found else f"{self.base_url}/api/int"


class EmailConfig(Section):
    sender: str = "trialwatch <trialwatch@localhost>"
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "starttls"
    outbox_dir: Path = Path("var/outbox")
    timeout: float = Field(default=30.0, gt=0, description="seconds per SMTP operation")
    ca_file: Path | None = Field(default=None, description="extra CA certificates to trust (a private mail server)")

    @field_validator("sender")
    @classmethod
    def _sender_address(cls, value: str) -> str:
        check_address(parseaddr(value)[1] or value)
        return value


class DigestConfig(Section):
    time: Time = Time(7, 0)
    weekday: Literal[WEEKDAYS] = "monday"  # type: ignore[valid-type]
    timezone: str = "UTC"
    upcoming_days: int = Field(
        default=90, ge=0, le=3650, description='the "Coming up" section looks this many days ahead (0: none)'
    )

    @field_validator("weekday", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("timezone")
    @classmethod
    def _iana(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}: use an IANA name such as 'Europe/Paris'") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class MilestonesConfig(Section):
    """[milestones]: results reporting deadlines (watcher.milestones)."""

    due_soon_days: int = Field(default=60, ge=0, le=3650, description="results due within this many days: due soon")


class FeedsConfig(Section):
    """[feeds]: how journal feeds are polled."""

    poll_interval: Interval = Field(default=timedelta(hours=1), description="default for every feed")
    user_agent: str = "trialwatch/0.1 (+https://github.com/trialwatch/trialwatch)"
    timeout: float = Field(default=30.0, gt=0, description="seconds per request")
    max_megabytes: float = Field(default=10.0, gt=0, le=100, description="a bigger response is refused")

    @property
    def max_bytes(self) -> int:
        return int(self.max_megabytes * 1024 * 1024)


class FeedConfig(Section):
    """[[feed]]: one journal's RSS / RDF / Atom feed."""

    name: str = Field(min_length=1)
    url: str
    poll_interval: Interval | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value.strip()):
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value.strip()


class Config(Section):
    path: Path = Field(default=DEFAULT_CONFIG_PATH, exclude=True)
    database: DatabaseConfig = DatabaseConfig()
    http: HttpConfig = HttpConfig()
    clinicaltrials: ClinicalTrialsConfig = ClinicalTrialsConfig()
    email: EmailConfig = EmailConfig()
    digest: DigestConfig = DigestConfig()
    milestones: MilestonesConfig = MilestonesConfig()
    server: ServerConfig = ServerConfig()
    feeds: FeedsConfig = FeedsConfig()
    feed: list[FeedConfig] = []
    pubmed: PubmedConfig = PubmedConfig()
    crossref: CrossrefConfig = CrossrefConfig()
    europepmc: EuropepmcConfig = EuropepmcConfig()
    watch: list[WatchConfig] = []

    @field_validator("watch")
    @classmethod
    def _unique_names(cls, watches: list[WatchConfig]) -> list[WatchConfig]:
        seen: set[str] = set()
        for watch in watches:
            if watch.name in seen:
                raise ValueError(f"two watches are named {watch.name!r}")
            seen.add(watch.name)
        return watches

    @field_validator("feed")
    @classmethod
    def _unique_feed_names(cls, feeds: list[FeedConfig]) -> list[FeedConfig]:
        names = [feed.name for feed in feeds]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"two feeds are named {twice[0]!r}")
        return feeds

    def pubmed_watches(self) -> list[WatchConfig]:
        """The watches polled in PubMed: all but those with `pubmed = false`, when [pubmed] is enabled."""
        return [watch for watch in self.watch if watch.pubmed] if self.pubmed.enabled else []

    def crossref_watches(self) -> list[WatchConfig]:
        """The watches Crossref's meeting abstracts are matched against (`crossref = false` opts out)."""
        return [watch for watch in self.watch if watch.crossref] if self.crossref.enabled else []

    def europepmc_watches(self) -> list[WatchConfig]:
        """The watches searched in Europe PMC (`europepmc = false` opts out)."""
        return [watch for watch in self.watch if watch.europepmc] if self.europepmc.enabled else []

    def health_interval(self) -> timedelta:
        """The poll interval /healthz judges staleness by: the registry's, or PubMed's when longer."""
        intervals = [self.clinicaltrials.poll_interval] + ([self.pubmed.poll_interval] if self.pubmed.enabled else [])
        intervals += [source.poll_interval for source in (self.crossref, self.europepmc) if source.enabled]
        return max(intervals)

    def feed_interval(self, feed: FeedConfig) -> timedelta:
        return feed.poll_interval or self.feeds.poll_interval

    @property
    def watches(self) -> list[WatchConfig]:
        return list(self.watch)

    def with_watches(self, watches: list[WatchConfig]) -> Config:
        """This config working on `watches` (the file's and the database's, see store.watches)."""
        return self.model_copy(update={"watch": list(watches)})

    def watch_named(self, name: str) -> WatchConfig:
        for watch in self.watch:
            if watch.name == name:
                return watch
        known = ", ".join(repr(w.name) for w in self.watch) or "none"
        raise ConfigError(f"{self.path}: no watch named {name!r} (watches: {known})")


class Secrets(BaseSettings):
    """Values that only ever come from the environment."""

    model_config = SettingsConfigDict(env_prefix="TRIALWATCH_", extra="ignore")

    database_url: str | None = None
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    ncbi_api_key: SecretStr | None = None  # TRIALWATCH_NCBI_API_KEY; never logged
    secret_key: SecretStr | None = None  # signs the web app's session cookies; else one is kept in the database


def resolve_config_path(path: str | Path | None) -> Path:
    if path:
        return Path(path)
    return Path(os.environ.get("TRIALWATCH_CONFIG") or DEFAULT_CONFIG_PATH)


def load_config(path: str | Path | None = None) -> Config:
    """Read, validate and resolve the config file; raise ConfigError with one clear line."""
    config_path = resolve_config_path(path)
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{config_path}: config file not found",
            hint="pass --config PATH or set TRIALWATCH_CONFIG",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: TOML syntax error: {exc}") from exc
    try:
        config = Config.model_validate({**raw, "path": config_path}, context={"check_env": True})
    except ValidationError as exc:
        raise ConfigError(f"{config_path}: {describe_validation_error(exc, raw)}") from exc
    return _resolve_paths(config, Secrets())


def check_pubmed_rate(config: Config, secrets: Secrets) -> None:
    """NCBI's limit: 3 requests a second without an API key, 10 with one."""
    rate, has_key = config.pubmed.requests_per_second, secrets.ncbi_api_key is not None
    if config.pubmed.enabled and not has_key and rate > NCBI_RATE_WITHOUT_KEY:
        raise ConfigError(
            f"{config.path}: [pubmed]: key 'requests_per_second': {rate:g} is more than NCBI allows without an "
            f"API key ({NCBI_RATE_WITHOUT_KEY:g})",
            hint="set TRIALWATCH_NCBI_API_KEY for up to 10 a second, or lower requests_per_second",
        )


def _resolve_paths(config: Config, secrets: Secrets) -> Config:
    check_pubmed_rate(config, secrets)
    base = config.path.resolve().parent
    url = secrets.database_url or config.database.url
    check_database_url(url, "TRIALWATCH_DATABASE_URL" if secrets.database_url else f"{config.path}: [database] url")
    ca_file = config.email.ca_file
    return config.model_copy(
        update={
            "database": DatabaseConfig(url=resolve_sqlite_url(url, base)),
            "email": config.email.model_copy(
                update={
                    "outbox_dir": _against(base, config.email.outbox_dir),
                    "ca_file": _against(base, ca_file) if ca_file else None,
                }
            ),
        }
    )


def _against(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else Path(os.path.normpath(base / path))


def describe_validation_error(exc: ValidationError, raw: dict[str, Any]) -> str:
    """The first validation error as "watch 'NAME': unknown key 'x'" (or "feed 'NAME': …")."""
    error = exc.errors()[0]
    loc = list(error["loc"])
    where: list[str] = []
    if len(loc) >= 2 and loc[0] in ("watch", "feed") and isinstance(loc[1], int):
        items = raw.get(str(loc[0])) or []
        item = items[loc[1]] if loc[1] < len(items) and isinstance(items[loc[1]], dict) else {}
        name = item.get("name")
        where.append(f"{loc[0]} {name!r}" if name else f"{loc[0]} #{loc[1] + 1}")
        loc = loc[2:]
    elif loc and isinstance(loc[0], str) and loc[0] not in ("watch", "feed"):
        where.append(f"[{loc[0]}]")
        loc = loc[1:]
    key = ".".join(str(part) for part in loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        message = f"unknown key {key!r}" if key else "unknown section"
    elif kind == "missing":
        message = f"missing key {key!r}"
    else:
        text = str(error["msg"]).removeprefix("Value error, ")
        message = f"key {key!r}: {text}" if key else text
    return ": ".join([*where, message])
