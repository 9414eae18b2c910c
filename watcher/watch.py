"""What a watch is: its words, NCT ids, recipients and schedule, validated the same way wherever it
comes from (a [[watch]] table of the TOML file today; the web form and the API beside it).

Part of the shared core; it imports nothing else of watcher, so config, store and web can all use it.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

NCT_ID = re.compile(r"^NCT\d{8}$")


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
    pubmed: bool = Field(default=True, description="search PubMed for this watch (when [pubmed] is enabled)")
    pubmed_query: str | None = Field(default=None, description="PubMed syntax; replaces the query built from the words")

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

    @model_validator(mode="after")
    def _something_to_watch(self) -> WatchConfig:
        if not (self.conditions or self.terms or self.nct_ids):
            raise ValueError("give at least one of conditions, terms or nct_ids")
        return self
