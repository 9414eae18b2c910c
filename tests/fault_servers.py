"""Servers that fail slowly, on loopback: they accept the connection and then answer nothing, or
one byte every few seconds (a trickling registry, a mail server that hangs). Real sockets; the
trickle waits on the server's stop event, so stopping it ends every connection at once."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Slow:
    """What a slow server says: `at_once` first, then `trickle` a byte every `interval` seconds;
    `fast`: HTTP paths (prefixes) answered at once with this JSON instead."""

    at_once: bytes = b""
    trickle: bytes = b""
    interval: float = 1.0
    http: bool = False
    fast: dict[str, Any] = field(default_factory=dict)


class SlowServer:
    def __init__(self, slow: Slow) -> None:
        self.slow = slow
        self.stopping = threading.Event()
        self.connections = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer.connections += 1
                outer._serve(self.request)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host, self.port = "127.0.0.1", int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _serve(self, sock: Any) -> None:
        slow = self.slow
        at_once, trickle = slow.at_once, slow.trickle
        if slow.http:
            head = _read_head(sock)
            path = head.split(b" ")[1].decode() if head.count(b" ") >= 2 else "/"
            quick = next((body for prefix, body in slow.fast.items() if path.startswith(prefix)), None)
            if quick is not None:
                at_once, trickle = http_answer(json.dumps(quick).encode()), b""
        try:
            sock.sendall(at_once)
            for byte in trickle:
                if self.stopping.wait(slow.interval):
                    return
                sock.sendall(bytes([byte]))
            self.stopping.wait()  # said all it will say: holds the connection open, silent
        except OSError:
            return

    def __enter__(self) -> SlowServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def _read_head(sock: Any) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def http_answer(body: bytes, content_type: str = "application/json") -> bytes:
    """A whole HTTP/1.1 answer carrying `body`."""
    fields = f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close"
    head = f"HTTP/1.1 200 OK\r\n{fields}\r\n\r\n"
    return head.encode() + body


@contextmanager
def slow_server(slow: Slow) -> Iterator[SlowServer]:
    with SlowServer(slow) as server:
        yield server


class TricklingSmtp(SlowServer):
    """An SMTP server that answers every step correctly, a byte every `interval` seconds (or,
    with `silent`, accepts the connection and never says a word)."""

    def __init__(self, interval: float, *, silent: bool = False) -> None:
        super().__init__(Slow(interval=interval))
        self.silent = silent

    def _serve(self, sock: Any) -> None:
        if self.silent:
            self.stopping.wait()
            return
        reader = sock.makefile("rb")
        try:
            if not self._say(sock, b"220 slow.example ESMTP\r\n"):
                return
            in_data = False
            for line in reader:
                if in_data:
                    in_data = line != b".\r\n"
                    if not in_data and not self._say(sock, b"250 queued\r\n"):
                        return
                    continue
                verb = line[:4].upper()
                answer = {b"DATA": b"354 go on\r\n", b"QUIT": b"221 bye\r\n"}.get(verb, b"250 ok\r\n")
                in_data = verb == b"DATA"
                if not self._say(sock, answer) or verb == b"QUIT":
                    return
        except OSError:
            return

    def _say(self, sock: Any, answer: bytes) -> bool:
        for byte in answer:
            if self.stopping.wait(self.slow.interval):
                return False
            sock.sendall(bytes([byte]))
        return True
