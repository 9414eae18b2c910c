"""Pure: the query string of a timeline page (`/changes`, `/articles`) -> a store filter and a
cursor, or errors next to the field they concern; and the links that keep a filtered view
bookmarkable (the next page keeps every filter)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from watcher.inputs import InputError, day
from watcher.model import ITEM_TYPES, ChangeKind
from watcher.store.timeline import ChangeFilter, Cursor

NCT_ID = re.compile(r"^NCT\d{8}$")
MAX_WORDS, MAX_WORD = 10, 100
KIND_LABELS = {
    "status": "status",
    "results_posted": "results posted",
    "results_overdue": "results overdue",
    "new_study": "new study",
    "no_longer_matching": "no longer matching",
    "dates": "dates",
    "estimated_date_passed": "estimated date passed",
    "enrollment": "enrollment",
    "sites": "sites",
    "arms": "arms",
    "eligibility": "eligibility",
    "outcomes": "outcomes",
    "phase": "phase",
    "sponsor": "sponsor",
    "title": "title",
    "other": "other",
    "publication": "publication",
    "new_article": "new article",
}
TYPE_LABELS = {"meeting_abstract": "meeting abstract", "preprint": "preprint", "article": "article"}  # #20


@dataclass
class TimelineQuery:
    """What the form shows (as typed) and what the store is asked (when there are no errors)."""

    watch: str = ""
    kinds: list[str] = field(default_factory=list)
    nct_id: str = ""
    since: str = ""
    until: str = ""
    q: str = ""
    held_back: bool = False  # the "show held back" switch (#15): changes a watch rule kept from the mail
    types: list[str] = field(default_factory=list)  # /articles: meeting_abstract, preprint, article (#20)
    cursor: Cursor | None = None
    errors: dict[str, str] = field(default_factory=dict)

    def filters(self, *, kinds: Sequence[str] = ()) -> ChangeFilter:
        """The store filter; `kinds` narrows further (e.g. the articles page's two kinds)."""
        chosen = tuple(self.kinds)
        if kinds:
            chosen = tuple(k for k in chosen if k in kinds) if chosen else tuple(kinds)
        return ChangeFilter(
            watch=self.watch or None,
            kinds=chosen,
            nct_id=self.nct_id or None,
            since=_day_start(self.since),
            until=_day_start(self.until, days=1),
            words=tuple(self.q.split()[:MAX_WORDS]),
            held_back=self.held_back,
            item_types=tuple(self.types),
        )

    def params(self) -> list[tuple[str, str]]:
        """The filters as query parameters (no cursor), in a stable order."""
        pairs = [("watch", self.watch)] + [("kind", kind) for kind in self.kinds]
        pairs += [("nct_id", self.nct_id), ("since", self.since), ("until", self.until), ("q", self.q)]
        pairs += [("held_back", "1" if self.held_back else "")] + [("type", kind) for kind in self.types]
        return [(key, value) for key, value in pairs if value]

    def link(self, path: str, cursor: Cursor | None = None) -> str:
        pairs = self.params() + ([("cursor", cursor.encode())] if cursor else [])
        return f"{path}?{urlencode(pairs)}" if pairs else path

    @property
    def filtered(self) -> bool:
        return bool(self.params())


def parse_query(
    params: Mapping[str, str], kinds: Sequence[str], *, allowed_kinds: Sequence[str] = (), types: Sequence[str] = ()
) -> TimelineQuery:
    """`params`: single values (watch, nct_id, since, until, q, cursor); `kinds`: every `kind` given;
    `types`: every `type` given (the articles page's item types)."""
    query = TimelineQuery(
        watch=params.get("watch", "").strip(),
        nct_id=params.get("nct_id", "").strip().upper(),
        since=params.get("since", "").strip(),
        until=params.get("until", "").strip(),
        q=" ".join(params.get("q", "").split()),
        held_back=params.get("held_back", "") in ("1", "on", "true"),
    )
    known = allowed_kinds or [str(kind) for kind in ChangeKind]
    query.kinds = list(dict.fromkeys(k.strip() for k in kinds if k.strip()))
    unknown = [k for k in query.kinds if k not in known]
    if unknown:
        query.errors["kind"] = f"unknown kind {unknown[0]!r}: choose among {', '.join(known)}"
    query.types = list(dict.fromkeys(t.strip() for t in types if t.strip()))[: len(ITEM_TYPES) + 1]
    unknown_types = [t for t in query.types if t not in ITEM_TYPES]
    if unknown_types:
        query.errors["type"] = f"unknown type {unknown_types[0][:40]!r}: choose among {', '.join(ITEM_TYPES)}"
    if query.nct_id and not NCT_ID.match(query.nct_id):
        query.errors["nct_id"] = "an NCT id is NCT followed by 8 digits, e.g. NCT05805501"
    for name in ("since", "until"):
        value = getattr(query, name)
        if value and _parse_day(value) is None:
            query.errors[name] = f"{value!r} is not a date: write it as YYYY-MM-DD"
    if query.since and query.until and not query.errors.keys() & {"since", "until"} and query.until < query.since:
        query.errors["until"] = "until is before since"
    if any(len(word) > MAX_WORD for word in query.q.split()) or len(query.q.split()) > MAX_WORDS:
        query.errors["q"] = f"at most {MAX_WORDS} words of at most {MAX_WORD} characters"
    if params.get("cursor"):
        try:
            query.cursor = Cursor.decode(params["cursor"])
        except ValueError as exc:
            query.errors["cursor"] = str(exc)
    return query


def _parse_day(value: str) -> date | None:
    try:
        return day(value, name="day")
    except InputError:
        return None


def _day_start(value: str, days: int = 0) -> datetime | None:
    day = _parse_day(value) if value else None
    return datetime.combine(day + timedelta(days=days), time(), tzinfo=UTC) if day else None


def http_url(value: object) -> str | None:
    """A link from outside, only when it is http(s) (never javascript: or data:)."""
    return value if isinstance(value, str) and re.match(r"^https?://[^\s]+$", value) else None
