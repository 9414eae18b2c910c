"""Journal feeds: fetch one feed (conditional GET, size cap, redirects) and normalise its items.

No database and no email here. One poll reads top to bottom:
request with the stored ETag / Last-Modified and a timeout -> status checks (304 not modified,
410 gone, 403 blocked, 429/5xx retry later; redirects followed by hand so a permanent move is
known) -> body read under a size cap -> same body hash as last time? not modified -> feedparser
-> `classify_bozo` (a captcha page, a non-feed or a truncated feed fails the poll, so nothing
stored changes) -> `FeedItem`s keyed by `item_key`.

Identity of an item (`item_key`, the one place that decides it):
1. `doi:<doi>` when the entry carries a DOI (prism:doi, dc:identifier, a DOI-shaped guid, a
   doi.org or `/doi/<doi>` link), so one paper seen in two feeds is one item;
2. else `id:<guid>` (URL-shaped ids cleaned like links, below);
3. else `link:<url>` with tracking parameters (utm_*, ff, fc, v, dgcid, af, rss, ...) removed,
   the remaining query sorted, http -> https, no fragment;
4. else `title:<sha256 of the case- and space-folded plain title, 32 hex digits>`.
Never a hash of the content: PubMed rewrites links and content on every fetch. `item_keys` lists
the lesser identities too. Keys 2-4 are unique within one feed only (a bare guid "42" can recur).
"""

from __future__ import annotations

import calendar
import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urljoin, urlsplit, urlunsplit

import feedparser
import requests

from watcher.errors import SourceError
from watcher.http import RetryableError, connection_reason, parse_retry_after
from watcher.matching import extract_doi, extract_nct_ids, strip_html

MAX_FEED_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 5
MAX_KEY_CHARS = 400
FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, */*;q=0.5"
TRACKING_PARAMS = frozenset({"ff", "fc", "v", "dgcid", "af", "rss", "rft_dat", "fbclid", "gclid", "mc_cid", "mc_eid"})
PERMANENT_REDIRECTS = frozenset({301, 308})
TEMPORARY_REDIRECTS = frozenset({302, 303, 307})
RETRY_LATER = frozenset({429, 500, 502, 503, 504})
_BLOCKED_MARKERS = ("captcha", "not a robot", "unusual traffic", "access denied", "verify you are human")
_DOI_LINK_PATH = re.compile(r"/doi/(?:(?:abs|full|pdf|epdf|epub|reader)/)?(10\.\d{4,9}/.+)$", re.IGNORECASE)
_URL_LIKE = re.compile(r"https?://|/", re.IGNORECASE)
FetchStatus = Literal["ok", "not_modified", "gone"]
BozoVerdict = Literal["harmless", "blocked", "not_a_feed", "truncated"]


class FeedRetryLater(RetryableError):
    """The feed answered 429 or 5xx, timed out or broke off: poll again later (`retry_after`
    seconds when the server said so)."""

    hint = "the server is busy or unreachable; the next poll tries again"


@dataclass(frozen=True)
class FeedItem:
    """One feed entry, normalised: plain-text title, summary and content (HTML stripped)."""

    key: str
    doi: str | None
    title: str
    link: str
    summary: str
    content: str
    published: datetime | None
    nct_ids: tuple[str, ...]
    other_keys: tuple[str, ...] = ()  # the entry's other identities (see item_keys)

    def text_fields(self) -> dict[str, str]:
        """What matching reads, by field name (Wiley's abstract is only in the content)."""
        return {"title": self.title, "summary": self.summary, "content": self.content}


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
    except requests.Timeout as exc:
        raise FeedRetryLater(f"GET {url}: timed out after {timeout:g}s") from exc
    except requests.ConnectionError as exc:
        raise FeedRetryLater(f"GET {url}: cannot connect: {connection_reason(exc)}") from exc
    except requests.RequestException as exc:
        raise SourceError(f"GET {url}: request failed: {exc}") from exc


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
    except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError) as exc:
        raise FeedRetryLater(f"GET {url}: response truncated after {size} bytes") from exc
    except requests.Timeout as exc:
        raise FeedRetryLater(f"GET {url}: timed out reading the body") from exc
    return b"".join(chunks)


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


# --- items ----------------------------------------------------------------------------------


def make_item(entry: Mapping[str, Any], *, feed_url: str) -> FeedItem:
    """A FeedItem from one feedparser entry: plain texts, UTC date, DOI, NCT ids, keys."""
    keys = item_keys(entry, feed_url)
    title = strip_html(entry.get("title") or "")
    summary = strip_html(entry.get("summary") or "")
    content = " ".join(dict.fromkeys(strip_html(part.get("value") or "") for part in entry.get("content") or []))
    link = urljoin(feed_url, entry.get("link") or "") if entry.get("link") else ""
    hrefs = [str(ref.get("href") or "") for ref in entry.get("links") or []]
    return FeedItem(
        key=keys[0],
        other_keys=tuple(keys[1:]),
        doi=entry_doi(entry, feed_url),
        title=title,
        link=link,
        summary=summary,
        content=content if content != summary else "",
        published=_published(entry),
        nct_ids=tuple(extract_nct_ids(title, summary, content, link, *hrefs)),
    )


def item_key(entry: Mapping[str, Any], feed_url: str) -> str:
    """THE identity of a feed entry (see the module docstring for the order of preference)."""
    return item_keys(entry, feed_url)[0]


def item_keys(entry: Mapping[str, Any], feed_url: str) -> list[str]:
    """Every identity the entry has, best first (doi, id, link; the title hash only when there is
    none of these). The first is `item_key`; the others let a store recognise an item whose best
    key changed, e.g. a PubMed entry that gains its DOI after it was first seen. Keys longer than
    MAX_KEY_CHARS become '<kind>:sha256:<hex>'."""
    doi = entry_doi(entry, feed_url)
    entry_id = str(entry.get("id") or "").strip()
    link = str(entry.get("link") or "").strip()
    keys = [
        f"doi:{doi}" if doi else "",
        f"id:{clean_link(urljoin(feed_url, entry_id)) if _URL_LIKE.match(entry_id) else entry_id}" if entry_id else "",
        f"link:{clean_link(urljoin(feed_url, link))}" if link else "",
    ]
    if not any(keys):
        title = " ".join(strip_html(entry.get("title") or "").casefold().split())
        keys.append(f"title:{hashlib.sha256(title.encode()).hexdigest()[:32]}")
    bounded = (_bounded_key(key) for key in keys if key)
    return list(dict.fromkeys(bounded))


def _bounded_key(key: str) -> str:
    if len(key) <= MAX_KEY_CHARS:
        return key
    kind, _, rest = key.partition(":")
    return f"{kind}:sha256:{hashlib.sha256(rest.encode()).hexdigest()}"


def entry_doi(entry: Mapping[str, Any], feed_url: str = "") -> str | None:
    """The entry's own DOI: prism:doi, dc:identifier, a DOI-shaped guid, or a DOI link. Never one
    cited in the summary (a commentary names the paper it discusses)."""
    for value in (entry.get("prism_doi"), entry.get("dc_identifier"), entry.get("id")):
        doi = _doi_from_identifier(str(value or ""))
        if doi:
            return doi
    links = [entry.get("id"), entry.get("link")] + [ref.get("href") for ref in entry.get("links") or []]
    return next(_dois_from_links(urljoin(feed_url, str(link)) for link in links if link), None)


def _doi_from_identifier(value: str) -> str | None:
    """'10.1002/tax.12650', 'doi:10.…', 'DOI: 10.…' or a doi.org URL -> the DOI; others None."""
    value = value.strip()
    lowered = value.lower()
    if lowered.startswith(("http://", "https://")):
        return next(_dois_from_links([value]), None)
    if lowered.startswith("doi:"):
        value = value[4:].strip()
    return extract_doi(value) if value.startswith("10.") else None


def _dois_from_links(links: Iterable[str]) -> Iterator[str]:
    for link in links:
        parts = urlsplit(link)
        path = unquote(parts.path)
        if (parts.hostname or "").endswith("doi.org"):
            doi = extract_doi(path.lstrip("/")) if path.lstrip("/").startswith("10.") else None
        else:
            found = _DOI_LINK_PATH.search(path)
            doi = extract_doi(found.group(1)) if found else None
        if doi:
            yield doi


def clean_link(url: str) -> str:
    """A link without tracking parameters, with the query sorted, https, no fragment:
    'http://x.org/a?v=2&b=1&utm_source=rss#top' -> 'https://x.org/a?b=1'."""
    parts = urlsplit(url.strip())
    query = sorted(
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name.lower() not in TRACKING_PARAMS and not name.lower().startswith("utm_")
    )
    scheme = "https" if parts.scheme.lower() in ("http", "https") else parts.scheme.lower()
    return urlunsplit((scheme, parts.netloc.lower(), parts.path, urlencode(query), ""))


def _published(entry: Mapping[str, Any]) -> datetime | None:
    """feedparser's parsed date (already UTC) as an aware datetime; published, else updated."""
    when = entry.get("published_parsed") or entry.get("updated_parsed")
    if not when:
        return None
    return datetime.fromtimestamp(calendar.timegm(when), tz=UTC)
