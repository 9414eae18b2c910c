"""`trialwatch preview`, the registry part: what a watch would match right now, and why; stores
nothing. The watch's own queries with pageSize 20 and countTotal, so the user sees the total, the
first twenty studies with status and phase, and the exact request. (The feeds part is
watcher.literature.preview.) A watch with join rules (statuses, phases, geography) is previewed
over every page of its scoped query, each study checked as a poll checks it, so the count shown is
what the watch will hold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from watcher.config import WatchConfig
from watcher.matching import why_study_matches
from watcher.model import Study
from watcher.registry.client import CtgovClient, watch_queries
from watcher.rules import has_join_rules, join_rule

SHOWN = 20


def registry_lines(client: CtgovClient, watch: WatchConfig) -> Iterator[str]:
    if has_join_rules(watch):
        yield from _ruled_lines(client, watch)
        return
    for url, page in client.preview(watch, limit=SHOWN):
        total = page.total if page.total is not None else len(page.studies)
        yield f"{total} studies match: GET {url}"
        yield from _study_lines(page.studies, watch)
        if total > len(page.studies):
            yield f"  … and {total - len(page.studies)} more"


def _study_lines(records: list[dict[str, Any]], watch: WatchConfig) -> Iterator[str]:
    for record in records:
        study = Study.from_record(record)
        yield f"  {study.nct_id}  {study.status_label} · {study.phase_label} · {study.title}"
        why = why_study_matches(record, study.nct_id, watch)
        if why:
            yield f"      matched {why}"


@dataclass(frozen=True)
class RuledQuery:
    """One scoped query walked to its last page: the studies the watch would hold (every id, the
    first `shown` records) and how many each join rule left out."""

    url: str
    held_ids: list[str]
    shown: list[dict[str, Any]]
    left_out: Counter[str]
    complete: bool = True  # False: stopped at `max_pages`, the count is a floor

    @property
    def count(self) -> int:
        return len(self.held_ids)


def ruled_queries(
    client: CtgovClient, watch: WatchConfig, shown: int = SHOWN, max_pages: int | None = None
) -> Iterator[RuledQuery]:
    """Every page of each scoped query (at most `max_pages` each), each study kept or left out as
    a poll would (the CLI's `preview` and the web form's Preview both use it)."""
    for params in watch_queries(watch, client.page_size):
        held_ids: list[str] = []
        held: list[dict[str, Any]] = []
        left_out = Counter[str]()
        complete, total = True, 0
        for number, page in enumerate(client.search_pages(params), start=1):
            total = page.total if number == 1 and page.total is not None else total
            for record in page.studies:
                study = Study.from_record(record)
                rule = join_rule(watch, study)
                if rule is not None:
                    left_out[rule] += 1
                    continue
                held_ids.append(study.nct_id)
                if len(held) < shown:
                    held.append(record)
            if max_pages is not None and number >= max_pages:  # the next page is not asked for
                complete = len(held_ids) + sum(left_out.values()) >= total
                break
        yield RuledQuery(f"{client.base_url}/studies?{urlencode(params)}", held_ids, held, left_out, complete)


def _ruled_lines(client: CtgovClient, watch: WatchConfig) -> Iterator[str]:
    for query in ruled_queries(client, watch):
        count, left_out, held = query.count, query.left_out, query.shown
        yield f"{count} studies match: GET {query.url}"
        if left_out:
            reasons = ", ".join(f"{n} by {rule}" for rule, n in sorted(left_out.items()))
            yield f"  ({count + sum(left_out.values())} returned by the registry; left out: {reasons})"
        yield from _study_lines(held, watch)
        if count > len(held):
            yield f"  … and {count - len(held)} more"
