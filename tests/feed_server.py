"""A real HTTP server on loopback that serves journal feeds like publishers do (pytest-httpserver):
validators or none, 304 on a matching conditional GET, and on demand redirects, 410, 429, 403,
a cut-off document or a broken connection. It records every request with its headers."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

RSS = "application/rss+xml"


@dataclass(frozen=True)
class Published:
    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    content_type: str = RSS
    chunked: bool = False


@dataclass(frozen=True)
class FeedFault:
    """One misbehaviour, consumed by the next request to any path."""

    kind: str  # status | truncated_document | cut_connection
    code: int = 200
    retry_after: str | None = None

    @classmethod
    def status(cls, code: int, retry_after: str | None = None) -> FeedFault:
        return cls("status", code=code, retry_after=retry_after)

    @classmethod
    def truncated_document(cls) -> FeedFault:
        """The first half of the feed as a complete HTTP answer (Content-Length of the half)."""
        return cls("truncated_document")

    @classmethod
    def cut_connection(cls) -> FeedFault:
        """Content-Length of the whole feed, half of it sent, then the connection breaks."""
        return cls("cut_connection")


@dataclass(frozen=True)
class SeenRequest:
    path: str
    headers: dict[str, str]


class FeedServer:
    """Publish bodies at paths; `redirect` a path for good (301/308) or for now (302/307)."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.feeds: dict[str, Published] = {}
        self.redirects: dict[str, tuple[int, str]] = {}
        self.requests: list[SeenRequest] = []
        self._faults: list[FeedFault] = []
        self._lock = threading.Lock()
        server.expect_request(re.compile(r".*")).respond_with_handler(self._handle)

    def url(self, path: str) -> str:
        return self.server.url_for(path)

    def publish(
        self,
        path: str,
        body: bytes,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        content_type: str = RSS,
        chunked: bool = False,
    ) -> str:
        """Serve `body` at `path` (replacing what was there), with these validators; `chunked` sends
        it without Content-Length. Returns the full URL."""
        with self._lock:
            self.feeds[path] = Published(body, etag, last_modified, content_type, chunked)
        return self.url(path)

    def redirect(self, path: str, to_path: str, code: int = 301) -> None:
        with self._lock:
            self.redirects[path] = (code, to_path)

    def fail_next(self, *faults: FeedFault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def headers_of(self, index: int = -1) -> dict[str, str]:
        """The headers of one recorded request (the last by default), names lower-cased."""
        return self.requests[index].headers

    # --- handling ---------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(SeenRequest(request.path, {k.lower(): v for k, v in request.headers.items()}))
            fault = self._faults.pop(0) if self._faults else None
            redirect = self.redirects.get(request.path)
            feed = self.feeds.get(request.path)
        if fault is not None and fault.kind == "status":
            return _status(fault)
        if redirect is not None:
            return Response("", status=redirect[0], headers={"Location": self.url(redirect[1])})
        if feed is None:
            return Response("<html><body>Not Found</body></html>", status=404, content_type="text/html")
        if fault is not None and fault.kind == "truncated_document":
            return _answer(feed, feed.body[: len(feed.body) // 2])
        if fault is not None and fault.kind == "cut_connection":
            return _cut_connection(feed)
        if _not_modified(request, feed):
            headers = {k: v for k, v in (("ETag", feed.etag), ("Last-Modified", feed.last_modified)) if v}
            return Response(status=304, headers=headers)
        return _answer(feed, feed.body)


def _not_modified(request: Request, feed: Published) -> bool:
    """RFC 9110: If-None-Match wins over If-Modified-Since; compared as sent (weak tags allowed)."""
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        sent = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return feed.etag is not None and (feed.etag.removeprefix("W/") in sent or "*" in sent)
    if_modified_since = request.headers.get("If-Modified-Since")
    return if_modified_since is not None and feed.last_modified is not None and if_modified_since == feed.last_modified


def _answer(feed: Published, body: bytes) -> Response:
    if feed.chunked:
        pieces = [body[start : start + 8192] for start in range(0, len(body), 8192)]
        response = Response(iter(pieces), status=200, content_type=feed.content_type, direct_passthrough=True)
    else:
        response = Response(body, status=200, content_type=feed.content_type)
    if feed.etag:
        response.headers["ETag"] = feed.etag
    if feed.last_modified:
        response.headers["Last-Modified"] = feed.last_modified
    return response


def _status(fault: FeedFault) -> Response:
    headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
    texts = {403: "Forbidden", 410: "Gone", 429: "Too Many Requests", 503: "Service Unavailable"}
    return Response(texts.get(fault.code, "error"), status=fault.code, headers=headers, content_type="text/plain")


def _cut_connection(feed: Published) -> Response:
    body = feed.body

    def half_then_break() -> Any:
        yield body[: len(body) // 2]
        raise ConnectionAbortedError("test fault: connection cut mid-body")

    response = Response(half_then_break(), status=200, content_type=feed.content_type, direct_passthrough=True)
    response.headers["Content-Length"] = str(len(body))
    return response
