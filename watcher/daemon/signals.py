"""Signals noted before the command line is imported (about a second), for `trialwatch run`.

The entry point installs `note` for SIGTERM / SIGINT / SIGHUP when the command is `run`, so a
daemon asked to stop while it starts exits cleanly (0) instead of being killed half-way; other
commands keep Python's usual Ctrl-C. `run` installs them too (idempotent), acts on what was
noted once its scheduler runs (scheduler.run_forever) and puts the original handlers back at the
end (`restore`).
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
RECEIVED: list[int] = []
_ORIGINAL: dict[int, Any] = {}  # the handlers before the first install


def note(signum: int, _frame: FrameType | None) -> None:
    RECEIVED.append(signum)


def install() -> None:
    for sig in SIGNALS:
        _ORIGINAL.setdefault(sig, signal.signal(sig, note))


def stop_requested() -> bool:
    return any(sig != signal.SIGHUP for sig in RECEIVED)


def restore() -> None:
    for sig, handler in _ORIGINAL.items():
        signal.signal(sig, handler)
    _ORIGINAL.clear()
