"""Issue #25, vulnerability 2: request bodies are capped before anything parses them. A real
`trialwatch web` process takes a burst of oversized bodies (sign-in, setup, the API; declared and
chunked) and answers each with a 413 while its memory (RSS from /proc) stays where it was; the
in-process server shows the 413's page and JSON, and that forms still work under the caps."""

from __future__ import annotations

import select
import signal
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.harness import write_config
from tests.test_daemon import Daemon
from tests.web_support import WebSite, csrf_of
from watcher.store import db, people
from watcher.web.limits import API_BODY_LIMIT, FORM_BODY_LIMIT

FIELD = 900_000  # under Starlette's default part size (1 MB): what a form parser without a cap keeps
BURST_BYTES = 24 * 1024 * 1024
MAX_GROWTH_KB = 6 * 1024


def form_body(size: int) -> bytes:
    """An urlencoded form of `size` bytes, in fields of `FIELD` bytes each."""
    fields, total = [], 0
    while total < size:
        field = f"f{len(fields)}=".encode() + b"a" * min(FIELD, size - total)
        fields.append(field)
        total += len(field) + 1
    return b"&".join(fields)


def raw_post(url: str, path: str, body: bytes, *, chunked: bool, headers: tuple[str, ...] = ()) -> int:
    """POST `body` over a plain socket, as a client that keeps sending would: stops sending as soon
    as the server answers (or closes), and returns the answer's status code."""
    address = urlsplit(url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    with socket.create_connection((host, port), timeout=30) as sock:
        length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
        head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", length, "Connection: close", *headers]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        _send_until_answered(sock, body, chunked=chunked)
        answer = b""
        while b"\r\n" not in answer:
            piece = sock.recv(65536)
            assert piece, "the server closed the connection without an answer"
            answer += piece
    return int(answer.split(b" ", 2)[1])


def _send_until_answered(sock: socket.socket, body: bytes, *, chunked: bool) -> None:
    step = 64 * 1024
    for start in range(0, len(body), step):
        if select.select([sock], [], [], 0)[0]:  # the server has answered: stop sending
            return
        piece = body[start : start + step]
        data = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return
    if chunked:
        try:
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            return


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc")


FORM = "Content-Type: application/x-www-form-urlencoded"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read a process's memory")
def test_oversized_bodies_are_refused_before_they_fill_the_web_process_memory(tmp_path: Path, registry: Any):
    server = Daemon(write_config(tmp_path, registry), command="web", arguments=("--listen", "127.0.0.1:0"))
    try:
        url = server.wait_for("serving the web app on ").split(" on ", 1)[1].split("/ ", 1)[0]
        engine = db.make_engine(f"sqlite:///{tmp_path / 'var' / 'trialwatch.db'}")
        with db.transaction(engine) as session:
            now = datetime.now(UTC)
            people.add_user(session=session, email="m@example.org", password="pass phrase 12", role="member", now=now)
            _info, token = people.create_token(session=session, email="m@example.org", name="t", now=now)
        engine.dispose()
        api = ("Content-Type: application/json", f"Authorization: Bearer {token}")
        small = form_body(FORM_BODY_LIMIT + 1)
        # warm up: every path below once, so what is loaded lazily is loaded before measuring
        for path, headers in (("/login", (FORM,)), ("/setup/x", (FORM,)), ("/api/v1/preview", api)):
            raw_post(url, path, small if path != "/api/v1/preview" else b" " * (API_BODY_LIMIT + 1), chunked=True,
                     headers=headers)  # fmt: skip
        before = rss_kb(server.process.pid)
        big = form_body(BURST_BYTES)
        statuses = [
            raw_post(url, "/login", big, chunked=False, headers=(FORM,)),
            raw_post(url, "/login", big, chunked=True, headers=(FORM,)),
            raw_post(url, "/setup/anything", big, chunked=False, headers=(FORM,)),
            raw_post(url, "/setup/anything", big, chunked=True, headers=(FORM,)),
            raw_post(url, "/api/v1/preview", b"[" + b" " * BURST_BYTES + b"]", chunked=False, headers=api),
            raw_post(url, "/api/v1/preview", b"[" + b" " * BURST_BYTES + b"]", chunked=True, headers=api),
        ]
        growth = rss_kb(server.process.pid) - before
        assert growth < MAX_GROWTH_KB, f"the web process grew by {growth} kB"
        assert statuses == [413] * 6
    finally:
        assert server.stop(signal.SIGTERM) == 0


def test_a_body_over_the_cap_is_a_clear_413_page_or_json(web_server: WebSite):
    client = web_server.client()
    token = csrf_of(client.get("/login").text)
    form = {"csrf_token": token, "email": "a@example.org", "password": "x" * FORM_BODY_LIMIT}
    page = client.post("/login", data=form)
    assert page.status_code == 413 and "text/html" in page.headers["content-type"]
    assert "larger than this address takes (64 kB at most)" in page.text
    assert page.headers["Cache-Control"] == "no-store" and "frame-ancestors 'none'" in page.headers[
        "Content-Security-Policy"]  # fmt: skip
    api = web_server.api(web_server.token("m@example.org"))
    answer = api.post("/api/v1/preview", data=b"{" + b" " * API_BODY_LIMIT + b"}")
    assert answer.status_code == 413
    assert answer.json() == {"error": "the request body is larger than this address takes (2048 kB at most)"}


def test_forms_under_the_caps_still_work_and_files_are_refused(web_server: WebSite):
    web_server.add_user("a@example.org")
    client = web_server.client()
    assert client.sign_in("a@example.org").status_code == 303  # a normal form, under the cap
    token = csrf_of(client.get("/logout").text)
    upload = client.post("/logout", data={"csrf_token": token}, files={"f": ("a.txt", b"hello")})
    assert upload.status_code == 400
    many = client.post("/logout", data={"csrf_token": token, **{f"f{i}": "" for i in range(600)}})
    assert many.status_code == 400
