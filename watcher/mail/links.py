"""The links every message carries so that its recipient can leave or change it without an
account (RFC 8058): `List-Unsubscribe` / `List-Unsubscribe-Post` headers and the footer's
"Manage your alerts" and "Unsubscribe". Present only when the web app is served at a public URL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from watcher.config import ServerConfig
from watcher.recipient_token import make_token


@dataclass(frozen=True)
class MessageLinks:
    unsubscribe: str  # POST: one click (RFC 8058); GET: a page with one button
    manage: str


@dataclass(frozen=True)
class LinkSigner:
    """Signs links for one message: the recipient and the watches it speaks for, by id."""

    public_url: str
    secret: bytes

    def links(self, recipient: str, watch_ids: Sequence[int]) -> MessageLinks:
        token = make_token(self.secret, recipient, watch_ids)
        base = self.public_url.rstrip("/")
        return MessageLinks(unsubscribe=f"{base}/u/{token}", manage=f"{base}/m/{token}")


def link_signer(server: ServerConfig, secret: Callable[[], bytes]) -> LinkSigner | None:
    """A signer when the web app is served ([server] listen) at a public URL written in the config
    ([server] public_url; its default, http://<listen>, is for the browser on this machine, not
    for links in mails); None otherwise (no unsubscribe header or link then). `secret` gives the
    app's secret key (asked only when there are links to sign)."""
    if self_service_problem(server) is not None or not server.public_url:
        return None
    return LinkSigner(public_url=server.public_url, secret=secret())


def self_service_problem(server: ServerConfig) -> str | None:
    """Why recipients cannot unsubscribe themselves, or None when they can."""
    if not server.listen:
        return "[server] listen is not set: the web app is not served"
    if "public_url" not in server.model_fields_set or not server.public_url:
        return "[server] public_url is not set: mails cannot link to the web app"
    return None
