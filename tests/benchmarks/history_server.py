"""The registry's version history for `make bench`, in its own process (serving never competes
with the client measured): every answer is pre-built bytes held in memory.

Usage: python -m tests.benchmarks.history_server FILE -- FILE holds one JSON object per line,
{"path": "/api/int/studies/NCT…", "body": {...}}; prints the port, then serves GET of those paths
(the query string is ignored) and 404 for anything else.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


def handler(answers: dict[str, bytes]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body leave at once: no 40 ms delayed-ACK stall

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = answers.get(urlsplit(self.path).path)
            self.send_response(200 if body is not None else 404)
            body = body if body is not None else b"not found"
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def main() -> None:
    answers = {}
    with Path(sys.argv[1]).open("rb") as lines:
        for line in lines:
            item = json.loads(line)
            answers[item["path"]] = json.dumps(item["body"]).encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(answers))
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
