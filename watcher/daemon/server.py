"""The daemon's HTTP server: an ASGI app served by uvicorn on a thread of its own.

The socket is bound before the thread starts, so a port in use is refused at once with one line
(and port 0 gives the real port at once); uvicorn then serves on it until `stop()`. Its own signal
handlers are never installed (it runs off the main thread): the daemon's signals stay the
daemon's. Used for /healthz and /metrics (watcher.daemon.health) with the web app beside them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from watcher.config import parse_listen
from watcher.errors import ConfigError

log = logging.getLogger(__name__)

START_SECONDS = 10.0
STOP_SECONDS = 5
"""Open connections get this long to finish when the server stops."""
# Slow clients (#25): a request's headers must arrive within HEADER_SECONDS of the connection (or
# of the previous answer), an idle kept-alive connection is closed after KEEP_ALIVE_SECONDS, and
# past CONNECTION_LIMIT open connections a request is answered 503 at once (the systemd unit's
# LimitNOFILE leaves room for them, the database's and the files').
HEADER_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5
CONNECTION_LIMIT = 500
MAX_HEADER_BYTES = 16 * 1024


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, which waits for headers for ever, with a deadline for them: a
    connection whose request headers are not complete `header_seconds` after it opened (or after
    its previous answer) is closed."""

    header_seconds = HEADER_SECONDS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._await_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(self.header_seconds, self._headers_late, self.conn.their_state)

    def _headers_late(self, state_then: Any) -> None:
        """Close the connection when its client is still where it was: not one whole request sent."""
        waiting = self.conn.their_state is h11.IDLE and state_then in (h11.IDLE, h11.DONE)
        if waiting and not self.transport.is_closing():
            self.transport.close()


class AsgiServer:
    """`app` served on `listen` ('host:port') by uvicorn on a daemon thread."""

    def __init__(
        self, *, listen: str, app: Any, name: str = "http-server", header_seconds: float = HEADER_SECONDS,
        connection_limit: int = CONNECTION_LIMIT, forwarded_allow_ips: str = "127.0.0.1",
    ) -> None:  # fmt: skip
        try:
            self.host, self._requested_port = parse_listen(listen)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        self.app = app
        self.name = name
        self.header_seconds, self.connection_limit = header_seconds, connection_limit
        self.forwarded_allow_ips = forwarded_allow_ips
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for); only while started."""
        if self._socket is None:
            raise RuntimeError(f"{self.name} is not started")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def start(self) -> None:
        """Bind (ConfigError if the address cannot be used), then serve on a thread."""
        self._socket = self._bind()
        protocol = type("Protocol", (HeaderTimeoutProtocol,), {"header_seconds": self.header_seconds})
        config = uvicorn.Config(
            self.app, log_config=None, access_log=False, lifespan="auto", timeout_graceful_shutdown=STOP_SECONDS,
            http=protocol, timeout_keep_alive=KEEP_ALIVE_SECONDS, limit_concurrency=self.connection_limit,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            forwarded_allow_ips=self.forwarded_allow_ips,  # whose X-Forwarded-For is the client's address
        )  # fmt: skip
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, args=(server, self._socket), name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_SECONDS
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)  # the socket already queues connections; this only waits for the app's startup
        if not self._thread.is_alive():  # the app's startup failed: uvicorn logged why
            url = self.url
            self.stop()
            raise ConfigError(f"{self.name} on {url} did not start: see the errors logged above")
        if not server.started:
            log.warning("%s on %s is still starting after %.0f s", self.name, self.url, START_SECONDS)

    @staticmethod
    def _run(server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except SystemExit:  # uvicorn exits when the app's startup fails, having logged why
            log.debug("uvicorn exited")

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._requested_port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise ConfigError(f"{self.name} cannot listen on {self.host}:{self._requested_port}: {exc}") from exc
        sock.set_inheritable(False)
        return sock

    def stop(self) -> None:
        server, sock, thread = self._server, self._socket, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.should_exit = True
        if thread is not None:
            thread.join(timeout=STOP_SECONDS + 5)
        if sock is not None:
            sock.close()
        self._socket = None

    def __enter__(self) -> AsgiServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
