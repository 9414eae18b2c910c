"""Signals noted before the command line is imported (about a second), for `trialwatch run`.

The entry point installs `note` for SIGTERM / SIGINT / SIGHUP when the command is `run`, so a
daemon asked to stop while it starts exits cleanly (0) instead of being killed half-way; other
commands keep Python's usual Ctrl-C. `run` takes over the noted signals (scheduler.EarlySignals).
"""

from __future__ import annotations

import signal
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
RECEIVED: list[int] = []


def note(signum: int, _frame: FrameType | None) -> None:
    RECEIVED.append(signum)


def install() -> None:
    for sig in SIGNALS:
        signal.signal(sig, note)
