"""Pure: what a landscape view asks (filters, sort, the switch for studies that left) from its query
parameters, the rows it keeps in the order it asks, and keyset pages over them.

Every choice is a query parameter, so a view is a bookmark: `status`, `phase`,
`intervention_type` and `country` may repeat (any of them matches), `sponsor` is part of the lead
sponsor's name, `q` words must all occur in the title or the interventions, `left=1` adds the
studies that left the watch, `sort` names a column (`-` before it: descending; studies without a
value come last either way, then by NCT id).

The JSON API pages by keyset: a cursor names the sort value and NCT id of a page's last row, and
the next page is the rows after it in the same order (stable when studies come and go between two
requests).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import total_ordering
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from watcher.watch import REGISTRY_PHASES, REGISTRY_STATUSES

if TYPE_CHECKING:
    from watcher.registry.landscape_row import LandscapeRow

INTERVENTION_TYPES: tuple[str, ...] = (
    "DRUG", "BIOLOGICAL", "DEVICE", "PROCEDURE", "RADIATION", "BEHAVIORAL", "GENETIC", "DIETARY_SUPPLEMENT",
    "COMBINATION_PRODUCT", "DIAGNOSTIC_TEST", "OTHER",
)  # fmt: skip
MAX_VALUES, MAX_TEXT, MAX_WORDS = 20, 100, 10
DEFAULT_SORT = "primary_completion"
MAX_CURSOR = 600
Value = str | int | None


def _day(value: str | None) -> str | None:
    """'2027', '2027-06' or '2027-06-30' as a sortable day ('2027-01-01', '2027-06-01', ...)."""
    if not value or not re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", value):
        return None
    parts = value.split("-") + ["01", "01"]
    return "-".join(parts[:3])


def _text(value: str) -> str | None:
    return value.casefold() if value else None


SORT_KEYS: dict[str, Callable[[LandscapeRow], Value]] = {
    "nct_id": lambda r: r.nct_id,
    "title": lambda r: _text(r.title),
    "status": lambda r: _text(r.status_label),
    "phase": lambda r: _text(r.phase) if r.phases else None,
    "sponsor": lambda r: _text(r.sponsor),
    "interventions": lambda r: _text(r.interventions_text),
    "enrollment": lambda r: r.enrollment_count,
    "start": lambda r: _day(r.start.value),
    "primary_completion": lambda r: _day(r.primary_completion.value),
    "completion": lambda r: _day(r.completion.value),
    "countries": lambda r: _text("; ".join(r.countries)),
    "sites_recruiting": lambda r: r.sites_recruiting,
    "results": lambda r: int(r.results),
    "articles": lambda r: r.articles,
    "last_change": lambda r: r.last_change.detected_at.isoformat() if r.last_change else None,
}


@dataclass(frozen=True)
class LandscapeFilter:
    statuses: tuple[str, ...] = ()
    phases: tuple[str, ...] = ()
    sponsor: str = ""
    intervention_types: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    left: bool = False
    sort: str = DEFAULT_SORT
    descending: bool = False

    def keeps(self, row: LandscapeRow) -> bool:
        if self.statuses and row.status not in self.statuses:
            return False
        if self.phases and not set(row.phases or ("NA",)) & set(self.phases):
            return False
        if self.sponsor and self.sponsor.casefold() not in row.sponsor.casefold():
            return False
        if self.intervention_types and not set(row.intervention_types) & set(self.intervention_types):
            return False
        if self.countries and not {c.casefold() for c in row.countries} & {c.casefold() for c in self.countries}:
            return False
        text = f"{row.title}\n{row.interventions_text}".casefold()
        return all(word.casefold() in text for word in self.words)

    def params(self, *, sort: str | None = None) -> list[tuple[str, str]]:
        """The view as query parameters, in a stable order (the default sort left out)."""
        pairs = [("status", s) for s in self.statuses] + [("phase", p) for p in self.phases]
        pairs += [("sponsor", self.sponsor)] + [("intervention_type", t) for t in self.intervention_types]
        pairs += [("country", c) for c in self.countries] + [("q", " ".join(self.words))]
        pairs += [("left", "1" if self.left else "")]
        chosen = sort if sort is not None else ("-" if self.descending else "") + self.sort
        pairs += [("sort", "" if chosen == DEFAULT_SORT else chosen)]
        return [(key, value) for key, value in pairs if value]

    def link(self, path: str, **extra: str) -> str:
        pairs = self.params(sort=extra.pop("sort", None)) + [(k, v) for k, v in extra.items() if v]
        return f"{path}?{urlencode(pairs)}" if pairs else path

    def sort_link(self, path: str, column: str) -> str:
        """The link a column's heading carries: sort by it, or reverse it when it is the sort."""
        descending = not self.descending if column == self.sort else False
        return self.link(path, sort=("-" if descending else "") + column)

    @property
    def filtered(self) -> bool:
        return any((self.statuses, self.phases, self.sponsor, self.intervention_types, self.countries, self.words))


@dataclass
class ParsedView:
    filters: LandscapeFilter = field(default_factory=LandscapeFilter)
    errors: dict[str, str] = field(default_factory=dict)


def _choices(name: str, given: Sequence[str], known: Sequence[str], errors: dict[str, str]) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(v.strip().upper() for v in given if v.strip()))
    unknown = [v for v in values if v not in known]
    if len(values) > MAX_VALUES:
        errors[name] = f"at most {MAX_VALUES} values of {name}"
    elif unknown:
        errors[name] = f"unknown {name} {unknown[0][:MAX_TEXT]!r}: choose among {', '.join(known)}"
    return values if name not in errors else ()


def parse_view(single: Mapping[str, str], many: Callable[[str], Sequence[str]]) -> ParsedView:
    """`single(name)`: a parameter's one value; `many(name)`: every value a parameter was given."""
    view, errors = ParsedView(), dict[str, str]()
    statuses = _choices("status", many("status"), REGISTRY_STATUSES, errors)
    phases = _choices("phase", many("phase"), REGISTRY_PHASES, errors)
    types = _choices("intervention_type", many("intervention_type"), INTERVENTION_TYPES, errors)
    countries = tuple(dict.fromkeys(" ".join(c.split()) for c in many("country") if c.strip()))
    if len(countries) > MAX_VALUES or any(len(c) > MAX_TEXT for c in countries):
        errors["country"], countries = f"at most {MAX_VALUES} countries of at most {MAX_TEXT} characters", ()
    sponsor = " ".join(single.get("sponsor", "").split())
    if len(sponsor) > MAX_TEXT:
        errors["sponsor"], sponsor = f"at most {MAX_TEXT} characters", ""
    words = tuple(single.get("q", "").split())
    if len(words) > MAX_WORDS or any(len(w) > MAX_TEXT for w in words):
        errors["q"], words = f"at most {MAX_WORDS} words of at most {MAX_TEXT} characters", ()
    sort = single.get("sort", "").strip() or DEFAULT_SORT
    descending, column = sort.startswith("-"), sort.removeprefix("-")
    if column not in SORT_KEYS:
        columns = ", ".join(SORT_KEYS)
        errors["sort"] = f"sort {sort[:MAX_TEXT]!r}: choose a column among {columns} (- before it: descending)"
        descending, column = False, DEFAULT_SORT
    left = single.get("left", "") in ("1", "on", "true")
    view.filters = LandscapeFilter(statuses=statuses, phases=phases, sponsor=sponsor, intervention_types=types,
                                   countries=countries, words=words, left=left, sort=column,
                                   descending=descending)  # fmt: skip
    view.errors = errors
    return view


@total_ordering
class _Descending:
    """Reverses the order of the value it wraps (a descending sort keeps ties by NCT id ascending)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.value == other.value

    def __lt__(self, other: _Descending) -> bool:
        return bool(other.value < self.value)

    def __hash__(self) -> int:
        return hash(self.value)


def _order(value: Value, nct_id: str, descending: bool) -> tuple[Any, ...]:
    """Studies with a value first (in the asked direction), then those without; ties by NCT id."""
    if value is None:
        return (1, nct_id)
    return (0, _Descending(value) if descending else value, nct_id)


def order_key(row: LandscapeRow, filters: LandscapeFilter) -> tuple[Any, ...]:
    return _order(SORT_KEYS[filters.sort](row), row.nct_id, filters.descending)


def select_rows(rows: Sequence[LandscapeRow], filters: LandscapeFilter) -> list[LandscapeRow]:
    """The rows `filters` keeps, in its order."""
    return sorted((row for row in rows if filters.keeps(row)), key=lambda row: order_key(row, filters))


def encode_cursor(row: LandscapeRow, filters: LandscapeFilter) -> str:
    text = json.dumps([filters.sort, filters.descending, SORT_KEYS[filters.sort](row), row.nct_id])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(token: str, filters: LandscapeFilter) -> tuple[Any, ...]:
    """The position a cursor names, in the order of `filters`; ValueError (one line) otherwise."""
    problem = f"cursor {token[:40]!r} is not one this server handed out for this sort"
    try:
        if len(token) > MAX_CURSOR:
            raise ValueError(problem)
        sort, descending, value, nct_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(problem) from exc
    fits = value is None or (isinstance(value, str | int) and not isinstance(value, bool))
    if sort != filters.sort or descending != filters.descending or not fits or not isinstance(nct_id, str):
        raise ValueError(problem)
    return _order(value, nct_id, filters.descending)


def page_after(rows: Sequence[LandscapeRow], filters: LandscapeFilter, after: tuple[Any, ...] | None,
               limit: int) -> tuple[list[LandscapeRow], str | None]:  # fmt: skip
    """The `limit` rows after the position `after` (None: from the first) and the next page's cursor."""
    start = 0
    if after is not None:
        start = bisect_right([order_key(row, filters) for row in rows], after)
    page = list(rows[start : start + limit])
    more = start + limit < len(rows)
    return page, encode_cursor(page[-1], filters) if more and page else None
