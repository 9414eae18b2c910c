"""Journal feeds: fetch one feed (conditional GET, size cap, redirects) and normalise its items.

No database and no email here. One poll reads top to bottom:
request with the stored ETag / Last-Modified and a timeout -> status checks (304 not modified,
410 gone, 403 blocked, 429/5xx retry later; redirects followed by hand so a permanent move is
known) -> body read under a size cap -> same body hash as last time? not modified -> feedparser
-> `classify_bozo` (a captcha page, a non-feed or a truncated feed fails the poll, so nothing
stored changes) -> `FeedItem`s keyed by `item_key`.

The identity of each item is decided in `feed_items.item_key`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urljoin

import feedparser
import requests

from watcher.errors import SourceError
from watcher.http import RetryableError, connection_reason, parse_retry_after
from watcher.http_deadline import deadline_error
from watcher.literature.items import FeedItem, make_item
from watcher.matching import strip_html

MAX_FEED_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 5
FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, */*;q=0.5"
PERMANENT_REDIRECTS = frozenset({301, 308})
TEMPORARY_REDIRECTS = frozenset({302, 303, 307})
RETRY_LATER = frozenset({429, 500, 502, 503, 504})
_BLOCKED_MARKERS = ("captcha", "not a robot", "unusual traffic", "access denied", "verify you are human")
FetchStatus = Literal["ok", "not_modified", "gone"]
BozoVerdict = Literal["harmless", "blocked", "not_a_feed", "truncated"]


class FeedRetryLater(RetryableError):
    """The feed answered 429 or 5xx, timed out or broke off: poll again later (`retry_after`
    seconds when the server said so)."""

    hint = "the server is busy or unreachable; the next poll tries again"


@dataclass
class FeedState:
    """What the last successful poll of a feed left behind (all None on the first poll)."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None


@dataclass
class FetchResult:
    """One poll's outcome. `final_url` is set only after a permanent redirect (301/308)."""

    status: FetchStatus
    items: list[FeedItem] = field(default_factory=list)
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    final_url: str | None = None
    ttl_minutes: int | None = None
    title: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class ParsedFeed:
    items: list[FeedItem]
    title: str | None
    ttl_minutes: int | None


# --- fetching -------------------------------------------------------------------------------


def fetch_feed(
    *,
    session: requests.Session,
    state: FeedState,
    timeout: float,
    max_bytes: int = MAX_FEED_BYTES,
    now: datetime,
) -> FetchResult:
    """Poll one feed. Raises SourceError (FeedRetryLater for 429/5xx/timeouts) when the poll fails;
    a failed poll must change nothing stored."""
    response, url, final_url = _get_following_redirects(session=session, state=state, timeout=timeout)
    with response:
        headers = response.headers
        unchanged = FetchResult(
            status="not_modified",
            etag=headers.get("ETag") or state.etag,
            last_modified=headers.get("Last-Modified") or state.last_modified,
            body_hash=state.body_hash,
            final_url=final_url,
            retry_after=parse_retry_after(headers.get("Retry-After"), now),
        )
        if response.status_code == 304:
            return unchanged
        if response.status_code == 410:
            return FetchResult(status="gone", final_url=final_url, retry_after=unchanged.retry_after)
        _check_status(response, url=url, now=now)
        body = _read_capped(response, url=url, max_bytes=max_bytes)
    body_hash = hashlib.sha256(body).hexdigest()
    if body_hash == state.body_hash:
        return unchanged
    parsed = parse_feed(body=body, url=url, content_type=headers.get("Content-Type", ""))
    return replace(
        unchanged,
        status="ok",
        items=parsed.items,
        body_hash=body_hash,
        ttl_minutes=parsed.ttl_minutes,
        title=parsed.title,
    )


def _get_following_redirects(
    *, session: requests.Session, state: FeedState, timeout: float
) -> tuple[requests.Response, str, str | None]:
    """The first non-redirect response, the URL it came from, and the URL the feed has moved to
    for good (after the leading run of 301/308 hops; None when the first hop is not permanent)."""
    headers = {"Accept": FEED_ACCEPT}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    url, moved_to, permanent = state.url, None, True
    for _ in range(MAX_REDIRECTS + 1):
        response = _get(session, url, headers=headers, timeout=timeout)
        location = response.headers.get("Location")
        code = response.status_code
        if code not in PERMANENT_REDIRECTS | TEMPORARY_REDIRECTS or not location:
            return response, url, moved_to
        response.close()
        url = urljoin(url, location)
        permanent = permanent and code in PERMANENT_REDIRECTS
        moved_to = url if permanent else moved_to
    raise SourceError(f"GET {state.url}: more than {MAX_REDIRECTS} redirects (last to {url})")


def _get(session: requests.Session, url: str, *, headers: Mapping[str, str], timeout: float) -> requests.Response:
    try:
        return session.get(url, headers=dict(headers), timeout=timeout, stream=True, allow_redirects=False)
    except requests.RequestException as exc:
        raise _request_error(exc, url, timeout) from exc


def _request_error(exc: requests.RequestException, url: str, timeout: float) -> SourceError:
    """A request error as ours: the total deadline passed (not retried soon), a timeout or no
    connection (retried later), anything else."""
    late = deadline_error(f"GET {url}")
    if late is not None:
        return late
    if isinstance(exc, requests.Timeout):
        return FeedRetryLater(f"GET {url}: timed out after {timeout:g}s")
    if isinstance(exc, requests.ConnectionError):
        return FeedRetryLater(f"GET {url}: cannot connect: {connection_reason(exc)}")
    return SourceError(f"GET {url}: request failed: {exc}")


def _check_status(response: requests.Response, *, url: str, now: datetime) -> None:
    code, reason = response.status_code, response.reason or ""
    if code in RETRY_LATER:
        error = FeedRetryLater(f"GET {url}: HTTP {code} {reason}".rstrip())
        error.retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        raise error
    if code == 403:
        raise SourceError(
            f"GET {url}: blocked by the publisher (HTTP 403 {reason})".rstrip(),
            hint="polling backs off; check the feed URL in a browser, and keep an honest User-Agent",
        )
    if code != 200:
        raise SourceError(f"GET {url}: HTTP {code} {reason}".rstrip())


def _read_capped(response: requests.Response, *, url: str, max_bytes: int) -> bytes:
    too_big = SourceError(f"GET {url}: feed larger than {_size(max_bytes)}, not read")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(chunk_size=65536):
            size += len(chunk)
            if size > max_bytes:
                raise too_big
            chunks.append(chunk)
    except requests.RequestException as exc:
        late = deadline_error(f"GET {url}")
        if late is not None:
            raise late from exc
        raise _body_error(exc, url, size) from exc
    return b"".join(chunks)


def _body_error(exc: requests.RequestException, url: str, size: int) -> SourceError:
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.ConnectionError):
        return FeedRetryLater(f"GET {url}: response truncated after {size} bytes")
    if isinstance(exc, requests.Timeout):
        return FeedRetryLater(f"GET {url}: timed out reading the body")
    return SourceError(f"GET {url}: request failed: {exc}")


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):g} MB"
    return f"{n / 1024:g} KB" if n >= 1024 else f"{n} bytes"


# --- parsing --------------------------------------------------------------------------------


def parse_feed(*, body: bytes, url: str, content_type: str = "") -> ParsedFeed:
    """Parse a feed body; SourceError (one line naming the URL) when it is blocked, not a feed, or
    truncated. Items with the same key keep the first."""
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    parsed = feedparser.parse(body, response_headers=headers)
    verdict = classify_bozo(parsed, body)
    if verdict is not None and verdict != "harmless":
        message, hint = _VERDICTS[verdict]
        raise SourceError(f"{url}: {message}", hint=hint)
    items: dict[str, FeedItem] = {}
    for entry in parsed.entries:
        item = make_item(entry, feed_url=url)
        items.setdefault(item.key, item)
    title = strip_html(parsed.feed.get("title") or "") or None
    ttl = str(parsed.feed.get("ttl") or "").strip()
    return ParsedFeed(items=list(items.values()), title=title, ttl_minutes=int(ttl) if ttl.isdigit() else None)


_VERDICTS = {  # what a failed parse means, and what the user can do about it
    "blocked": ("blocked: the publisher sent an HTML page (captcha?) instead of the feed", "never pose as a browser"),
    "not_a_feed": ("not a feed", "check the feed URL"),
    "truncated": ("feed truncated (the document ends early); nothing stored changes", ""),
}


def classify_bozo(parsed: Any, body: bytes) -> BozoVerdict | None:
    """None (well-formed feed), 'harmless' (an encoding or content-type remark, or a complete
    document whose XML errors feedparser's loose parser got past), 'blocked' (an HTML captcha /
    access-denied page), 'not_a_feed' (other HTML, or nothing feed-like parsed) or 'truncated'
    (entries parsed but the document stops before its closing root tag)."""
    entries = len(parsed.get("entries") or [])
    root = _root_element(body)
    if root == "html":
        text = body[:65536].decode("utf-8", "replace").lower()
        return "blocked" if any(marker in text for marker in _BLOCKED_MARKERS) else "not_a_feed"
    if not parsed.get("version") and not entries:
        return "not_a_feed"
    if not parsed.get("bozo"):
        return None
    if root and not _closes(body, root):
        return "truncated"
    return "harmless" if entries or parsed.get("version") else "not_a_feed"


def _root_element(body: bytes) -> str | None:
    """The name of the document's first element ('rss', 'feed', 'rdf:RDF', 'html'), lower-cased."""
    found = re.search(rb"<([A-Za-z][\w:.\-]*)", re.sub(rb"<!--.*?-->|<![^>]*>|<\?.*?\?>", b"", body[:8192], flags=re.S))
    return found.group(1).decode("ascii", "replace").lower() if found else None


def _closes(body: bytes, root: str) -> bool:
    """Does the document end with its root's closing tag (trailing comments and spaces allowed)?"""
    tail = re.sub(rb"(?:\s|<!--(?:(?!<!--).)*?-->)+$", b"", body[-4096:], flags=re.S)
    return tail.lower().endswith(f"</{root}>".encode())
