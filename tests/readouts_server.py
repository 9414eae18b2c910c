"""A real HTTP server on loopback (pytest-httpserver) that answers like Crossref's REST API
(`/journals/{issn}/works`, cursor-paged, with its rate-limit headers) and Europe PMC's search
(`/search`, cursorMark-paged, core JSON). Works are real records' structure (../shared/fixtures)
or our own tests/data ones, each with the created / first-index date a test gives it.

Europe PMC's query language is not evaluated: a `SRC:PPR` query returns the held records whose
`by_words` text is part of it (e.g. '"CAR-T"'), a query with `ACCESSION_ID:` ids the records
whose text-mined `mentions` include one;
both within the `FIRST_IDATE` window. Tests assert the query strings themselves.
On demand (consumed by the next request to that API): an HTTP status with Retry-After, a body cut
off mid-JSON, an `errCode` inside a 200, the same page again. Every request is recorded."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

RATE_HEADERS = {"x-rate-limit-limit": "5", "x-rate-limit-interval": "1s", "x-concurrency-limit": "1",
                "x-api-pool": "polite"}  # fmt: skip
ERR_MSG = "Invalid page size provided. Valid size is between 1 and 1000"
SAME_CURSOR = "DnF1ZXJ5VGhlbkZldGNoBQAAAAAA"  # Crossref may return one cursor string page after page


@dataclass(frozen=True)
class Fault:
    api: str  # crossref | europepmc
    kind: str  # status | cut_json | err_code | repeat_page
    code: int = 200
    retry_after: str | None = None


@dataclass
class Seen:
    api: str
    path: str
    params: dict[str, str]


@dataclass
class ReadoutsServer:
    server: HTTPServer
    works: dict[str, list[tuple[date, dict[str, Any]]]] = field(default_factory=dict)  # ISSN -> works
    records: list[tuple[date, dict[str, Any], str, frozenset[str]]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=lambda: dict(RATE_HEADERS))
    _cursors: dict[str, int] = field(default_factory=dict)
    _last_page: dict[str, Response] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.server.expect_request(re.compile(r"^/crossref/journals/[^/]+/works$")).respond_with_handler(self._crossref)
        self.server.expect_request("/europepmc/search").respond_with_handler(self._europepmc)

    @property
    def crossref_url(self) -> str:
        return self.server.url_for("/crossref").rstrip("/")

    @property
    def europepmc_url(self) -> str:
        return self.server.url_for("/europepmc").rstrip("/")

    def add_work(self, issn: str, created: date, work: dict[str, Any]) -> None:
        self.works.setdefault(issn, []).append((created, copy.deepcopy(work)))

    def add_record(self, indexed: date, record: dict[str, Any], *, by_words: str = "",
                   mentions: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.records.append((indexed, copy.deepcopy(record), by_words, frozenset(mentions)))

    def fail_next(self, *faults: Fault) -> None:
        self.faults += faults

    def of(self, api: str) -> list[Seen]:
        return [seen for seen in self.requests if seen.api == api]

    def _fault(self, api: str) -> Fault | None:
        for fault in self.faults:
            if fault.api == api:
                self.faults.remove(fault)
                return fault
        return None

    def _respond(self, api: str, body: dict[str, Any], key: str) -> Response:
        fault = self._fault(api)
        text = json.dumps(body)
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return Response("busy", status=fault.code, headers=headers | self.headers)
        if fault is not None and fault.kind == "cut_json":
            return Response(text[: len(text) // 2], content_type="application/json", headers=self.headers)
        if fault is not None and fault.kind == "err_code":
            text = json.dumps(
                {"errCode": 404, "errMsg": "Invalid page size provided. Valid size is between 1 and 1000"}
            )
        if fault is not None and fault.kind == "repeat_page" and key in self._last_page:
            return self._last_page[key]
        response = Response(text, content_type="application/json", headers=self.headers)
        self._last_page[key] = Response(text, content_type="application/json", headers=self.headers)
        return response

    def _crossref(self, request: Request) -> Response:
        params = dict(request.args)
        self.requests.append(Seen("crossref", request.path, params))
        issn = request.path.split("/")[-2]
        span = dict(part.split(":", 1) for part in params.get("filter", "").split(","))
        low, high = date.fromisoformat(span["from-created-date"]), date.fromisoformat(span["until-created-date"])
        chosen = [work for created, work in self.works.get(issn, []) if low <= created <= high]
        rows, cursor = int(params.get("rows", "20")), params.get("cursor", "*")
        offset = 0 if cursor == "*" else self._cursors.get(issn, 0)
        page = chosen[offset : offset + rows]
        self._cursors[issn] = offset + len(page)
        message = {"total-results": len(chosen), "items": page, "items-per-page": rows, "next-cursor": SAME_CURSOR}
        return self._respond("crossref", {"status": "ok", "message-type": "work-list", "message": message}, issn)

    def _europepmc(self, request: Request) -> Response:
        params = dict(request.args)
        self.requests.append(Seen("europepmc", request.path, params))
        query = params.get("query", "")
        span = re.search(r"FIRST_IDATE:\[(\S+) TO (\S+)\]", query)
        low, high = (
            (date.fromisoformat(span.group(1)), date.fromisoformat(span.group(2))) if span else (date.min, date.max)
        )
        ids = set(re.findall(r"ACCESSION_ID:(NCT\d{8})", query))
        chosen = [
            record for indexed, record, by_words, mentions in self.records
            if low <= indexed <= high
            and ((ids and mentions & ids) or (not ids and "SRC:PPR" in query and by_words and by_words in query))
        ]  # fmt: skip
        size, cursor = int(params.get("pageSize", "25")), params.get("cursorMark", "*")
        offset = 0 if cursor == "*" else int(cursor.removeprefix("AoI"))
        page = chosen[offset : offset + size]
        body: dict[str, Any] = {"version": "6.9", "hitCount": len(chosen), "request": {"queryString": query}}
        if offset + size < len(chosen):
            body["nextCursorMark"] = f"AoI{offset + size}"
        body["resultList"] = {"result": page}
        return self._respond("europepmc", body, query)
