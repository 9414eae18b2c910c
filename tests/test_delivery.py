"""delivery.py: when digests are due, across days, weeks and daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from watcher.config import DigestConfig
from watcher.delivery import last_slot

PARIS = DigestConfig(time=time(7, 0), weekday="monday", timezone="Europe/Paris")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_immediate_has_no_slot():
    assert last_slot("immediate", PARIS, utc(2026, 11, 24, 12)) is None


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2026, 11, 24, 5, 59), utc(2026, 11, 23, 6, 0)),  # 06:59 in Paris: yesterday's 07:00
        (utc(2026, 11, 24, 6, 0), utc(2026, 11, 24, 6, 0)),  # 07:00 in Paris exactly
        (utc(2026, 7, 1, 5, 30), utc(2026, 7, 1, 5, 0)),  # summer time: 07:00 Paris is 05:00 UTC
    ],
)
def test_daily_slot_is_local_time(now, expected):
    assert last_slot("daily", PARIS, now) == expected


def test_weekly_slot_is_the_last_configured_weekday():
    tuesday = utc(2026, 11, 24, 12)
    assert last_slot("weekly", PARIS, tuesday) == utc(2026, 11, 23, 6, 0)  # Monday 07:00 Paris
    monday_early = utc(2026, 11, 23, 5, 0)
    assert last_slot("weekly", PARIS, monday_early) == utc(2026, 11, 16, 6, 0)


@pytest.mark.parametrize("day", [datetime(2026, 3, 28), datetime(2026, 10, 24)])  # the days before DST changes
def test_dst_transitions_give_exactly_one_slot_a_day(day):
    start = day.replace(tzinfo=UTC)
    slots = {last_slot("daily", PARIS, start + timedelta(minutes=15 * i)) for i in range(4 * 24 * 3)}
    local_days = sorted(slot.astimezone(PARIS.zone).date() for slot in slots)
    assert len(local_days) == len(set(local_days)) == 4  # the day before plus three days, one slot each
    assert all(slot.astimezone(PARIS.zone).time() == time(7, 0) for slot in slots)
