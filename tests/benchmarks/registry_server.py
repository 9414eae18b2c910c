"""A ClinicalTrials.gov look-alike for `make bench`, run in its own process so that serving never
competes with the client being measured. Every answer is pre-built bytes held in memory.

Usage: python -m tests.benchmarks.registry_server FOLDER -- prints the port, then serves:
- GET /api/v2/version, GET /api/v2/studies (pageSize, pageToken, filter.advanced on
  LastUpdatePostDate; every other query parameter is accepted and ignored);
- POST /_state/NAME: serve FOLDER/NAME.jsonl (one record per line) from now on, with a new
  dataTimestamp (like the registry's daily refresh);
- POST /_update/NAME: the records of FOLDER/NAME.jsonl replace those with the same NCT id (the
  soak's day of changes, without writing the whole registry again), with a new dataTimestamp.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

SINCE = re.compile(r"AREA\[LastUpdatePostDate\]RANGE\[(\d{4}-\d{2}-\d{2}),MAX\]")


class Registry:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.records: list[tuple[str, bytes]] = []
        self.pages: dict[tuple[str, int], list[bytes]] = {}
        self.refreshes = 0
        self.lock = threading.Lock()

    def switch(self, name: str) -> None:
        records = []
        with (self.folder / f"{name}.jsonl").open("rb") as lines:
            for line in lines:
                record = json.loads(line)
                updated = record["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"]
                records.append((updated, line.rstrip(b"\n")))
        with self.lock:
            self.records, self.pages = records, {}
            self.refreshes += 1

    def update(self, name: str) -> None:
        changed = {}
        with (self.folder / f"{name}.jsonl").open("rb") as lines:
            for line in lines:
                record = json.loads(line)
                updated = record["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"]
                changed[record["protocolSection"]["identificationModule"]["nctId"]] = (updated, line.rstrip(b"\n"))
        with self.lock:
            kept = [(updated, raw) for updated, raw in self.records if _nct_id(raw) not in changed]
            self.records, self.pages = kept + list(changed.values()), {}
            self.refreshes += 1

    def version(self) -> bytes:
        stamp = f"2026-11-24T{self.refreshes // 3600:02d}:{self.refreshes // 60 % 60:02d}:{self.refreshes % 60:02d}"
        return json.dumps({"apiVersion": "2.0.5", "dataTimestamp": stamp}).encode()

    def page(self, since: str, size: int, index: int) -> bytes:
        with self.lock:
            key = (since, size)
            if key not in self.pages:
                self.pages[key] = self._build(since, size)
            pages = self.pages[key]
        return pages[index] if index < len(pages) else b'{"studies":[]}'

    def _build(self, since: str, size: int) -> list[bytes]:
        chosen = [raw for updated, raw in self.records if updated >= since]
        pages = []
        for start in range(0, max(len(chosen), 1), size):
            body = b'{"studies":[' + b",".join(chosen[start : start + size]) + b"]"
            if start + size < len(chosen):
                body += b',"nextPageToken":"' + str(start // size + 1).encode() + b'"'
            pages.append(body + b',"totalCount":' + str(len(chosen)).encode() + b"}")
        return pages


NCT_ID = re.compile(rb'"nctId":\s*"(NCT\d{8})"')


def _nct_id(raw: bytes) -> str:
    found = NCT_ID.search(raw)
    return found.group(1).decode() if found else ""


def handler(registry: Registry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            url = urlsplit(self.path)
            params = {key: values[0] for key, values in parse_qs(url.query).items()}
            if url.path == "/api/v2/version":
                return self._send(registry.version())
            if url.path == "/api/v2/studies":
                match = SINCE.fullmatch(params.get("filter.advanced", ""))
                since = match.group(1) if match else ""
                size = min(int(params.get("pageSize", "10")), 1000)
                return self._send(registry.page(since, size, int(params.get("pageToken", "0"))))
            self._send(b"not found", status=404)

        def do_POST(self) -> None:  # noqa: N802
            if self.path.startswith("/_update/"):
                registry.update(self.path.removeprefix("/_update/"))
            else:
                registry.switch(self.path.removeprefix("/_state/"))
            self._send(b"{}")

        def _send(self, body: bytes, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def main() -> None:
    registry = Registry(Path(sys.argv[1]))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(registry))
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
