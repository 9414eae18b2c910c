"""A webhook on loopback that answers like a chat service's incoming webhook: it records every POST
(Apprise's json:// sends `{version, title, message, attachments, type}`) and answers the scripted
statuses first, then 200."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response


@dataclass
class Webhook:
    server: HTTPServer
    path: str = "/hook"
    received: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in turn, then 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.server.expect_request(self.path, method="POST").respond_with_handler(self._handle)

    def _handle(self, request: Request) -> Response:
        with self.lock:
            self.received.append(json.loads(request.get_data() or b"{}"))
            status = self.statuses.pop(0) if self.statuses else 200
        return Response("ok" if status < 400 else "Internal Server Error", status=status)

    def url(self, scheme: str = "json", auth: str = "") -> str:
        """The Apprise URL of this webhook (json://[auth@]127.0.0.1:PORT/hook)."""
        return f"{scheme}://{auth + '@' if auth else ''}{self.server.host}:{self.server.port}{self.path}"


def start_webhook_server() -> HTTPServer:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    return server
