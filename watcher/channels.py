"""Chat channels and webhooks (Apprise URLs): what a watch's `notify` list holds, checked, masked
and turned into an outbox address, wherever it comes from (the TOML file, the web form, the API).

A URL holds secrets (tokens, passwords, webhook keys). It is stored as written, and a value may be
`"${ENV_NAME}"`: then the secret lives only in the environment and is read when it is checked or
used. Everything shown (pages, API answers, logs, the audit) is the masked form Apprise prints in
its privacy mode. A masked URL sent back unchanged keeps the stored secret (`restore_masked`).

In the outbox a channel is a recipient named `channel:<16 hex digits>` (a digest of the URL as
written): its notifications and deliveries are the mail's, with the same guarantees.

Part of the shared core; Apprise is imported only when a URL is checked, masked or sent to (a
command that touches no channel never pays for it).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

CHANNEL_PREFIX = "channel:"
MAX_CHANNELS = 20  # per watch
MAX_URL_LENGTH = 2000
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class ChannelUrlError(ValueError):
    """A channel URL that cannot be used; the message never holds the URL's secret parts."""


def env_names(url: str) -> list[str]:
    return _ENV.findall(url)


def resolve(url: str, environ: dict[str, str] | None = None) -> str:
    """The URL with every `${NAME}` replaced from the environment; ChannelUrlError naming an unset one."""
    env = os.environ if environ is None else environ
    missing = [name for name in env_names(url) if not env.get(name)]
    if missing:
        raise ChannelUrlError(f"environment variable {missing[0]} is not set")
    return _ENV.sub(lambda match: env[match.group(1)], url)


def scheme_of(url: str) -> str:
    match = _SCHEME.match(url.strip())
    return match.group(1).lower() if match else ""


def _instantiate(url: str) -> Any:
    import apprise  # only where a channel is used

    _quiet_apprise()
    _CHECKING.on = True  # Apprise logs a URL it cannot read as it is, secrets and all
    try:
        return apprise.Apprise.instantiate(url, suppress_exceptions=True)
    finally:
        _CHECKING.on = False


def check(url: str) -> None:
    """Raise ChannelUrlError when Apprise does not take `url` (after ${NAME} is resolved)."""
    if not isinstance(url, str) or not url.strip():
        raise ChannelUrlError("empty URL")
    if len(url) > MAX_URL_LENGTH:
        raise ChannelUrlError(f"longer than {MAX_URL_LENGTH} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ChannelUrlError("control character in the URL")
    resolved = resolve(url)
    scheme = scheme_of(resolved)
    if not scheme:
        raise ChannelUrlError("not a URL: write it as service://…, e.g. slack://…, json://host/path")
    if _instantiate(resolved) is None:
        raise ChannelUrlError(f"Apprise does not accept this {scheme}:// URL (unknown service or malformed)")


def masked(url: str) -> str:
    """What may be shown of a URL: `${NAME}` as written, else Apprise's privacy form (or only the
    scheme when Apprise cannot read it)."""
    if env_names(url):
        return url  # the secret is in the environment, not in what is written
    plugin = _instantiate(url)
    if plugin is None:
        return f"{scheme_of(url) or 'unknown'}://****"
    return _without_added_options(str(plugin.url(privacy=True)), url)


def _without_added_options(shown: str, written: str) -> str:
    """The masked URL without the query options Apprise adds with their defaults (it prints
    `?method=POST&overflow=upstream&retry=0…` after every URL): only those written are kept."""
    base, _, query = shown.partition("?")
    written_keys = {key for key, _ in parse_qsl(urlsplit(written).query, keep_blank_values=True)}
    kept = [(key, value) for key, value in parse_qsl(query, keep_blank_values=True) if key in written_keys]
    return f"{base}?{urlencode(kept, safe='*')}" if kept else base


def address(url: str) -> str:
    """The outbox recipient of a channel: stable for the URL as written, holding nothing of it."""
    return CHANNEL_PREFIX + hashlib.sha256(url.strip().encode()).hexdigest()[:16]


def is_channel(recipient: str) -> bool:
    return recipient.startswith(CHANNEL_PREFIX)


def restore_masked(submitted: Sequence[str], stored: Sequence[str]) -> list[str]:
    """The URLs to store: a submitted URL equal to the masked form of a stored one is that stored
    URL (its secret kept); any other is new and replaces it."""
    if not stored:
        return [url.strip() for url in submitted]
    by_mask: dict[str, str] = {}
    for url in stored:
        by_mask.setdefault(masked(url), url)
    return [by_mask.get(url.strip(), url.strip()) for url in submitted]


def secret_parts(url: str) -> set[str]:
    """Pieces of a URL that Apprise's privacy form hides (and the whole URL, resolved): what logs
    must never print. Judged on the resolved URL, so a `${NAME}` URL's host is no secret."""
    try:
        full = resolve(url)
    except ChannelUrlError:
        return set() if env_names(url) else {url}
    plugin = _instantiate(full)
    shown = str(plugin.url(privacy=True)) if plugin is not None else ""
    pieces = {piece for piece in re.split(r"[/:@?&=#,]+", full) if len(piece) >= 6 and piece not in shown}
    return pieces | {full}


class RedactSecrets(logging.Filter):
    """Replaces every registered secret in a log record's message with ****, at every level."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, urls: Iterable[str]) -> None:
        for url in urls:
            self.secrets |= {piece for piece in secret_parts(url) if piece}

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, "****")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            cleaned = self.redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


REDACTOR = RedactSecrets()


def protect_logs(urls: Iterable[str]) -> None:
    """Register channel URLs whose secrets no log line may show (on every handler of the root logger)."""
    REDACTOR.add(urls)
    for handler in logging.getLogger().handlers:
        if REDACTOR not in handler.filters:
            handler.addFilter(REDACTOR)


_CHECKING = threading.local()


class _NotWhileChecking(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_CHECKING, "on", False)


_SILENCER = _NotWhileChecking()


def _quiet_apprise() -> None:
    """Apprise logs request URLs (secrets included) at DEBUG: never below INFO, whatever --verbose
    says; and nothing at all while a URL is read (it names the URL it cannot read)."""
    logger = logging.getLogger("apprise")
    if logger.level == logging.NOTSET or logger.level < logging.INFO:
        logger.setLevel(logging.INFO)
    if _SILENCER not in logger.filters:
        logger.addFilter(_SILENCER)
