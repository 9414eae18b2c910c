"""Intervals as config files write them ('90s', '15m', '6h', '1d', '1w'), for every config section
(watcher.config, watcher.pubmed_config: each imports this, neither the other, #25)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

_INTERVAL = re.compile(r"^\s*([0-9]{1,7})\s*([smhdw])\s*$", re.ASCII)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MIN_INTERVAL = timedelta(minutes=1)


def parse_interval(value: Any) -> timedelta:
    """'90s', '15m', '6h', '1d', '1w' -> timedelta; at least one minute."""
    if isinstance(value, timedelta):
        return value
    match = _INTERVAL.match(str(value)) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"bad interval {value!r}: write a number and a unit, e.g. '6h', '30m', '1d'")
    interval = timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if interval < MIN_INTERVAL:
        raise ValueError(f"interval {value!r} is shorter than one minute")
    return interval


Interval = Annotated[timedelta, BeforeValidator(parse_interval)]
