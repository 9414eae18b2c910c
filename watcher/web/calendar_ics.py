"""Pure: a watch's dated study events as an iCalendar feed (RFC 5545), written with `icalendar`.

Each held study gives up to three all-day events (watcher.milestones.date_events): primary
completion, completion and, while US results are owed, results due. An event's UID is made of the
study and the event alone (`NCT05805501-primary_completion@host`), so it is the same on every
fetch; when its day moves, its SEQUENCE grows (store.milestones keeps the count), so a calendar
app moves the event instead of adding another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from watcher.milestones import DateEvent

PRODID = "-//trialwatch//study dates//EN"


def event_uid(public_url: str, event: DateEvent) -> str:
    host = urlsplit(public_url).hostname or "localhost"
    return f"{event.nct_id}-{event.what.replace('_', '-')}@{host}"


def render_calendar(
    *,
    watch: str,
    events: Sequence[DateEvent],
    sequences: Mapping[tuple[str, str], int],
    public_url: str,
    generated_at: datetime,
) -> bytes:
    """The feed's bytes; `sequences` by (NCT id, event), 0 when absent."""
    from icalendar import Calendar, Event  # when a calendar is asked for, not at the app's start

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", f"trialwatch: {watch}")
    base = public_url.rstrip("/")
    for event in sorted(events, key=lambda e: (e.day, e.nct_id, e.what)):
        link = f"{base}/studies/{event.nct_id}"
        item = Event()
        item.add("uid", event_uid(public_url, event))
        item.add("dtstamp", generated_at)
        item.add("dtstart", event.day)
        item.add("dtend", event.day + timedelta(days=1))
        item.add("summary", f"{event.nct_id} {event.label}: {event.title}")
        item.add("description", f"{event.label.capitalize()} of {event.nct_id}, {event.title}.\n{link}")
        item.add("url", link)
        item.add("sequence", sequences.get((event.nct_id, event.what), 0))
        item.add("transp", "TRANSPARENT")
        calendar.add_component(item)
    return bytes(calendar.to_ical())
