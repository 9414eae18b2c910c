"""delivery.py: when digests are due, across days, weeks and daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from watcher.config import DigestConfig
from watcher.mail.delivery import last_slot

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


@pytest.mark.parametrize("at", [time(2, 30), time(2, 0), time(1, 59), time(3, 0), time(0, 0), time(23, 59)])
@pytest.mark.parametrize("day", [datetime(2027, 3, 27), datetime(2026, 10, 24)])
def test_a_time_in_the_skipped_or_repeated_hour_gives_one_slot_a_day(day, at):
    paris = DigestConfig(time=at, weekday="monday", timezone="Europe/Paris")
    start = day.replace(tzinfo=UTC)
    moments = [start + timedelta(minutes=5 * i) for i in range(12 * 24 * 3)]
    slots = {last_slot("daily", paris, moment) for moment in moments}
    slots.discard(None)
    assert all(
        slot is not None and slot <= moment for slot, moment in ((last_slot("daily", paris, m), m) for m in moments)
    )
    local_days = sorted(slot.astimezone(paris.zone).date() for slot in slots if slot is not None)
    assert len(local_days) == len(set(local_days))  # never two slots on one local day
    first = day.date() if local_days[0] == day.date() else day.date() - timedelta(days=1)
    assert local_days == [first + timedelta(days=n) for n in range(len(local_days))]  # and none skipped
    final = moments[-1].astimezone(paris.zone)
    assert local_days[-1] == (final.date() if final.time() >= at else final.date() - timedelta(days=1))


@pytest.mark.parametrize("weekday", ["sunday", "monday"])
def test_weekly_across_the_dst_change_gives_one_slot_a_week(weekday):
    paris = DigestConfig(time=time(2, 30), weekday=weekday, timezone="Europe/Paris")
    start = utc(2027, 3, 20)
    slots = {last_slot("weekly", paris, start + timedelta(minutes=10 * i)) for i in range(6 * 24 * 21)}
    assert len(slots) == 4  # the week before plus three weeks
