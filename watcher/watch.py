"""What a watch is: its words, NCT ids, recipients and schedule, and its rules (which kinds are
mailed, thresholds, statuses, phases, geography), validated the same way wherever it comes from (a
[[watch]] table of the TOML file, the web form, the JSON API): every error names the key and the
bad value. What the rules do is watcher.rules.

Part of the shared core; it imports only watcher.model (the change-kind vocabulary), so config,
store and web can all use it.
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from typing import Annotated, Any, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from watcher.model import ChangeKind

NCT_ID = re.compile(r"^NCT\d{8}$")

# Limits on one watch, the same in the TOML file, the form and the API (#25: one member's watch
# of 100,000 ids made every user's dashboard 2.5 MB).
MAX_NAME_LENGTH = 100
MAX_WORDS = 50  # per list: conditions, terms, exclude, countries, states, cities
MAX_WORD_LENGTH = 200
MAX_NCT_IDS = 1_000
MAX_RECIPIENTS = 100
# Unicode categories a name may not hold: control (CR, LF, NUL, ESC, tab), format (bidi overrides,
# zero-width joiners), line and paragraph separators. A name is one line of visible text: it is a
# path segment of the web app, a line of the CLI and a mail subject.
FORBIDDEN_IN_NAMES = ("Cc", "Cf", "Zl", "Zp")
_SPOKEN = {"\n": "a line break (LF)", "\r": "a carriage return (CR)", "\t": "a tab", "\x00": "NUL", "\x1b": "ESC"}
STORED = {"stored": True}  # validation context of a watch read back from the database


def describe_character(char: str) -> str:
    """U+202E (RIGHT-TO-LEFT OVERRIDE); a line break (LF) for the ones people know by name."""
    code = f"U+{ord(char):04X}"
    if char in _SPOKEN:
        return f"{_SPOKEN[char]}, {code}"
    label = unicodedata.name(char, "")
    return f"{code} ({label})" if label else f"{code} (a control character)"


def name_problem(name: str) -> str | None:
    """What is wrong with a watch name, in one line; None when nothing is. The one rule for the TOML
    file, the form, the API and the migration that reports stored names."""
    if not name.strip():
        return "a watch needs a name"
    for position, char in enumerate(name, start=1):
        if unicodedata.category(char) in FORBIDDEN_IN_NAMES:
            return (
                f"the name holds {describe_character(char)} at character {position}; "
                "a name is one line of visible text (no control or format characters)"
            )
    if len(name) > MAX_NAME_LENGTH:
        return f"the name is {len(name)} characters long; at most {MAX_NAME_LENGTH}"
    return None


def _stored(info: ValidationInfo) -> bool:
    """A watch read back from the database: stored before the limits, it must still load (so it
    can be seen and archived); the migration reports it."""
    return bool(info.context and info.context.get("stored"))


def _count(values: Any, most: int, what: str, info: ValidationInfo) -> Any:
    if isinstance(values, list) and len(values) > most and not _stored(info):
        raise ValueError(f"{len(values):,} {what}; at most {most:,}")
    return values


def check_address(value: str) -> str:
    """A syntactically valid mail address; user@localhost is allowed for local delivery."""
    local, _, domain = value.strip().rpartition("@")
    probe = f"{local}@example.org" if domain.lower() == "localhost" else value.strip()
    try:
        validate_email(probe, check_deliverability=False, globally_deliverable=False)
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid mail address: {exc}") from exc
    return value.strip()


Address = Annotated[str, AfterValidator(check_address)]


class Section(BaseModel):
    """A table of the config: unknown keys are refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# The registry's values (API v2 enums Status and Phase), as `statuses` and `phases` take them.
REGISTRY_STATUSES: tuple[str, ...] = (
    "RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION", "ACTIVE_NOT_RECRUITING", "SUSPENDED",
    "TERMINATED", "COMPLETED", "WITHDRAWN", "UNKNOWN", "AVAILABLE", "NO_LONGER_AVAILABLE",
    "TEMPORARILY_NOT_AVAILABLE", "APPROVED_FOR_MARKETING", "WITHHELD",
)  # fmt: skip
REGISTRY_PHASES: tuple[str, ...] = ("EARLY_PHASE1", "PHASE1", "PHASE2", "PHASE3", "PHASE4", "NA")
CHANGE_KINDS: tuple[str, ...] = tuple(str(kind) for kind in ChangeKind)


def _number(key: str, value: Any, *, whole: bool, at_least: float, above: bool = False) -> float:
    """A number for `key`, or a ValueError naming the key and the bad value."""
    shape = "a whole number" if whole else "a number"
    limit = f"above {at_least:g}" if above else f"of at least {at_least:g}"
    ok_type = isinstance(value, int) or (not whole and isinstance(value, float))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value):
        raise ValueError(f"{key} must be {shape} {limit}, not {value!r}")
    if value < at_least or (above and value == at_least):
        raise ValueError(f"{key} must be {shape} {limit}, not {value!r}")
    return value


def _vocabulary(key: str, values: Any, allowed: tuple[str, ...]) -> list[str]:
    """Registry values, case and spacing forgiven ("not yet recruiting" = NOT_YET_RECRUITING)."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{key} must be a list of names, not {values!r}")
    cleaned = [re.sub(r"PHASE_(\d)", r"PHASE\1", "_".join(v.replace("-", " ").split()).upper()) for v in values]
    bad = [raw for raw, value in zip(values, cleaned, strict=True) if value not in allowed]
    if bad:
        raise ValueError(f"{key}: unknown value {', '.join(map(repr, bad))} (expected any of {', '.join(allowed)})")
    return list(dict.fromkeys(cleaned))


class Near(Section):
    """A circle around a point: sites whose geoPoint lies within `radius_km` of (lat, lon)."""

    lat: float
    lon: float
    radius_km: float

    @field_validator("lat", "lon", "radius_km", mode="before")
    @classmethod
    def _coordinates(cls, value: Any, info: Any) -> float:
        key = f"near.{info.field_name}"
        if info.field_name == "radius_km":
            number = _number(key, value, whole=False, at_least=0, above=True)
            if number > 20_000:
                raise ValueError(f"{key} must be at most 20000 (half the Earth's circumference), not {value!r}")
            return number
        bound = 90 if info.field_name == "lat" else 180
        number = _number(key, value, whole=False, at_least=-bound)
        if number > bound:
            raise ValueError(f"{key} must be between {-bound} and {bound}, not {value!r}")
        return number


class WatchConfig(Section):
    name: str = Field(min_length=1)
    conditions: list[str] = []
    terms: list[str] = []
    exclude: list[str] = []
    nct_ids: list[str] = []
    recipients: list[Address] = Field(min_length=1)
    digest: Literal["immediate", "daily", "weekly"] = "daily"
    send_empty: bool = Field(default=False, description='a short "nothing new" mail when a digest has no changes')
    feeds: bool = Field(default=True, description="match journal feed items against this watch")
    upcoming: bool = Field(default=True, description='a "Coming up" section of dates ahead in each digest')
    # Rules (watcher.rules). Alert rules decide which changes are mailed; the others decide which
    # studies join the watch. None / empty: no rule, the watch behaves as one without it.
    alert_on: list[str] | None = Field(default=None, description="the change kinds that are mailed")
    min_slip_days: int | None = Field(default=None, description="dates changes that move less are not mailed")
    min_enrollment_change_percent: float | None = Field(
        default=None, description="enrollment changes smaller than this (relative to the old count) are not mailed"
    )
    # empty lists mean "no rule", like a key left out
    statuses: list[str] = Field(default=[], description="only studies in these overall statuses join")
    phases: list[str] = Field(default=[], description="only studies in these phases join")
    countries: list[str] = Field(default=[], description="sites in these countries are in scope")
    states: list[str] = Field(default=[], description="sites in these states are in scope")
    cities: list[str] = Field(default=[], description="sites in these cities are in scope")
    near: Near | None = Field(default=None, description="sites within radius_km of (lat, lon) are in scope")
    pubmed: bool = Field(default=True, description="search PubMed for this watch (when [pubmed] is enabled)")
    pubmed_query: str | None = Field(default=None, description="PubMed syntax; replaces the query built from the words")
    notify: list[str] = Field(default=[], description="chat channels and webhooks (Apprise URLs), beside the mail")
    crossref: bool = Field(default=True, description="match Crossref's meeting abstracts (when [crossref] is enabled)")
    europepmc: bool = Field(default=True, description="search Europe PMC for this watch (when [europepmc] is enabled)")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str, info: ValidationInfo) -> str:
        problem = None if _stored(info) else name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("conditions", "terms", "exclude", "countries", "states", "cities", mode="before")
    @classmethod
    def _at_most_words(cls, values: Any, info: ValidationInfo) -> Any:
        values = _count(values, MAX_WORDS, "words in the list", info)
        long = (
            [v for v in values if isinstance(v, str) and len(v) > MAX_WORD_LENGTH] if isinstance(values, list) else []
        )
        if long and not _stored(info):
            raise ValueError(f"a word of {len(long[0]):,} characters; at most {MAX_WORD_LENGTH}")
        return values

    @field_validator("nct_ids", mode="before")
    @classmethod
    def _at_most_ids(cls, values: Any, info: ValidationInfo) -> Any:
        return _count(values, MAX_NCT_IDS, "NCT ids", info)

    @field_validator("recipients", mode="before")
    @classmethod
    def _at_most_recipients(cls, values: Any, info: ValidationInfo) -> Any:
        return _count(values, MAX_RECIPIENTS, "recipients", info)

    @field_validator("conditions", "terms", "exclude")
    @classmethod
    def _no_blank_words(cls, values: list[str]) -> list[str]:
        cleaned = [" ".join(v.split()) for v in values]
        if any(not v for v in cleaned):
            raise ValueError("empty word in list")
        return cleaned

    @field_validator("pubmed_query")
    @classmethod
    def _query_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("empty PubMed query: leave pubmed_query out to build it from the words")
        return " ".join(value.split()) if value is not None else None

    @field_validator("nct_ids")
    @classmethod
    def _nct_ids(cls, values: list[str]) -> list[str]:
        upper = [v.strip().upper() for v in values]
        bad = [v for v in upper if not NCT_ID.match(v)]
        if bad:
            raise ValueError(f"not an NCT id: {', '.join(bad)} (expected NCT and 8 digits)")
        return list(dict.fromkeys(upper))

    @field_validator("notify", mode="before")
    @classmethod
    def _notify(cls, values: Any, info: ValidationInfo) -> list[str]:
        """Each URL checked by Apprise. `${NAME}` is read from the environment: unset, it is an
        error where a watch is written (the file, the form, the API: context `check_env`), and a
        failed delivery with that reason where a stored watch is only read."""
        from watcher import channels

        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError('notify must be a list of Apprise URLs such as "slack://…" or "${ENV_NAME}"')
        if len(values) > channels.MAX_CHANNELS:
            raise ValueError(f"notify: at most {channels.MAX_CHANNELS} URLs, not {len(values)}")
        cleaned = [value.strip() for value in values]
        check_env = bool(info.context and info.context.get("check_env"))
        for position, url in enumerate(cleaned, start=1):
            if not check_env and any(not os.environ.get(name) for name in channels.env_names(url)):
                continue
            try:
                channels.check(url)
            except channels.ChannelUrlError as exc:  # the message never holds the URL
                raise ValueError(f"notify URL {position}: {exc}") from None
        return list(dict.fromkeys(cleaned))

    @field_validator("alert_on", mode="before")
    @classmethod
    def _alert_on(cls, values: Any) -> list[str] | None:
        if values is None:
            return None
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"alert_on must be a list of change kinds, not {values!r}")
        cleaned = [v.strip().lower() for v in values]
        bad = [raw for raw, value in zip(values, cleaned, strict=True) if value not in CHANGE_KINDS]
        if bad:
            known = ", ".join(CHANGE_KINDS)
            raise ValueError(f"alert_on: unknown change kind {', '.join(map(repr, bad))} (expected any of {known})")
        if not cleaned:
            raise ValueError("alert_on is empty: leave it out to mail every kind of change")
        return list(dict.fromkeys(cleaned))

    @field_validator("min_slip_days", mode="before")
    @classmethod
    def _min_slip_days(cls, value: Any) -> int | None:
        return None if value is None else int(_number("min_slip_days", value, whole=True, at_least=1))

    @field_validator("min_enrollment_change_percent", mode="before")
    @classmethod
    def _min_enrollment(cls, value: Any) -> float | None:
        key = "min_enrollment_change_percent"
        return None if value is None else _number(key, value, whole=False, at_least=0, above=True)

    @field_validator("statuses", mode="before")
    @classmethod
    def _statuses(cls, values: Any) -> list[str]:
        return _vocabulary("statuses", values, REGISTRY_STATUSES)

    @field_validator("phases", mode="before")
    @classmethod
    def _phases(cls, values: Any) -> list[str]:
        return _vocabulary("phases", values, REGISTRY_PHASES)

    @field_validator("countries", "states", "cities", mode="before")
    @classmethod
    def _places(cls, values: Any, info: Any) -> list[str]:
        key = info.field_name
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"{key} must be a list of names, not {values!r}")
        cleaned = [" ".join(v.split()) for v in values]
        if any(not v for v in cleaned):
            raise ValueError(f"{key}: empty name in {values!r}")
        return list(dict.fromkeys(cleaned))

    @field_validator("near", mode="before")
    @classmethod
    def _near(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, dict | Near):
            raise ValueError(f"near must be a table {{ lat = ..., lon = ..., radius_km = ... }}, not {value!r}")
        return value

    @property
    def channel_addresses(self) -> list[str]:
        """The outbox recipients of this watch's channels (watcher.channels.address)."""
        from watcher.channels import address

        return [address(url) for url in self.notify]

    @property
    def audience(self) -> list[str]:
        """Everyone a change of this watch is owed to: its mail recipients and its channels."""
        return [*self.recipients, *self.channel_addresses]

    @property
    def has_geography(self) -> bool:
        return bool(self.countries or self.states or self.cities or self.near)

    @model_validator(mode="after")
    def _something_to_watch(self) -> WatchConfig:
        if not (self.conditions or self.terms or self.nct_ids):
            raise ValueError("give at least one of conditions, terms or nct_ids")
        return self
