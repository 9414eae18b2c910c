"""Journal feed items: one feedparser entry -> a `FeedItem` with plain texts, its DOI, the NCT
ids it names, and its identity.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urljoin, urlsplit, urlunsplit

from watcher.cleantext import without_surrogates
from watcher.matching import extract_doi, extract_nct_ids, strip_html

MAX_KEY_CHARS = 400
TRACKING_PARAMS = frozenset({"ff", "fc", "v", "dgcid", "af", "rss", "rft_dat", "fbclid", "gclid", "mc_cid", "mc_eid"})
_DOI_LINK_PATH = re.compile(r"/doi/(?:(?:abs|full|pdf|epdf|epub|reader)/)?(10\.\d{4,9}/.+)$", re.IGNORECASE)
_URL_LIKE = re.compile(r"https?://|/", re.IGNORECASE)


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


def make_item(entry: Mapping[str, Any], *, feed_url: str) -> FeedItem:
    """A FeedItem from one feedparser entry: plain texts, UTC date, DOI, NCT ids, keys."""
    keys = [without_surrogates(key) for key in item_keys(entry, feed_url)]  # cleaned where parsed (#25)
    title = without_surrogates(strip_html(entry.get("title") or ""))
    summary = without_surrogates(strip_html(entry.get("summary") or ""))
    parts = (strip_html(part.get("value") or "") for part in entry.get("content") or [])
    content = without_surrogates(" ".join(dict.fromkeys(parts)))
    link = without_surrogates(urljoin(feed_url, entry.get("link") or "")) if entry.get("link") else ""
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
