"""Issue #25, W15: the daemon's HTTP server (watcher.daemon.server, which `trialwatch run` and
`trialwatch web` use) closes a connection whose request headers do not arrive in time, and past
its connection limit answers 503 at once; the systemd unit leaves room for those connections."""

from __future__ import annotations

import configparser
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.web_support import WebSite
from watcher.daemon.server import CONNECTION_LIMIT, AsgiServer

UNIT = Path(__file__).resolve().parent.parent / "deploy" / "systemd" / "trialwatch.service"


@pytest.fixture
def daemon_server(web_server: WebSite) -> Iterator[AsgiServer]:
    """The daemon's server over the web app, with a short header deadline and a limit of 3."""
    server = AsgiServer(listen="127.0.0.1:0", app=web_server.app, header_seconds=0.5, connection_limit=3)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def patient_server(web_server: WebSite) -> Iterator[AsgiServer]:
    server = AsgiServer(listen="127.0.0.1:0", app=web_server.app, connection_limit=3)
    server.start()
    yield server
    server.stop()


def connect(server: AsgiServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def get_login(sock: socket.socket) -> bytes:
    """One whole request on a kept-alive connection, and its whole answer."""
    sock.sendall(b"GET /login HTTP/1.1\r\nHost: localhost\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
        piece = sock.recv(65536)
        assert piece, "closed before answering"
        answer += piece
    return answer


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise AssertionError("no Content-Length")


def test_a_client_that_never_finishes_its_headers_is_disconnected(daemon_server: AsgiServer):
    with connect(daemon_server) as slow:
        slow.sendall(b"GET /login HTTP/1.1\r\nHost: local")  # and nothing more
        assert slow.recv(1024) == b"", "the server waited for the headers for ever"
    with connect(daemon_server) as kept:  # a kept-alive client's next request has the same deadline
        assert get_login(kept).startswith(b"HTTP/1.1 200")
        kept.sendall(b"GET /login HTTP/1.1\r\n")
        assert kept.recv(65536) == b""
    assert requests.get(f"{daemon_server.url}/login", timeout=30).status_code == 200


def test_past_the_connection_limit_a_request_is_503_at_once(patient_server: AsgiServer):
    assert requests.get(f"{patient_server.url}/login", timeout=30).status_code == 200
    held = [connect(patient_server) for _ in range(2)]
    try:
        for sock in held:
            sock.sendall(b"GET /login HTTP/1.1\r\n")  # slow clients, within the header deadline
        answer = requests.get(f"{patient_server.url}/login", timeout=30)  # the third connection: the limit
        assert answer.status_code == 503
    finally:
        for sock in held:
            sock.close()


def test_the_systemd_unit_leaves_file_descriptors_for_the_connections():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(UNIT)
    assert int(unit["Service"]["LimitNOFILE"]) >= 2 * CONNECTION_LIMIT
