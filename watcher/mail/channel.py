"""Chat channels and webhooks: a digest as one short Markdown message, sent through Apprise.

A channel is a transport beside SMTP behind the same outbox (mail.delivery): its notifications,
deliveries, retries and backoff are the mail's. This module only renders the message and sends
it; a failure (Apprise's result is a failure or a timeout, a webhook answering 5xx) raises
DeliveryFailed with the service's answer, never the URL's secrets.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from watcher import channels
from watcher.mail.digest import Digest, one_line
from watcher.mail.transport import DeliveryFailed

log = logging.getLogger(__name__)

MAX_LINES = 20
CHANNEL_TIMEOUT = 30.0  # seconds for one message, whatever the service


@dataclass(frozen=True)
class ChatMessage:
    title: str
    body: str  # Markdown; Apprise turns it into each service's own format


def render_chat(digest: Digest, public_url: str | None = None) -> ChatMessage:
    """Per study its most important change in one line, at most MAX_LINES lines then "and N more",
    and a link per watch to the timeline filtered to this digest when the web app is public."""
    lines: list[str] = []
    for watch in digest.watches:
        for study in watch.studies:
            change = min(study.changes, key=lambda c: (c.kind.rank, c.id))
            lines.append(f"- **{study.nct_id}** {one_line(study.title, 80)}: {one_line(change.summary, 160)}")
        for article in watch.articles:
            lines.append(f"- New article: {one_line(article.title, 160)}")
    shown = lines[:MAX_LINES]
    if len(lines) > MAX_LINES:
        shown.append(f"and {len(lines) - MAX_LINES} more")
    if not lines and digest.quiet:
        shown.append(f"Nothing new for {', '.join(digest.quiet)}.")
    if public_url:
        for watch in digest.watches:
            shown.append(f"[Open “{one_line(watch.name, 60)}” in the timeline]({timeline_link(public_url, watch)})")
    return ChatMessage(title=digest.subject(), body="\n".join(shown))


def test_message(watch: str | None = None) -> ChatMessage:
    """The short message "Send a test" and `trialwatch notify-test` send."""
    about = f" for the watch “{one_line(watch, 100)}”" if watch else ""
    return ChatMessage(
        title="[trialwatch] test message",
        body=f"This channel will receive trialwatch digests{about}. Nothing to do.",
    )


def timeline_link(public_url: str, watch: object) -> str:
    """/changes filtered to the watch and the days of this digest's changes."""
    changes = watch.changes  # type: ignore[attr-defined]
    days = sorted(change.detected_at.date().isoformat() for change in changes)
    query = urlencode([("watch", watch.name), ("since", days[0]), ("until", days[-1])])  # type: ignore[attr-defined]
    return f"{public_url.rstrip('/')}/changes?{query}"


@dataclass
class ChannelSender:
    """Sends one message to one Apprise URL (its ${NAME} resolved now), within `timeout` seconds."""

    timeout: float = CHANNEL_TIMEOUT

    def send(self, url: str, message: ChatMessage) -> str:
        """Deliver, or raise DeliveryFailed (permanent when the URL cannot be used at all).
        Returns what the service answered, in one line."""
        import apprise

        shown = channels.masked(url)
        try:
            resolved = channels.resolve(url)
        except channels.ChannelUrlError as exc:
            raise DeliveryFailed(f"{shown}: {exc}") from None
        channels.protect_logs([url])
        notifier = apprise.Apprise()
        if not notifier.add(resolved):
            raise DeliveryFailed(f"{shown}: Apprise does not accept this URL", permanent=True)
        started = time.monotonic()
        result = notifier.notify(
            body=message.body or message.title, title=message.title,
            body_format=apprise.NotifyFormat.MARKDOWN, timeout=self.timeout,
        )  # fmt: skip
        answer = _answer(result)
        status = getattr(result, "status", None)
        if status is not None and status.name == "TIMEOUT":
            raise DeliveryFailed(f"{shown}: no answer within {self.timeout:g} s")
        if not result:
            raise DeliveryFailed(f"{shown}: {answer or 'the service refused the message'}")
        log.debug("channel %s accepted the message in %.2fs", shown, time.monotonic() - started)
        return answer or "accepted"


def _answer(result: object) -> str:
    """The service's own words (Apprise's warnings and errors for this call), secrets redacted."""
    words: list[str] = []
    logs = getattr(result, "logs", None)
    for entry in logs() if callable(logs) else []:
        if entry.level in ("WARNING", "ERROR", "CRITICAL") and entry.message not in words:
            words.append(entry.message)
    return channels.REDACTOR.redact(one_line("; ".join(words), 300))
