"""The manage page's form (routes_recipients): one fieldset per watch, numbered, read back into
`Choice`s or errors named after the field they concern. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from watcher.store.recipients import PAUSE_CHANGES, SCHEDULES


@dataclass(frozen=True)
class Choice:
    watch: str
    subscribed: bool
    schedule: str | None  # None: the watch's
    paused_until: date | None  # mail resumes on this day
    pause_changes: str


def pause_day(paused_until: datetime | None, zone: ZoneInfo) -> str:
    """The form's value for a running pause: the day mail resumes (YYYY-MM-DD), or ''."""
    return paused_until.astimezone(zone).date().isoformat() if paused_until else ""


def parse_choices(
    form: Mapping[str, object], theirs: Sequence[str], today: date
) -> tuple[list[Choice], dict[str, str]]:
    """The choices of every fieldset naming one of the recipient's watches, or the errors."""
    choices: list[Choice] = []
    errors: dict[str, str] = {}
    index = 0
    while f"watch-{index}" in form:
        name = str(form[f"watch-{index}"])
        if name in theirs:
            choice = _choice(form, index, name, today, errors)
            if choice is not None:
                choices.append(choice)
        index += 1
    return choices, errors


def _choice(form: Mapping[str, object], index: int, name: str, today: date, errors: dict[str, str]) -> Choice | None:
    def value(field: str) -> str:
        return str(form.get(f"{field}-{index}") or "").strip()

    schedule = value("schedule") or None
    if schedule is not None and schedule not in SCHEDULES:
        errors[f"schedule-{index}"] = "Choose immediate, daily or weekly."
    pause_changes = value("pause_changes") or "deliver"
    if pause_changes not in PAUSE_CHANGES:
        errors[f"pause_changes-{index}"] = "Choose to get the pause's news after it, or to skip it."
    paused_until = None
    if value("paused_until"):
        try:
            paused_until = date.fromisoformat(value("paused_until"))
        except ValueError:
            errors[f"paused_until-{index}"] = "Write the day as YYYY-MM-DD, e.g. 2026-12-24."
        else:
            if paused_until <= today:
                errors[f"paused_until-{index}"] = "Pick a day after today: mail resumes on that day."
    if any(key.endswith(f"-{index}") for key in errors):
        return None
    return Choice(
        watch=name, subscribed=value("subscribed") != "no", schedule=schedule, paused_until=paused_until,
        pause_changes=pause_changes,
    )  # fmt: skip
