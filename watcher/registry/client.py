"""ClinicalTrials.gov API v2: build a watch's queries, fetch every page. No database here.

A watch becomes at most two kinds of request:
- a keyword search: `query.cond` = any of the conditions, `query.term` = any of the terms and
  none of the excluded words (Essie syntax: quoted phrases, OR, AND NOT);
- an id lookup: `filter.ids` with the watch's `nct_ids`, in batches.
A watch's join rules narrow the keyword search where the registry can filter (*scoped*):
`statuses` -> `filter.overallStatus`, `phases` -> `filter.advanced` AREA[Phase], `near` ->
`filter.geo` (miles); countries, states and cities are checked locally (watcher.rules). Only a
baseline sends the scoped search: later polls must still see a held study that left the scope,
to report the change that took it out.
Pages are followed by their opaque `nextPageToken` until a page comes without one, or empty.
A page in the registry's usual layout (`{"studies":[{…}, …],"nextPageToken":"…"}`) yields its
token from its last bytes, so the next request goes out before the page is parsed, and the page
is parsed by whoever reads it first (the poll's main thread, while the fetching thread waits on
the network, not on the interpreter); any other page is parsed at once, as before.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any
from urllib.parse import urlencode

from watcher.config import ClinicalTrialsConfig, WatchConfig
from watcher.errors import SourceError
from watcher.http import HttpClient, Pacer, interruptible_sleep, make_session
from watcher.http_deadline import DEFAULT_REQUEST_DEADLINE
from watcher.jsontext import parse_json
from watcher.rules import registry_geo_filter

IDS_PER_REQUEST = 100


class Page:
    """One page of a search: its studies, the total the registry counted (first page only) and
    the query. A page made by `Page.later` is parsed when first read (see the module docstring)."""

    __slots__ = ("_later", "_studies", "_total", "query")

    def __init__(self, studies: list[dict[str, Any]], total: int | None, query: dict[str, str]) -> None:
        self._studies, self._total, self.query = studies, total, query
        self._later: tuple[bytes | bytearray, str, str, Callable[[], Any]] | None = None

    @classmethod
    def later(
        cls, raw: bytes | bytearray, url: str, query: dict[str, str], token: str, again: Callable[[], Any]
    ) -> Page:
        """A page whose body is parsed when read; `again`: the page fetched and parsed anew (a
        body that does not parse)."""
        page = cls([], None, query)
        page._later = (raw, url, token, again)
        return page

    @property
    def studies(self) -> list[dict[str, Any]]:
        self._parse()
        return self._studies

    @property
    def total(self) -> int | None:
        self._parse()
        return self._total

    def _parse(self) -> None:
        if self._later is None:
            return
        raw, url, token, again = self._later
        self._later = None
        body = _parsed_or_again(raw, again)
        if not isinstance(body, dict) or body.get("nextPageToken") != token:
            raise SourceError(f"GET {url}: the page, read again, leads elsewhere than before; poll again")
        parsed = _parse_page(body, url, self.query)
        self._studies, self._total = parsed.studies, parsed.total


# The registry's usual page: `{"studies":[{` (`"totalCount":N,` first when counted) … and
# `],"nextPageToken":"…"}` at the very end, which makes the token a member of the page itself.
_USUAL_HEAD = re.compile(rb'\s*\{\s*(?:"totalCount"\s*:\s*\d+\s*,\s*)?"studies"\s*:\s*\[\s*\{')
_USUAL_TAIL = re.compile(rb'\]\s*,\s*"nextPageToken"\s*:\s*"([!#-\[\]-~]+)"\s*\}\s*\Z')


def next_token_unparsed(raw: bytes | bytearray) -> str | None:
    """The next page's token of a page in the usual layout (studies in it), read off its bytes;
    None for any other page (parsed to know)."""
    if not _USUAL_HEAD.match(raw):
        return None
    found = _USUAL_TAIL.search(raw, max(0, len(raw) - 2048))
    return found.group(1).decode("ascii") if found else None


def _parsed_or_again(raw: bytes | bytearray, again: Callable[[], Any]) -> Any:
    """The body parsed; one that does not parse is fetched again (retried as any request is)."""
    try:
        return parse_json(raw)
    except ValueError:
        return again()


def essie_any(words: list[str]) -> str:
    """'("renal cell carcinoma" OR "kidney cancer")' — each word or phrase quoted."""
    quoted = [f'"{word.replace(chr(34), " ").strip()}"' for word in words]
    return quoted[0] if len(quoted) == 1 else "(" + " OR ".join(quoted) + ")"


def watch_queries(watch: WatchConfig, page_size: int = 1000, *, scoped: bool = True) -> list[dict[str, str]]:
    """The request parameters (without page tokens) that together cover one watch; `scoped`:
    with the watch's statuses, phases and `near` as registry filters."""
    queries: list[dict[str, str]] = []
    if watch.conditions or watch.terms:
        params: dict[str, str] = scope_filters(watch) if scoped else {}
        if watch.conditions:
            params["query.cond"] = essie_any(watch.conditions)
        term = essie_any(watch.terms) if watch.terms else ""
        if watch.exclude:
            term = f"{term} AND NOT {essie_any(watch.exclude)}" if term else f"NOT {essie_any(watch.exclude)}"
        if term:
            params["query.term"] = term
        queries.append(params)
    for start in range(0, len(watch.nct_ids), IDS_PER_REQUEST):
        batch = watch.nct_ids[start : start + IDS_PER_REQUEST]
        queries.append({"filter.ids": ",".join(batch)})
    for params in queries:
        params["pageSize"] = str(page_size)
        params["format"] = "json"
    return queries


def scope_filters(watch: WatchConfig) -> dict[str, str]:
    """The registry filters for a watch's statuses, phases and `near` (none when it sets none)."""
    filters: dict[str, str] = {}
    if watch.statuses:
        filters["filter.overallStatus"] = ",".join(watch.statuses)
    if watch.phases:
        phases = " OR ".join(watch.phases)
        filters["filter.advanced"] = f"AREA[Phase]({phases})" if len(watch.phases) > 1 else f"AREA[Phase]{phases}"
    geo = registry_geo_filter(watch)
    if geo:
        filters["filter.geo"] = geo
    return filters


def with_advanced(params: dict[str, str], condition: str) -> dict[str, str]:
    """`params` with `condition` ANDed to its filter.advanced."""
    present = params.get("filter.advanced")
    return {**params, "filter.advanced": f"{present} AND {condition}" if present else condition}


def updated_since(day: date) -> str:
    """Essie filter for studies whose LastUpdatePostDate is on or after `day` (MAX written out:
    an open range without it is silently ignored by the registry)."""
    return f"AREA[LastUpdatePostDate]RANGE[{day.isoformat()},MAX]"


def query_signature(watch: WatchConfig) -> str:
    """Changes when the watch's query or its join rules change (its next poll is then a new
    baseline); not when only its alert rules change. Unchanged for a watch without join rules."""
    signed: Any = watch_queries(watch)
    places = {"countries": watch.countries, "states": watch.states, "cities": watch.cities}
    if any(places.values()):  # checked locally, not in the query, but they decide what the watch holds
        signed = {"queries": signed, "places": places}
    encoded = json.dumps(signed, sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


class CtgovClient:
    """Talks to ClinicalTrials.gov API v2 (or a server that answers like it)."""

    def __init__(
        self,
        config: ClinicalTrialsConfig,
        http: HttpClient | None = None,
        stopping: threading.Event | None = None,
        request_deadline: float = DEFAULT_REQUEST_DEADLINE,
    ) -> None:
        self.base_url = config.base_url
        self.page_size = config.page_size
        sleep = interruptible_sleep(stopping) if stopping is not None else time.sleep
        self.http = http or HttpClient(
            session=make_session(config.user_agent, request_deadline),
            timeout=config.timeout,
            pacer=Pacer(config.requests_per_second, sleep=sleep),
            attempts=config.max_attempts,
            backoff=config.backoff_seconds,
            sleep=sleep,
        )

    @property
    def requests_made(self) -> int:
        return self.http.requests_made

    def data_timestamp(self) -> str | None:
        """When the registry's data was last refreshed (GET /version)."""
        body = self.http.get_json(f"{self.base_url}/version")
        return body.get("dataTimestamp") if isinstance(body, dict) else None

    def watch_pages(self, watch: WatchConfig, since: date | None = None, *, scoped: bool = False) -> Iterator[Page]:
        """Every page of every query of a watch; with `since`, only studies updated on or after
        it; `scoped`: narrowed by the watch's registry filters (a baseline)."""
        for params in watch_queries(watch, self.page_size, scoped=scoped):
            if since is not None:
                params = with_advanced(params, updated_since(since))
            yield from self.search_pages(params)

    def preview(self, watch: WatchConfig, limit: int = 20) -> list[tuple[str, Page]]:
        """The first `limit` studies of each of a watch's (scoped) queries, with the exact URL sent."""
        previews = []
        for params in watch_queries(watch, limit):
            request = {**params, "countTotal": "true"}
            url = f"{self.base_url}/studies"
            page = _parse_page(self.http.get_json(url, request), url, params)
            previews.append((f"{url}?{urlencode(request)}", page))
        return previews

    def search_pages(self, params: dict[str, str]) -> Iterator[Page]:
        """Follow nextPageToken from the first page to the last; each page is checked."""
        url = f"{self.base_url}/studies"
        token: str | None = None
        seen_tokens: set[str] = set()
        first = True
        while True:
            request = dict(params)
            if first:
                request["countTotal"] = "true"
            if token:
                request["pageToken"] = token
            raw = self.http.get_body(url, request)
            again = lambda request=request: self.http.get_json(url, request)  # noqa: E731
            token = next_token_unparsed(raw)
            if token is not None:  # studies in it and a page after it: parsed by its reader
                yield Page.later(raw, url, params, token, again)
            else:
                body = _parsed_or_again(raw, again)
                page = _parse_page(body, url, params)
                if page.studies or first:
                    yield page
                token = body.get("nextPageToken")
                if not token or not page.studies:
                    return
            if token in seen_tokens:
                raise SourceError(f"GET {url}: the server repeated page token {token[:20]}…")
            seen_tokens.add(token)
            first = False


def _parse_page(body: Any, url: str, params: dict[str, str]) -> Page:
    if not isinstance(body, dict) or not isinstance(body.get("studies"), list):
        raise SourceError(f"GET {url}: response has no 'studies' list")
    for index, record in enumerate(body["studies"]):
        nct = ((record.get("protocolSection") or {}).get("identificationModule") or {}).get("nctId")
        if not nct:
            raise SourceError(f"GET {url}: study #{index + 1} of the page has no nctId")
    total = body.get("totalCount")
    return Page(studies=body["studies"], total=total if isinstance(total, int) else None, query=params)
