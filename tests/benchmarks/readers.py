"""Readers during a sync: 50 concurrent readers on /changes, a study page and /api/v1/changes
while a first sync writes the SQLite database (issue #26). `read_while` is shared by the test
(tests/test_faults_readers.py: no error, no "database is locked", never a timing) and by the
benchmark (`python -m tests.benchmarks.readers [STUDIES]`, part of `make bench`: p50/p99/max of
each path during a first sync of 3,000 studies, against the same readers once the sync is over).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

READERS = 50


@dataclass
class Reads:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # 5xx, "database is locked", a failed request
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str, seconds: float, status: int, body: str) -> None:
        with self.lock:
            self.latencies.setdefault(path, []).append(seconds)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status >= 500 or "database is locked" in body:
                self.errors.append(f"{path}: HTTP {status}: {body[:200]}")

    def lines(self) -> list[str]:
        return [f"{path:28s} {summary(values)}" for path, values in sorted(self.latencies.items())]


def summary(values: list[float]) -> str:
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(int(share * len(ordered)), len(ordered) - 1)] * 1000

    return f"{len(ordered):6d} reads, p50 {at(0.5):7.1f} ms, p99 {at(0.99):7.1f} ms, max {ordered[-1] * 1000:7.1f} ms"


def read_while(
    base_url: str, paths: list[str], busy: Callable[[], bool], *, cookies: dict[str, str], token: str,
    readers: int = READERS, rounds_after: int = 1,
) -> Reads:  # fmt: skip
    """`readers` threads, each cycling through `paths` while `busy()` (and `rounds_after` rounds
    more); a path under /api/ is read with the bearer `token`, the others with the `cookies`."""
    reads = Reads()

    def reader(offset: int) -> None:
        with requests.Session() as session:
            session.cookies.update(cookies)
            done, step = 0, offset
            while busy() or done < rounds_after * len(paths):
                path = paths[step % len(paths)]
                step += 1
                done += 0 if busy() else 1
                headers = {"Authorization": f"Bearer {token}"} if path.startswith("/api/") else {}
                started = time.perf_counter()
                try:
                    response = session.get(base_url + path, headers=headers, timeout=60)
                except requests.RequestException as exc:
                    with reads.lock:
                        reads.errors.append(f"{path}: {exc}")
                    continue
                reads.add(path, time.perf_counter() - started, response.status_code, response.text)

    threads = [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return reads


# --- the benchmark ------------------------------------------------------------------------------


def bench_readers(count: int = 3000) -> None:
    from tests.benchmarks.bench import Server, states_in_child, trialwatch, write_config

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        states_in_child(folder, count)
        server = Server(folder)
        web: subprocess.Popen[str] | None = None
        try:
            server.serve("base")
            config = write_config(folder, server.base_url)
            trialwatch(config, "db", "upgrade")
            web, base_url = start_web(config)
            cookies, token = sign_in(config, base_url)
            paths = ["/changes", "/studies/NCT08000000", "/api/v1/changes"]
            poll = subprocess.Popen([sys.executable, "-m", "watcher", "--config", str(config), "poll"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
            during = read_while(base_url, paths, lambda: poll.poll() is None, cookies=cookies, token=token)
            if poll.wait() != 0:
                raise SystemExit(f"the first sync failed: {poll.stderr.read() if poll.stderr else ''}")
            ends = time.monotonic() + 10
            after = read_while(base_url, paths, lambda: time.monotonic() < ends, cookies=cookies, token=token)
        finally:
            if web is not None:
                web.terminate()
                web.wait()
            server.stop()
    print(f"{READERS} readers during a first sync of {count} studies (SQLite): "
          f"{len(during.errors)} errors, statuses {dict(sorted(during.statuses.items()))}")  # fmt: skip
    for line in during.lines():
        print(f"  during  {line}")
    for line in after.lines():
        print(f"  after   {line}")
    for path in paths:
        p99 = sorted(during.latencies[path])[int(0.99 * len(during.latencies[path]))]
        floor = sorted(after.latencies[path])[int(0.99 * len(after.latencies[path]))]
        print(f"  p99 {path}: {p99 / floor:.2f}x the same readers' once the sync is over")


def start_web(config: Path) -> tuple[subprocess.Popen[str], str]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "watcher", "--config", str(config), "web", "--listen", f"127.0.0.1:{port}"]
    web = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    base_url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            requests.get(base_url + "/healthz", timeout=1)
            return web, base_url
        except requests.ConnectionError:
            time.sleep(0.1)
    raise SystemExit("the web app did not start")


def sign_in(config: Path, base_url: str) -> tuple[dict[str, str], str]:
    from tests.web_support import WebClient

    password = secrets.token_urlsafe(16)
    command = [sys.executable, "-m", "watcher", "--config", str(config)]
    subprocess.run([*command, "user", "add", "reader@example.org", "--password-stdin"], input=password,
                   text=True, check=True, capture_output=True)  # fmt: skip
    token = subprocess.run([*command, "token", "create", "reader@example.org"], text=True, check=True,
                           capture_output=True).stdout.strip()  # fmt: skip
    client = WebClient(base_url)
    response = client.sign_in("reader@example.org", password)
    if response.status_code != 303:
        raise SystemExit(f"cannot sign in: HTTP {response.status_code}")
    return dict(client.session.cookies), token


if __name__ == "__main__":
    os.environ.setdefault("TRIALWATCH_SECRET_KEY", secrets.token_urlsafe(48))
    bench_readers(int(sys.argv[1]) if sys.argv[1:] else 3000)
