"""One way to make HTTP requests: honest User-Agent, timeouts, pacing, bounded retries.

Retried: 429, 5xx, timeouts, connection errors and truncated bodies, with exponential backoff and
jitter, honouring Retry-After. Not retried: other 4xx (a 400 from ClinicalTrials.gov carries a
plain-text reason, which the error shows). Every failure is a SourceError naming the URL.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)

from watcher import __version__
from watcher.errors import SourceError
from watcher.jsontext import parse_json

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = f"trialwatch/{__version__} (+https://github.com/trialwatch/trialwatch)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
READ_CHUNK = 1 << 20  # bytes per read of a response body
MAX_RETRY_AFTER = 300.0
SECRET_PARAMS = frozenset({"api_key"})  # never shown in a message or a log line


def make_session(user_agent: str = DEFAULT_USER_AGENT) -> requests.Session:
    session = requests.Session()
    session.headers.update({"User-Agent": user_agent, "Accept": "application/json"})
    return session


class Stopping(SourceError):
    """The daemon is stopping: the request in hand is abandoned, nothing is stored."""

    def __init__(self) -> None:
        super().__init__("stopping: the poll in hand was abandoned, nothing from it is stored")


def interruptible_sleep(stopping: threading.Event) -> Callable[[float], None]:
    """A sleep that ends early, raising Stopping, once `stopping` is set (a retry wait or the
    pacing pause never holds up a daemon asked to stop)."""

    def sleep(seconds: float) -> None:
        if stopping.wait(seconds):
            raise Stopping

    return sleep


class Pacer:
    """Keeps at least 1/rate seconds between requests (rate 0 = no pacing). Thread-safe."""

    def __init__(self, requests_per_second: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / requests_per_second if requests_per_second > 0 else 0.0
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            self._sleep(delay)

    def finished(self) -> None:
        """The request in hand has had its answer: the next starts a full interval after it, so
        the server never sees two closer than that, however long the first took to arrive."""
        if not self.interval:
            return
        with self._lock:
            self._next = max(self._next, time.monotonic() + self.interval)


class RetryableError(SourceError):
    """A failure worth trying again (429, 5xx, timeout, connection, truncated body)."""

    retry_after: float | None = None


@dataclass
class HttpClient:
    """GET JSON with pacing and retries; counts the requests it makes."""

    session: requests.Session
    timeout: float = 60.0
    pacer: Pacer = field(default_factory=lambda: Pacer(0))
    attempts: int = 5
    backoff: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    requests_made: int = 0

    def get_json(self, url: str, params: Mapping[str, str] | None = None) -> Any:
        return self._retrying()(self._get_json_once, url, params)

    def fetch_bytes(
        self, url: str, *, params: Mapping[str, str] | None = None, form: Mapping[str, str] | None = None,
        max_bytes: int = 50 * 1024 * 1024,
    ) -> bytes:  # fmt: skip
        """The body of a GET (`params`) or, with `form`, a POST of that form (so nothing in it, such
        as an API key, is ever part of a URL that a library logs); read under a size cap, paced,
        retried like get_json."""
        return self._retrying()(self._fetch_once, url, params, form, max_bytes)

    def _fetch_once(
        self, url: str, params: Mapping[str, str] | None, form: Mapping[str, str] | None, max_bytes: int
    ) -> bytes:
        self.pacer.wait()
        self.requests_made += 1
        method = "POST" if form is not None else "GET"
        where = _describe(url, form if form is not None else params, method=method)
        try:
            with (
                _request_errors(where, self.timeout),
                self.session.request(
                    method, url, params=params, data=form, timeout=self.timeout, stream=True
                ) as response,
            ):  # fmt: skip
                _check_status(response, where)
                return _read_capped(response, where, max_bytes)
        finally:
            self.pacer.finished()

    def _wait(self, state: RetryCallState) -> float:
        exponential = self.backoff * 2 ** (state.attempt_number - 1)
        delay = min(exponential, 60 * self.backoff) + random.uniform(0, self.backoff)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableError) and exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, MAX_RETRY_AFTER))
        return delay

    def get_body(self, url: str, params: Mapping[str, str] | None = None) -> bytearray:
        """The body of a GET, paced and retried like get_json, not parsed (the caller parses it,
        or hands it to the thread that will: see registry.client.search_pages)."""
        return self._retrying()(self._get_body_once, url, params)

    def _retrying(self) -> Retrying:
        """A request retried on a RetryableError, `attempts` in all, waiting as _wait says."""
        return Retrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, RetryableError)),
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            sleep=self.sleep,
            before_sleep=_log_retry,
            reraise=True,
        )

    def _get_body_once(self, url: str, params: Mapping[str, str] | None) -> bytearray:
        self.pacer.wait()
        self.requests_made += 1
        where = _describe(url, params)
        with (
            _request_errors(where, self.timeout),
            self.session.get(url, params=params, timeout=self.timeout, stream=True) as response,
        ):  # fmt: skip
            _check_status(response, where)
            # read a megabyte at a time (`response.content` reads 10 kB at a time: twice the CPU of
            # the whole download on a 15 MB page) into one growing buffer: joining the chunks held
            # the page twice, and the allocator kept such blocks for reuse, a 15 MB page each
            body = bytearray()
            for chunk in response.iter_content(chunk_size=READ_CHUNK):
                body += chunk
            return body

    def _get_json_once(self, url: str, params: Mapping[str, str] | None) -> Any:
        body = self._get_body_once(url, params)
        try:
            return parse_json(body)
        except ValueError as exc:
            where = _describe(url, params)
            raise RetryableError(f"{where}: response is not complete JSON ({len(body)} bytes): {exc}") from exc


@contextmanager
def _request_errors(where: str, timeout: float) -> Iterator[None]:
    """requests' errors as ours, saying where: a timeout, a cut body or no connection can be
    retried; any other request error cannot."""
    try:
        yield
    except requests.Timeout as exc:
        raise RetryableError(f"{where}: timed out after {timeout:g}s") from exc
    except requests.exceptions.ChunkedEncodingError as exc:
        raise RetryableError(f"{where}: response truncated") from exc
    except requests.ConnectionError as exc:
        raise RetryableError(f"{where}: cannot connect: {connection_reason(exc)}") from exc
    except requests.RequestException as exc:
        raise SourceError(f"{where}: request failed: {_first_line(exc)}") from exc


def _check_status(response: requests.Response, where: str) -> None:
    status = response.status_code
    if status < 400:
        return
    if status in RETRY_STATUSES:
        error = RetryableError(f"{where}: HTTP {status} {response.reason or ''}".rstrip())
        error.retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise error
    reason = _first_line(response.text) if "html" not in response.headers.get("Content-Type", "") else ""
    detail = f": {reason}" if reason else ""
    raise SourceError(f"{where}: HTTP {status} {response.reason or ''}{detail}".rstrip())


def _read_capped(response: requests.Response, where: str, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length", "")
    too_big = SourceError(f"{where}: response larger than {max_bytes // (1024 * 1024) or 1} MB, not read")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_big
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_size=65536):
        size += len(chunk)
        if size > max_bytes:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _describe(url: str, params: Mapping[str, str] | None, limit: int = 160, method: str = "GET") -> str:
    """'GET url?query' cut to `limit` characters: enough to tell which request, short enough to read;
    never a secret parameter (SECRET_PARAMS)."""
    shown = "&".join(f"{k}={v}" for k, v in (params or {}).items() if k != "pageToken" and k not in SECRET_PARAMS)
    text = f"{method} {url}?{shown}" if shown else f"{method} {url}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def connection_reason(exc: requests.ConnectionError) -> str:
    """The innermost reason of a connection failure, without urllib3's wrapper text."""
    outer = exc.args[0] if exc.args else exc
    reason = getattr(outer, "reason", None) or outer  # MaxRetryError -> NameResolutionError & co.
    return re.sub(r"^(<[^>]+>|\w+\([^)]*\)):\s*", "", _first_line(reason))


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0][:300] if text else ""


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0
    log.warning("retrying in %.1fs (attempt %d): %s", wait, state.attempt_number, exc)
