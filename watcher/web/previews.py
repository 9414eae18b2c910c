"""Registry previews (the API's `POST /api/v1/preview` and the form's Preview) on a small pool of
their own (#25): the web's shared thread pool stays free for pages. A preview has an overall
deadline (past it the person gets an answer saying so, and the preview stops at its next pause),
each user may have `PER_USER` previews running at once and everyone together `IN_FLIGHT`;
past either, `TooManyPreviews` (429). What a preview reads is bounded in watch_data.run_preview.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor

from starlette.requests import Request

from watcher.config import ClinicalTrialsConfig
from watcher.store.people import Person
from watcher.watch import WatchConfig
from watcher.web.auth import context_of
from watcher.web.watch_data import Preview, run_preview

WORKERS = 2
PER_USER = 2
IN_FLIGHT = 8
DEADLINE_SECONDS = 30.0


class TooManyPreviews(Exception):
    """This user (or everyone) has as many previews running as allowed: the message says which."""


class PreviewRunner:
    """The previews' own bounded executor, with the limits above."""

    def __init__(
        self, *, workers: int = WORKERS, per_user: int = PER_USER, in_flight: int = IN_FLIGHT,
        deadline: float = DEADLINE_SECONDS,
    ) -> None:  # fmt: skip
        self.per_user, self.in_flight, self.deadline = per_user, in_flight, deadline
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="preview")
        self._running: Counter[int] = Counter()
        self._stopping: set[threading.Event] = set()
        self._lock = threading.Lock()

    def _admit(self, user_id: int) -> None:
        with self._lock:
            if self._running[user_id] >= self.per_user:
                raise TooManyPreviews(f"you have {self.per_user} previews running: wait for them to finish")
            if self._running.total() >= self.in_flight:
                raise TooManyPreviews("too many previews are running right now: try again in a minute")
            self._running[user_id] += 1

    def running(self) -> int:
        """How many previews are admitted and not finished."""
        with self._lock:
            return self._running.total()

    def _done(self, user_id: int, stopping: threading.Event | None = None) -> None:
        with self._lock:
            if stopping is not None:
                self._stopping.discard(stopping)
            self._running[user_id] -= 1
            if self._running[user_id] <= 0:
                del self._running[user_id]

    async def run(self, user_id: int, config: ClinicalTrialsConfig, watch: WatchConfig) -> Preview:
        """The preview of `watch`, or a Preview with an error once the deadline passes."""
        self._admit(user_id)
        stopping = threading.Event()
        try:
            future: Future[Preview] = self._executor.submit(run_preview, config, watch, stopping)
        except RuntimeError:  # shut down: the server is stopping
            self._done(user_id)
            return Preview(count=0, error="the server is stopping: try again in a minute")
        with self._lock:
            self._stopping.add(stopping)
        future.add_done_callback(lambda _future: self._done(user_id, stopping))  # counted until its thread ends
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.deadline)
        except TimeoutError:
            stopping.set()
            return Preview(count=0, error=f"no answer within {self.deadline:g} s: try again later")

    def shutdown(self) -> None:
        """The server stops: queued previews are dropped, running ones stop at their next pause."""
        with self._lock:
            for stopping in self._stopping:
                stopping.set()
        self._executor.shutdown(wait=False, cancel_futures=True)


async def preview_for(request: Request, user: Person, watch: WatchConfig) -> Preview:
    """`watch` previewed for `user` on the app's runner (TooManyPreviews past the limits)."""
    runner: PreviewRunner = request.app.state.previews
    assert user.id is not None
    return await runner.run(user.id, context_of(request).config().clinicaltrials, watch)
