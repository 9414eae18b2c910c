"""A watch in the web app: validated through `WatchConfig` wherever it comes from (the form or the
API's JSON), pydantic's errors as `{"field", "message"}`, the W object of the API, who may edit
which watch, and the registry preview (runs the query now, stores nothing)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from watcher import channels
from watcher.config import ClinicalTrialsConfig
from watcher.errors import SourceError
from watcher.matching import why_study_matches
from watcher.model import Study
from watcher.registry.client import IDS_PER_REQUEST, CtgovClient
from watcher.registry.preview import ruled_queries
from watcher.rules import has_join_rules
from watcher.store.dashboard import WatchSummary
from watcher.store.models import WatchRow
from watcher.store.people import Person
from watcher.watch import WatchConfig
from watcher.web.rules_form import PREVIEW_RULE_FIELDS, rule_values, rules_from_form

PREVIEW_SHOWN = 20
PREVIEW_MAX_PAGES = 3  # of each query of a watch with join rules
PREVIEW_FIELDS = ("conditions", "terms", "exclude", "nct_ids")
LIST_FIELDS = ("conditions", "terms", "exclude", "nct_ids", "recipients", "notify")
_PLACEHOLDER = {"name": "preview", "recipients": ["preview@localhost"]}


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class WatchInvalid(Exception):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors

    def by_field(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for error in self.errors:
            found[error.field] = f"{found[error.field]} {error.message}" if error.field in found else error.message
        return found


def field_errors(exc: ValidationError) -> list[FieldError]:
    """pydantic's errors, one per field, in words a person reads."""
    errors = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        key = ".".join(str(part) for part in error["loc"] if not isinstance(part, int))  # near.lat; not recipients.1
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown field {key!r}"
        elif error["type"] == "missing":
            message = f"missing key {key!r}" if "." in key else "required"  # near.radius_km: as the TOML file says
        where = key if loc else ("conditions" if "conditions" in message else "watch")
        errors.append(FieldError(where, message))
    return errors


def validate_watch(data: dict[str, Any]) -> WatchConfig:
    """A WatchConfig from JSON-like data; WatchInvalid with every field's error."""
    try:
        return WatchConfig.model_validate(data, context={"check_env": True})
    except ValidationError as exc:
        raise WatchInvalid(field_errors(exc)) from exc


def validate_preview(data: dict[str, Any]) -> WatchConfig:
    """The words and ids of a preview (the other fields of a watch do not matter to it)."""
    if not isinstance(data, dict):
        raise WatchInvalid([FieldError("body", "expected a JSON object")])
    unknown = sorted(set(data) - set(PREVIEW_FIELDS) - set(PREVIEW_RULE_FIELDS))
    if unknown:
        raise WatchInvalid([FieldError(key, f"unknown field {key!r}") for key in unknown])
    return validate_watch({**_PLACEHOLDER, **data})


def split_lines(text: str) -> list[str]:
    """One word or phrase a line (blank lines ignored)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def split_items(text: str, *, spaces: bool = True) -> list[str]:
    """Ids or addresses: one a line, or separated by commas, semicolons (or spaces)."""
    return [item.strip() for item in re.split(r"[\s,;]+" if spaces else r"[\n,;]+", text) if item.strip()]


def form_to_data(form: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The watch form as WatchConfig data, over `base` (an edited watch keeps what the form does
    not show, such as rule keys added later)."""
    data: dict[str, Any] = dict(base or {})
    data["name"] = str(form.get("name", "")).strip()
    for key in ("conditions", "terms", "exclude"):
        data[key] = split_lines(str(form.get(key, "")))
    data["nct_ids"] = split_items(str(form.get("nct_ids", "")))
    data["recipients"] = split_items(str(form.get("recipients", "")), spaces=False)
    data["notify"] = channels.restore_masked(split_lines(str(form.get("notify", ""))), (base or {}).get("notify") or [])
    data["digest"] = str(form.get("digest", "daily"))
    data["send_empty"] = form.get("send_empty") == "on"
    data["feeds"] = form.get("feeds") == "on"
    data.update(rules_from_form(form))
    return data


def form_values(data: dict[str, Any]) -> dict[str, Any]:
    """WatchConfig data as the form's inputs show it (lists one item a line; channels masked)."""
    values = masked_definition(data)
    for key in LIST_FIELDS:
        items = values.get(key) or []
        values[key] = "\n".join(str(item) for item in items) if isinstance(items, list) else str(items)
    values.setdefault("name", "")
    values.setdefault("digest", "daily")
    values.setdefault("send_empty", False)
    values.setdefault("feeds", True)
    values.update(rule_values(data))
    return values


def masked_definition(data: dict[str, Any]) -> dict[str, Any]:
    """A watch's data as pages and API answers show it: every channel URL masked."""
    notify = data.get("notify")
    if not isinstance(notify, list) or not notify:
        return dict(data)
    return {**data, "notify": [channels.masked(str(url)) for url in notify]}


def with_stored_secrets(data: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """Submitted data whose masked channel URLs (sent back as read) are the stored ones again."""
    notify = data.get("notify")
    if not isinstance(notify, list) or not all(isinstance(url, str) for url in notify):
        return data  # validation says what is wrong
    return {**data, "notify": channels.restore_masked(notify, stored.get("notify") or [])}


def may_edit(person: Person, row: WatchRow | WatchSummary) -> bool:
    """Admins edit every web watch; members the ones they created; nobody a config watch here."""
    return row.source == "web" and (person.is_admin or row.owner == person.email)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def watch_json(summary: WatchSummary) -> dict[str, Any]:
    """W: the watch's fields (every key its definition has), where it is defined, and its health."""
    return {
        "name": summary.name,
        **masked_definition(summary.definition),
        "source": summary.source,
        "owner": summary.owner,
        "last_poll_at": _iso(summary.last_poll_at),
        "last_success_at": _iso(summary.last_success_at),
        "failing_since": _iso(summary.failing_since),
        "last_error": summary.last_error,
        "studies": summary.studies,
        "changes_7d": summary.changes_7d,
    }


@dataclass(frozen=True)
class PreviewStudy:
    nct_id: str
    title: str
    status: str
    phase: str
    why: str

    def as_json(self) -> dict[str, str]:
        return {"nct_id": self.nct_id, "title": self.title, "status": self.status, "phase": self.phase, "why": self.why}


@dataclass(frozen=True)
class Preview:
    count: int
    studies: list[PreviewStudy] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    error: str | None = None
    left_out: dict[str, int] = field(default_factory=dict)  # by join rule (statuses, phases, geography)
    complete: bool = True  # False: the count is a floor (pages or NCT ids the preview did not read)
    unchecked_ids: int = 0  # NCT ids past the first batch: not looked up by the preview

    def as_json(self) -> dict[str, Any]:
        studies = [study.as_json() for study in self.studies]
        return {"count": self.count, "complete": self.complete, "unchecked_ids": self.unchecked_ids, "studies": studies}


def run_preview(config: ClinicalTrialsConfig, watch: WatchConfig, stopping: threading.Event | None = None) -> Preview:
    """What the watch's queries match in the registry now: the count and the first 20 studies
    with why each matched. Reads only what it shows (#25): the words' first page with the
    registry's total and the first batch of NCT ids (the others are `unchecked_ids`); with join
    rules, at most `PREVIEW_MAX_PAGES` pages of each query. A study found by its words and by its
    id is counted once when both queries show it. `stopping` set: the preview gives up."""
    quick = config.model_copy(update={"max_attempts": min(config.max_attempts, 2)})  # a person is waiting
    unchecked = max(0, len(watch.nct_ids) - IDS_PER_REQUEST)
    watch = watch.model_copy(update={"nct_ids": watch.nct_ids[:IDS_PER_REQUEST]})
    client = CtgovClient(quick, stopping=stopping)
    try:
        found = _ruled_preview(client, watch) if has_join_rules(watch) else _plain_preview(client, watch)
    except SourceError as exc:
        return Preview(count=0, error=exc.one_line())
    if not unchecked:
        return found
    return replace(found, complete=False, unchecked_ids=unchecked)


def _plain_preview(client: CtgovClient, watch: WatchConfig) -> Preview:
    pages = client.preview(watch, limit=PREVIEW_SHOWN)
    seen: dict[str, PreviewStudy] = {}
    total = 0
    for _url, page in pages:
        total += page.total if page.total is not None else len(page.studies)
        for record in page.studies:
            study = Study.from_record(record)
            if study.nct_id in seen:
                total -= 1
                continue
            seen[study.nct_id] = _shown(record, watch)
    return Preview(count=total, studies=list(seen.values())[:PREVIEW_SHOWN], requests=[url for url, _ in pages])


def _shown(record: dict[str, Any], watch: WatchConfig) -> PreviewStudy:
    study = Study.from_record(record)
    why = why_study_matches(record, study.nct_id, watch) or "found by the registry's search (synonyms)"
    return PreviewStudy(study.nct_id, study.title, study.status_label, study.phase_label, why)


def _ruled_preview(client: CtgovClient, watch: WatchConfig) -> Preview:
    """A watch with join rules: the pages of its scoped queries, each study kept or left out as a
    poll would (as `trialwatch preview`), so the count is what the watch will hold."""
    held: dict[str, PreviewStudy] = {}
    counted: set[str] = set()
    left_out: dict[str, int] = {}
    urls, complete = [], True
    for query in ruled_queries(client, watch, shown=PREVIEW_SHOWN, max_pages=PREVIEW_MAX_PAGES):
        urls.append(query.url)
        complete = complete and query.complete
        counted.update(query.held_ids)
        for rule, number in query.left_out.items():
            left_out[rule] = left_out.get(rule, 0) + number
        for record in query.shown:
            held.setdefault(Study.from_record(record).nct_id, _shown(record, watch))
    shown = list(held.values())[:PREVIEW_SHOWN]
    rules = dict(sorted(left_out.items()))
    return Preview(count=len(counted), studies=shown, requests=urls, left_out=rules, complete=complete)
