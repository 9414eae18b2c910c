""" "Send a test" on a watch page: one short message to a channel, sent in a small pool of its own
(Apprise blocks; never in the event loop, never in the pool that serves pages), within a deadline."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from watcher.channels import masked
from watcher.mail.channel import ChannelSender, test_message
from watcher.mail.transport import DeliveryFailed

TEST_TIMEOUT = 15.0  # seconds Apprise is given for one test message
_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()


@dataclass(frozen=True)
class ChannelTest:
    channel: str  # masked
    ok: bool
    answer: str


def _pool() -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=2, thread_name_prefix="channel-test"))
        return _POOL[0]


def _send(url: str, watch: str) -> ChannelTest:
    shown = masked(url)
    try:
        answer = ChannelSender(timeout=TEST_TIMEOUT).send(url, test_message(watch))
    except DeliveryFailed as exc:
        return ChannelTest(shown, False, exc.one_line())
    return ChannelTest(shown, True, answer)


async def send_test(url: str, watch: str) -> ChannelTest:
    """What the channel answered to one test message (a failure or a time-out is an answer too)."""
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(loop.run_in_executor(_pool(), _send, url, watch), TEST_TIMEOUT + 5)
    except TimeoutError:
        return ChannelTest(masked(url), False, f"no answer within {TEST_TIMEOUT + 5:g} s")
