"""The registry's own version history: the two internal endpoints behind the site's "History of
Changes" tab, read defensively (they are undocumented and unversioned).

- `{history_url}/studies/{NCT}?history=true` lists the versions: `history.changes`, each with
  `version` (from 0; the site shows it plus one), `date` (the day it was submitted), `status` and
  `moduleLabels`. Version numbers are the list's own, never a position or a count.
- `{history_url}/studies/{NCT}/history/{version}` answers one version's record, API v2 shape, as
  `{"studyVersion": version, "study": record}`.

Asked without search parameters (with them the text comes back with `<mark class="hl-term">`
highlights); a record that carries highlights anyway has them stripped before anyone reads it.
Every answer is size-capped; anything unexpected is a SourceError naming the study and version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from watcher.errors import SourceError
from watcher.http import HttpClient
from watcher.jsontext import parse_json

MAX_LIST_BYTES = 8 * 1024 * 1024  # the list answer also carries the current record (the largest: 3.6 MB)
MAX_RECORD_BYTES = 8 * 1024 * 1024
MAX_LISTED = 5_000  # versions in one list; more is not a record's history
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_MARK = re.compile(r"</?mark\b[^>]*>", re.IGNORECASE)
_NCT = re.compile(r"NCT\d{8}")


@dataclass(frozen=True, slots=True)
class RegistryVersion:
    """One entry of a study's version list."""

    number: int  # the API's (the site shows number + 1)
    date: str  # yyyy-mm-dd, the day it was submitted
    status: str
    labels: tuple[str, ...]  # the sections that changed from the version before


def chosen_versions(listed: list[RegistryVersion], max_versions: int) -> list[RegistryVersion]:
    """The newest `max_versions` of a list (oldest first), plus its first one."""
    if len(listed) <= max_versions:
        return list(listed)
    return [listed[0], *listed[-max_versions:]]


def parse_version_list(body: Any, nct_id: str) -> list[RegistryVersion]:
    """The version list of an answer, oldest first: gaps in the numbers are kept as they are (the
    numbers are the registry's), an entry repeated identically is kept once, and a number listed
    twice with different dates, a malformed entry or a study other than `nct_id` refuse it."""
    where = f"{nct_id} version list"
    history = body.get("history") if isinstance(body, dict) else None
    changes = history.get("changes") if isinstance(history, dict) else None
    if not isinstance(changes, list):
        raise SourceError(f"{where}: the answer has no history.changes list")
    if len(changes) > MAX_LISTED:
        raise SourceError(f"{where}: {len(changes)} versions listed, more than {MAX_LISTED}")
    other = _record_id(body.get("study"))
    if other is not None and other != nct_id and nct_id not in _aliases(body.get("study")):
        raise SourceError(f"{where}: the answer is the history of {other}")
    found: dict[int, RegistryVersion] = {}
    for index, entry in enumerate(changes):
        version = _entry(entry, f"{where}: entry #{index + 1}")
        known = found.get(version.number)
        if known is not None and known.date != version.date:
            raise SourceError(f"{where}: version {version.number} is listed twice with different dates")
        found.setdefault(version.number, version)
    if not found:
        raise SourceError(f"{where}: no versions listed")
    return [found[number] for number in sorted(found)]


def _entry(entry: Any, where: str) -> RegistryVersion:
    if not isinstance(entry, dict):
        raise SourceError(f"{where} is not an object")
    number, day = entry.get("version"), entry.get("date")
    if type(number) is not int or number < 0:
        raise SourceError(f"{where}: version {str(number)[:20]!r} is not a number from 0")
    if not isinstance(day, str) or not _DAY.fullmatch(day):
        raise SourceError(f"{where}: date {str(day)[:20]!r} is not yyyy-mm-dd")
    labels = entry.get("moduleLabels")
    labels = tuple(str(label)[:80] for label in labels) if isinstance(labels, list) else ()
    status = entry.get("status")
    return RegistryVersion(number, day, str(status)[:40] if isinstance(status, str) else "", labels)


def parse_version_record(body: Any, nct_id: str, number: int, *, highlighted: bool = True) -> dict[str, Any]:
    """One version's record, highlights stripped (`highlighted` false: the answer has none, it
    need not be walked); refused when it is not this study's or not this version."""
    where = f"{nct_id} version {number}"
    if not isinstance(body, dict) or not isinstance(body.get("study"), dict):
        raise SourceError(f"{where}: the answer has no study record")
    said = body.get("studyVersion")
    if said is not None and said != number:
        raise SourceError(f"{where}: the answer is version {str(said)[:20]}")
    record: dict[str, Any] = body["study"]
    found = _record_id(record)
    if found is None:
        raise SourceError(f"{where}: the record has no nctId")
    if found != nct_id and nct_id not in _aliases(record):
        raise SourceError(f"{where}: the record is {found[:20]}'s, not {nct_id}'s")
    return strip_highlights(record) if highlighted else record  # type: ignore[no-any-return]


def strip_highlights(value: Any) -> Any:
    """The value with every `<mark …>` / `</mark>` tag taken out of its strings."""
    if isinstance(value, str):
        return _MARK.sub("", value) if "mark" in value.lower() else value
    if isinstance(value, dict):
        return {key: strip_highlights(item) for key, item in value.items()}
    if isinstance(value, list):
        return [strip_highlights(item) for item in value]
    return value


def _record_id(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    ident = ((record.get("protocolSection") or {}).get("identificationModule") or {}).get("nctId")
    return ident if isinstance(ident, str) else None


def _aliases(record: Any) -> list[str]:
    if not isinstance(record, dict):
        return []
    aliases = ((record.get("protocolSection") or {}).get("identificationModule") or {}).get("nctIdAliases")
    return [a for a in aliases if isinstance(a, str)] if isinstance(aliases, list) else []


class VersionHistoryClient:
    """Reads a study's version history over the registry client's own HTTP client: the same
    User-Agent, retries and pacing (requests_per_second counts both)."""

    def __init__(self, http: HttpClient, history_url: str) -> None:
        self.http = http
        self.history_url = history_url.rstrip("/")

    def version_list(self, nct_id: str) -> list[RegistryVersion]:
        _check_id(nct_id)
        url = f"{self.history_url}/studies/{nct_id}"
        raw = self.http.fetch_bytes(url, params={"history": "true"}, max_bytes=MAX_LIST_BYTES)
        return parse_version_list(_parsed(raw, f"{nct_id} version list"), nct_id)

    def version_record(self, nct_id: str, number: int) -> dict[str, Any]:
        _check_id(nct_id)
        url = f"{self.history_url}/studies/{nct_id}/history/{int(number)}"
        raw = self.http.fetch_bytes(url, max_bytes=MAX_RECORD_BYTES)
        body = _parsed(raw, f"{nct_id} version {number}")
        return parse_version_record(body, nct_id, number, highlighted=_HIGHLIGHT.search(raw) is not None)


_HIGHLIGHT = re.compile(rb"<mark\b", re.IGNORECASE)


def _parsed(raw: bytes, where: str) -> Any:
    """A whole answer as JSON (a body cut short is retried by the HTTP client, as a broken read)."""
    try:
        return parse_json(raw)
    except ValueError as exc:
        raise SourceError(f"{where}: the answer is not JSON ({len(raw)} bytes)") from exc


def _check_id(nct_id: str) -> None:
    if not _NCT.fullmatch(nct_id):
        raise SourceError(f"{nct_id[:20]!r} is not an NCT id")
