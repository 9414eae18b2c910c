"""A digest's "Coming up" section per watch: primary completions (estimated or actual) and US
results falling due in the next `[digest] upcoming_days` (default 90), soonest first, at most ten
lines (watcher.milestones.coming_up); none for a watch with `upcoming = false`, nor when empty."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlmodel import Session

from watcher.config import Config
from watcher.milestones import DateEvent, coming_up
from watcher.store.milestones import held_studies


def coming_up_for(
    *, session: Session, config: Config, watches: Sequence[str], today: date
) -> dict[str, list[DateEvent]]:
    """By watch name, the dates ahead of each of `watches` that shows them."""
    days = config.digest.upcoming_days
    wanted = {watch.name for watch in config.watch if watch.upcoming}
    found: dict[str, list[DateEvent]] = {}
    if days <= 0:
        return found
    for name in watches:
        if name in wanted:
            events = coming_up([study.facts for study in held_studies(session=session, watch=name)], today, days)
            if events:
                found[name] = events
    return found
