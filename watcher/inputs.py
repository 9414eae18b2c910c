"""Parsing what a person or a client typed (a query string, a form, a cursor) into numbers, days
and times, the one way every route does it (#25): digits are ASCII digits (`²` or `٣` are not),
numbers are in range for the database's integer columns, days and times fall between
`FIRST_DAY` and `LAST_DAY`, and JSON cursors hold what they should. Anything else is an
`InputError` (a ValueError with one line fit for the person), never an OverflowError or a 500."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time

MAX_ID = 2**31 - 1  # PostgreSQL's integer; also SQLite's ids in practice
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2999, 12, 31)
_WHOLE = re.compile(r"[0-9]{1,10}", re.ASCII)
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_MOMENT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.,+\-Z]{2,30}", re.ASCII)


class InputError(ValueError):
    """The value cannot be read: the message says what was expected."""


def whole_number(text: str, *, name: str, low: int = 0, high: int = MAX_ID) -> int:
    """`text` as a whole number from `low` to `high`, written in ASCII digits."""
    value = text.strip()
    if not _WHOLE.fullmatch(value) or not low <= int(value) <= high:
        raise InputError(f"{name}: expected a whole number from {low} to {high}, got {_shown(text)}")
    return int(value)


def day(text: str, *, name: str) -> date:
    """A day written YYYY-MM-DD, from FIRST_DAY to LAST_DAY."""
    value = text.strip()
    try:
        if not _DAY.fullmatch(value):
            raise ValueError(value)
        parsed = date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{name}: {_shown(text)} is not a date: write it as YYYY-MM-DD") from None
    return in_range(parsed, name)


def moment(text: str, *, name: str) -> datetime:
    """A day (midnight UTC) or an ISO 8601 time (UTC when it names no offset), in range."""
    value = text.strip()
    if _DAY.fullmatch(value):
        return datetime.combine(day(value, name=name), time(), tzinfo=UTC)
    try:
        if not _MOMENT.fullmatch(value):
            raise ValueError(value)
        parsed = datetime.fromisoformat(value)
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InputError(f"{name}: expected a date (2026-11-01) or an ISO 8601 time, got {_shown(text)}") from None
    in_range(parsed.date(), name)
    return parsed


def in_range(value: date, name: str) -> date:
    if not FIRST_DAY <= value <= LAST_DAY:
        raise InputError(f"{name}: {value.isoformat()} is out of range ({FIRST_DAY.year} to {LAST_DAY.year})")
    return value


def _shown(text: str) -> str:
    return repr(text[:40] + ("…" if len(text) > 40 else ""))
