"""A total deadline on every HTTP request of a session (`[http] request_deadline`).

`requests`' timeout bounds each read of the socket, not the request: a server that sends its
answer a byte every few seconds never trips it. A `DeadlineSession` notes, per thread, when the
request in hand must be over; its connections read their socket through `_DeadlineReader`, which
never waits past that moment, so the header and the body (read after `request()` returned, with
`stream=True`) are both bounded. The request is made and its body read in one thread (see
registry.batch.prefetched), which is what the per-thread note relies on.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from watcher.errors import SourceError

DEFAULT_REQUEST_DEADLINE = 120.0

_current = threading.local()  # .at: monotonic time the thread's request must end by; .seconds; .passed


class DeadlinePassed(TimeoutError):
    """The request's total deadline passed while waiting for the server."""


def deadline_error(where: str) -> SourceError | None:
    """The error to report when the thread's latest request failed because its deadline passed."""
    if not getattr(_current, "passed", False):
        return None
    seconds = getattr(_current, "seconds", DEFAULT_REQUEST_DEADLINE)
    return SourceError(f"{where}: no complete answer within {seconds:g}s ([http] request_deadline)")


class DeadlineSession(requests.Session):
    """A session whose every request (redirects and body included) ends within `request_deadline`."""

    def __init__(self, request_deadline: float = DEFAULT_REQUEST_DEADLINE) -> None:
        super().__init__()
        self.request_deadline = request_deadline
        adapter = _DeadlineAdapter()
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        _current.at = time.monotonic() + self.request_deadline
        _current.seconds = self.request_deadline
        _current.passed = False
        return super().request(*args, **kwargs)


class _DeadlineReader(socket.SocketIO):
    """A socket's reading side that never waits past the thread's deadline (a SocketIO, so the
    socket stays open while the response reads it, as with the socket's own makefile)."""

    def readinto(self, buffer: Any) -> int | None:
        at = getattr(_current, "at", None)
        if at is None:
            return super().readinto(buffer)
        remaining = at - time.monotonic()
        if remaining <= 0:
            _current.passed = True
            raise DeadlinePassed("request deadline passed")
        sock = self._sock  # type: ignore[attr-defined]
        before = sock.gettimeout()
        sock.settimeout(remaining if before is None else min(before, remaining))
        try:
            return super().readinto(buffer)
        except TimeoutError:
            if time.monotonic() >= at:
                _current.passed = True
                raise DeadlinePassed("request deadline passed") from None
            raise
        finally:
            sock.settimeout(before)


class _DeadlineSocket:
    """The connected socket, but files made from it read through a _DeadlineReader."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def makefile(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if mode != "rb":
            return self._sock.makefile(mode, *args, **kwargs)  # type: ignore[call-overload]
        self._sock._io_refs += 1  # type: ignore[attr-defined]  # as socket.makefile counts its files
        return io.BufferedReader(_DeadlineReader(self._sock, "rb"))


class _Connection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock)  # type: ignore[assignment]


class _TlsConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock)  # type: ignore[assignment]


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TlsPool(HTTPSConnectionPool):
    ConnectionCls = _TlsConnection


_POOLS = {"http": _Pool, "https": _TlsPool}


class _DeadlineAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)  # type: ignore[assignment]

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(*args, **kwargs)
        manager.pool_classes_by_scheme = dict(_POOLS)
        return manager
