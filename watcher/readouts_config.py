"""[crossref] and [europepmc]: where meeting abstracts and preprints are asked for (tables of the
config file, beside watcher.config, which reads them). Issue #20."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator, model_validator

from watcher.watch import Section, check_address

ISSN = re.compile(r"^\d{4}-\d{3}[\dX]$")
JCO_ONLINE, ANNALS_OF_ONCOLOGY = "1527-7755", "0923-7534"


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"base_url {value!r} must start with http:// or https://")
    return value.rstrip("/")


def _interval(value: Any) -> timedelta:
    from watcher.intervals import parse_interval

    return parse_interval(value)


class _ReadoutSource(Section):
    """What both sources share: schedule, window overlap, pace, retries, size cap."""

    enabled: bool = False
    poll_interval: timedelta = timedelta(hours=6)
    timeout: float = Field(default=60.0, gt=0, description="seconds per request")
    max_attempts: int = Field(default=5, ge=1, le=20, description="tries per request before the poll fails")
    backoff_seconds: float = Field(default=2.0, ge=0, description="first retry delay; doubles each try")
    max_megabytes: float = Field(default=50.0, gt=0, le=500, description="a bigger answer is refused")
    max_pages: int = Field(default=50, ge=1, le=1000, description="paging past this many pages fails the poll")

    @field_validator("base_url", check_fields=False)
    @classmethod
    def _base_url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("poll_interval", mode="before")
    @classmethod
    def _poll_interval(cls, value: Any) -> timedelta:
        return _interval(value)

    @property
    def max_bytes(self) -> int:
        return int(self.max_megabytes * 1024 * 1024)


class CrossrefConfig(_ReadoutSource):
    """[crossref]: meeting abstracts (JCO and Annals of Oncology supplements) through Crossref's
    REST API, in its "polite" pool (`mailto`)."""

    mailto: str = Field(default="", description="a contact address Crossref can reach (required when enabled)")
    base_url: str = "https://api.crossref.org"
    overlap_days: int = Field(default=7, ge=0, le=60, description="each window reaches this far before the last poll")
    journals: list[str] = Field(default=[JCO_ONLINE, ANNALS_OF_ONCOLOGY], description="ISSNs polled")
    requests_per_second: float = Field(default=1.0, gt=0, le=50)

    @field_validator("mailto")
    @classmethod
    def _contact(cls, value: str) -> str:
        return check_address(value) if value.strip() else ""

    @field_validator("journals")
    @classmethod
    def _issns(cls, values: list[str]) -> list[str]:
        cleaned = [value.strip().upper() for value in values]
        bad = [value for value in cleaned if not ISSN.match(value)]
        if bad:
            raise ValueError(f"not an ISSN: {bad[0]!r} (expected 1234-567X)")
        return list(dict.fromkeys(cleaned))

    @model_validator(mode="after")
    def _mailto_when_enabled(self) -> CrossrefConfig:
        if self.enabled and not self.mailto:
            raise ValueError("mailto is required when enabled = true: Crossref's polite pool wants a contact address")
        return self


class EuropepmcConfig(_ReadoutSource):
    """[europepmc]: preprints and full-text trial mentions through Europe PMC's REST API."""

    email: str = Field(default="", description="sent as the `email` parameter (a contact for Europe PMC)")
    base_url: str = "https://www.ebi.ac.uk/europepmc/webservices/rest"
    overlap_days: int = Field(default=3, ge=0, le=60, description="each window reaches this far before the last poll")
    requests_per_second: float = Field(default=2.0, gt=0, le=10)

    @field_validator("email")
    @classmethod
    def _contact(cls, value: str) -> str:
        return check_address(value) if value.strip() else ""
