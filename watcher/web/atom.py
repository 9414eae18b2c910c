"""Pure: a watch's latest changes as an Atom 1.0 feed (RFC 4287), built with xml.etree (every
text escaped; what XML cannot hold at all, control characters, removed). Each entry's `id` is a
`tag:` URI made from the change's id alone, so it is the same on every fetch; the feed has one
id, title, updated and author, and so has each entry."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from watcher.cleantext import xml_text
from watcher.model import ChangeRecord

ATOM_NS = "http://www.w3.org/2005/Atom"
TAG_DATE = "2026"  # the year trialwatch minted its tag: ids; never change it (ids would change)


def tag_authority(public_url: str) -> str:
    """The host of `public_url` (a tag: URI names an authority it belongs to)."""
    return urlsplit(public_url).hostname or "localhost"


def entry_id(public_url: str, change_id: int) -> str:
    return f"tag:{tag_authority(public_url)},{TAG_DATE}:trialwatch/change/{change_id}"


def feed_id(public_url: str, watch: str) -> str:
    return f"tag:{tag_authority(public_url)},{TAG_DATE}:trialwatch/watch/{quote(watch, safe='')}"


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_atom(*, watch: str, changes: Sequence[ChangeRecord], public_url: str, generated_at: datetime) -> bytes:
    """The feed document (UTF-8, with its XML declaration). `changes`: newest first."""
    base = public_url.rstrip("/")
    ET.register_namespace("", ATOM_NS)
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    _add(feed, "id", feed_id(public_url, watch))
    _add(feed, "title", f"trialwatch: {watch}")
    _add(feed, "updated", _stamp(changes[0].detected_at if changes else generated_at))
    author = ET.SubElement(feed, f"{{{ATOM_NS}}}author")
    _add(author, "name", "trialwatch")
    _add(author, "uri", base + "/")
    _link(feed, f"{base}/changes?watch={quote(watch, safe='')}", "alternate", "text/html")
    _add(feed, "generator", "trialwatch")
    for change in changes:
        feed.append(_entry(change, base, public_url))
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def _entry(change: ChangeRecord, base: str, public_url: str) -> ET.Element:
    entry = ET.Element(f"{{{ATOM_NS}}}entry")
    _add(entry, "id", entry_id(public_url, change.id))
    subject = f"{change.nct_id}, {change.kind}" if change.nct_id else str(change.kind)
    _add(entry, "title", f"{subject}: {change.summary}")
    _add(entry, "updated", _stamp(change.detected_at))
    if change.nct_id:
        _link(entry, f"{base}/studies/{quote(change.nct_id)}", "alternate", "text/html")
        _link(entry, change.url, "related", "text/html")
    link = change.details.get("link") if change.is_article else None
    if isinstance(link, str) and link.startswith(("http://", "https://")):
        _link(entry, link, "related" if change.nct_id else "alternate", "text/html")
    _add(entry, "category", None).set("term", str(change.kind))
    content = _add(entry, "content", change.summary)
    content.set("type", "text")
    return entry


def _add(parent: ET.Element, name: str, text: str | None) -> ET.Element:
    node = ET.SubElement(parent, f"{{{ATOM_NS}}}{name}")
    node.text = xml_text(text) if text is not None else None  # well-formed whatever the registry holds
    return node


def _link(parent: ET.Element, href: str, rel: str, media_type: str) -> None:
    ET.SubElement(parent, f"{{{ATOM_NS}}}link", {"href": xml_text(href), "rel": rel, "type": media_type})
