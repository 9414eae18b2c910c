"""A trickling server: `requests`' timeout bounds each read, not the request, so a server sending
its answer a byte every few seconds held a poll for as long as it liked. Every request made
through watcher.http's session has a total deadline (`[http] request_deadline`): past it, the
request fails at once, is not retried, and the poll fails with a line that says so."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fault_servers import Slow, http_answer, slow_server
from tests.harness import Cli, write_config
from watcher.errors import SourceError
from watcher.http import HttpClient, make_session
from watcher.literature.fetch import fetch_feed
from watcher.store.models import FeedState

BODY = b'{"studies": [], "totalCount": 0}' + b" " * 200
HEAD_ONLY = http_answer(BODY)[: -len(BODY)]


def test_a_body_trickled_byte_by_byte_fails_at_the_deadline_and_is_not_retried() -> None:
    with slow_server(Slow(at_once=HEAD_ONLY, trickle=BODY, interval=0.05, http=True)) as server:
        client = HttpClient(session=make_session(request_deadline=0.5), timeout=30, attempts=3, backoff=0)
        with pytest.raises(SourceError, match=r"no complete answer within 0.5s \(\[http\] request_deadline\)"):
            client.get_json(f"{server.url}/studies")
        assert server.connections == 1  # a deadline passed is not retried: the poll fails


def test_headers_trickled_byte_by_byte_fail_at_the_deadline() -> None:
    with slow_server(Slow(trickle=http_answer(BODY), interval=0.05, http=True)) as server:
        client = HttpClient(session=make_session(request_deadline=0.5), timeout=30, attempts=3, backoff=0)
        with pytest.raises(SourceError, match="request_deadline"):
            client.fetch_bytes(f"{server.url}/esearch.fcgi", form={"term": "x"})


def test_the_same_session_answers_normally_after_a_deadline_passed() -> None:
    fast = {"/fast": {"ok": True}}
    with slow_server(Slow(at_once=HEAD_ONLY, trickle=BODY, interval=0.05, http=True, fast=fast)) as server:
        client = HttpClient(session=make_session(request_deadline=0.5), timeout=30, attempts=1)
        with pytest.raises(SourceError, match="request_deadline"):
            client.get_json(f"{server.url}/slow")
        assert client.get_json(f"{server.url}/fast") == {"ok": True}
        assert client.get_json(f"{server.url}/fast") == {"ok": True}


def test_a_trickling_feed_fails_its_poll_at_the_deadline() -> None:
    rss = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>' + b" " * 100
    head = http_answer(rss, "application/rss+xml")[: -len(rss)]
    slow = Slow(at_once=head, trickle=rss, interval=0.05, http=True)
    with slow_server(slow) as server, pytest.raises(SourceError, match="request_deadline"):
        fetch_feed(
            session=make_session(request_deadline=0.5), state=FeedState(url=f"{server.url}/feed.rss"),
            timeout=30, now=datetime(2026, 11, 21, tzinfo=UTC),
        )  # fmt: skip


def test_a_poll_against_a_trickling_registry_fails_with_a_clear_line(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    version = {"/api/v2/version": {"apiVersion": "2.0.5", "dataTimestamp": "2026-11-24T09:00:04"}}
    slow = Slow(at_once=HEAD_ONLY, trickle=BODY, interval=0.05, http=True, fast=version)
    with slow_server(slow) as server:
        registry = type("Registry", (), {"base_url": f"{server.url}/api/v2"})()
        config = write_config(tmp_path, registry)
        config.write_text("[http]\nrequest_deadline = 0.5\n" + config.read_text())
        output = Cli(config)("poll", code=1)
    assert "RCC bispecifics: FAILED" in output
    assert "no complete answer within 0.5s ([http] request_deadline)" in output
