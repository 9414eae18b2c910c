"""[pubmed]: how NCBI's E-utilities are asked (a table of the config file, beside watcher.config,
which reads it). The API key is not here: it comes only from TRIALWATCH_NCBI_API_KEY (Secrets)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator, model_validator

from watcher.intervals import parse_interval
from watcher.watch import Section, check_address

NCBI_RATE_WITHOUT_KEY = 3.0
NCBI_RATE_WITH_KEY = 10.0


class PubmedConfig(Section):
    """[pubmed]: NCBI E-utilities. The API key comes only from TRIALWATCH_NCBI_API_KEY."""

    enabled: bool = False
    base_url: str = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils"
    poll_interval: timedelta = timedelta(hours=6)
    email: str = Field(default="", description="a contact address NCBI can reach (required when enabled)")
    tool: str = Field(default="trialwatch", min_length=1)
    overlap_days: int = Field(default=3, ge=0, le=60, description="each window reaches this far before the last poll")
    requests_per_second: float = Field(default=3.0, gt=0, le=NCBI_RATE_WITH_KEY)
    timeout: float = Field(default=60.0, gt=0, description="seconds per request")
    max_attempts: int = Field(default=5, ge=1, le=20, description="tries per request before the poll fails")
    backoff_seconds: float = Field(default=2.0, ge=0, description="first retry delay; doubles each try")
    max_megabytes: float = Field(default=50.0, gt=0, le=500, description="a bigger answer is refused")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url {value!r} must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("poll_interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> timedelta:
        return parse_interval(value)

    @field_validator("email")
    @classmethod
    def _contact(cls, value: str) -> str:
        return check_address(value) if value.strip() else ""

    @model_validator(mode="after")
    def _email_when_enabled(self) -> PubmedConfig:
        if self.enabled and not self.email:
            raise ValueError(
                "email is required when enabled = true: NCBI asks every E-utilities client for a contact address"
            )
        return self

    @property
    def max_bytes(self) -> int:
        return int(self.max_megabytes * 1024 * 1024)
