"""Pure: what is coming and what is late for one study, from its stored record and a day.

US results reporting (FDAAA 801, 42 CFR 11.44) as FDAAA TrialsTracker applies it:

- *applicable*: interventional (`designModule.studyType`), FDA-regulated drug or device
  (`oversightModule.isFdaRegulatedDrug` / `isFdaRegulatedDevice`), not phase 1 alone (`phases`
  exactly [PHASE1] or [EARLY_PHASE1]), not a device feasibility study (`primaryPurpose`), not
  withdrawn, and started on or after 2017-01-18, or before it but completed on or after it;
- *due*: primary completion (completion when it has none; a month-only date is that month's last
  day, a year-only one the year's) + 365 days; with a certificate of delay
  (`statusModule.dispFirstSubmitDate`) + 3 × 365 days; *overdue* only 30 days after that;
- *reported*: `resultsFirstSubmitDate` set (results under quality control count); *late* when
  submitted after the due date.

Each verdict carries its reasons in words (`Verdict.explain()`), for the study page and the CLI.
The clock is the caller's: every function takes `today`.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from watcher.model import ChangeKind, DatePoint, get_path

FDAAA_FINAL_RULE = date(2017, 1, 18)
ONE_YEAR = timedelta(days=365)
WITH_DELAY = timedelta(days=3 * 365)
GRACE = timedelta(days=30)  # overdue only this long after the due date
STALE_AFTER = timedelta(days=30)  # an estimated date this far in the past: the record is stale
DUE_SOON_DAYS = 60
UPCOMING_DAYS = 90
UPCOMING_LINES = 10
_DATE = re.compile(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?")


class DueState(StrEnum):
    NOT_APPLICABLE = "not_applicable"
    ONGOING = "ongoing"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"
    REPORTED = "reported"
    REPORTED_LATE = "reported_late"


def last_day(value: str | None) -> date | None:
    """A registry date as a day: 'yyyy-MM-dd' itself, 'yyyy-MM' its month's last day, 'yyyy' Dec 31."""
    match = _DATE.fullmatch((value or "").strip())
    if not match:
        return None
    year, month, day = int(match.group(1)), match.group(2), match.group(3)
    try:
        if month is None:
            return date(year, 12, 31)
        if day is None:
            return date(year, int(month), calendar.monthrange(year, int(month))[1])
        return date(year, int(month), int(day))
    except ValueError:
        return None


@dataclass(frozen=True)
class DueFacts:
    """What the rules read from one record."""

    nct_id: str
    title: str
    study_type: str | None
    fda_drug: bool
    fda_device: bool
    phases: tuple[str, ...]
    primary_purpose: str | None
    status: str
    start: DatePoint
    primary_completion: DatePoint
    completion: DatePoint
    delay_certificate: str | None  # dispFirstSubmitDate
    results_submitted: str | None  # resultsFirstSubmitDate

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> DueFacts:
        status = get_path(record, "protocolSection.statusModule") or {}
        design = get_path(record, "protocolSection.designModule") or {}
        oversight = get_path(record, "protocolSection.oversightModule") or {}
        ident = get_path(record, "protocolSection.identificationModule") or {}
        nct_id = str(ident.get("nctId") or "")
        return cls(
            nct_id=nct_id,
            title=str(ident.get("briefTitle") or ident.get("officialTitle") or nct_id),
            study_type=design.get("studyType"),
            fda_drug=oversight.get("isFdaRegulatedDrug") is True,
            fda_device=oversight.get("isFdaRegulatedDevice") is True,
            phases=tuple(str(p) for p in design.get("phases") or ()),
            primary_purpose=(design.get("designInfo") or {}).get("primaryPurpose"),
            status=str(status.get("overallStatus") or "UNKNOWN"),
            start=DatePoint.from_struct(status.get("startDateStruct")),
            primary_completion=DatePoint.from_struct(status.get("primaryCompletionDateStruct")),
            completion=DatePoint.from_struct(status.get("completionDateStruct")),
            delay_certificate=status.get("dispFirstSubmitDate"),
            results_submitted=status.get("resultsFirstSubmitDate"),
        )

    @property
    def basis(self) -> tuple[str, DatePoint]:
        """The date results are counted from: primary completion, or completion without one."""
        if last_day(self.primary_completion.value) is not None:
            return "primary completion", self.primary_completion
        return "completion", self.completion


@dataclass(frozen=True)
class Verdict:
    nct_id: str
    title: str
    state: DueState
    due: date | None  # None: not applicable, or no completion date to count from
    reasons: tuple[str, ...]  # why (not) applicable, in words
    basis: str = ""  # "primary completion 2025-10-31 (actual) + 1 year"
    reported_on: date | None = None

    @property
    def applicable(self) -> bool:
        return self.state is not DueState.NOT_APPLICABLE

    @property
    def overdue_from(self) -> date | None:
        """The first day the study is overdue (30 days of grace after the due date)."""
        return self.due + GRACE + timedelta(days=1) if self.due else None

    def explain(self) -> str:
        """'due 2026-10-31: primary completion 2025-10-31 + 1 year; FDA-regulated drug; phase 2'."""
        why = "; ".join(self.reasons)
        if self.state is DueState.NOT_APPLICABLE:
            return f"US results reporting does not apply: {why}"
        if self.due is None:
            return f"results due one year after primary completion, which the record does not give; {why}"
        head = {
            DueState.ONGOING: f"due {self.due}",
            DueState.DUE_SOON: f"due soon, {self.due}",
            DueState.OVERDUE: f"overdue since {self.overdue_from}: due {self.due}, no results submitted",
            DueState.REPORTED: f"reported {self.reported_on}, on time: due {self.due}",
            DueState.REPORTED_LATE: f"reported late, {self.reported_on}: due {self.due}",
        }[self.state]
        return f"{head}: {self.basis}; {why}"

    def as_json(self) -> dict[str, Any]:
        return {
            "nct_id": self.nct_id, "title": self.title, "state": str(self.state), "applicable": self.applicable,
            "due": _iso(self.due), "overdue_from": _iso(self.overdue_from) if self.applicable else None,
            "reported_on": _iso(self.reported_on), "explanation": self.explain(),
        }  # fmt: skip


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _phase_words(phases: tuple[str, ...]) -> str:
    words = [
        p.replace("EARLY_PHASE", "early phase ").replace("PHASE", "phase ").replace("NA", "no phase") for p in phases
    ]
    return "/".join(words) or "no phase given"


def applicability(facts: DueFacts) -> tuple[bool, tuple[str, ...]]:
    """Whether US results reporting applies, and why (or why not) in words."""
    regulated = " and ".join(w for w, flag in (("drug", facts.fda_drug), ("device", facts.fda_device)) if flag)
    start, end = last_day(facts.start.value), last_day(facts.basis[1].value)
    refusals = [
        (
            facts.study_type != "INTERVENTIONAL",
            f"not interventional ({(facts.study_type or 'type not given').lower()})",
        ),
        (not regulated, "not an FDA-regulated drug or device"),
        (facts.phases in (("PHASE1",), ("EARLY_PHASE1",)), f"{_phase_words(facts.phases)} only"),
        (facts.primary_purpose == "DEVICE_FEASIBILITY", "a device feasibility study"),
        (facts.status == "WITHDRAWN", "withdrawn"),
        (
            start is not None and start < FDAAA_FINAL_RULE and (end is None or end < FDAAA_FINAL_RULE),
            f"started {facts.start.value} and completed before {FDAAA_FINAL_RULE}",
        ),
    ]
    refused = tuple(reason for failed, reason in refusals if failed)
    if refused:
        return False, refused
    reasons = [f"FDA-regulated {regulated}", _phase_words(facts.phases)]
    if start is not None and start < FDAAA_FINAL_RULE:
        reasons.append(f"started {facts.start.value}, before {FDAAA_FINAL_RULE}, completed after it")
    return True, tuple(reasons)


def due_date(facts: DueFacts) -> tuple[date | None, str]:
    """The day results are due, and how it was counted in words."""
    label, point = facts.basis
    day = last_day(point.value)
    if day is None:
        return None, ""
    written = point.value if day.isoformat() == point.value else f"{point.value} (taken as {day})"
    kind = f" ({point.type.lower()})" if point.type else ""
    if facts.delay_certificate:
        return day + WITH_DELAY, f"{label} {written}{kind} + 3 years (certificate of delay {facts.delay_certificate})"
    return day + ONE_YEAR, f"{label} {written}{kind} + 1 year"


def judge_due(facts: DueFacts, today: date, due_soon_days: int = DUE_SOON_DAYS) -> Verdict:
    """The study's verdict on `today`."""
    applies, reasons = applicability(facts)
    if not applies:
        return Verdict(facts.nct_id, facts.title, DueState.NOT_APPLICABLE, None, reasons)
    due, basis = due_date(facts)
    reported = last_day(facts.results_submitted) if facts.results_submitted else None
    if reported is not None:
        state = DueState.REPORTED_LATE if due is not None and reported > due else DueState.REPORTED
    elif due is None or today < due - timedelta(days=due_soon_days):
        state = DueState.ONGOING
    elif today <= due + GRACE:
        state = DueState.DUE_SOON
    else:
        state = DueState.OVERDUE
    return Verdict(facts.nct_id, facts.title, state, due, reasons, basis=basis, reported_on=reported)


# --- what happened on a day: the change kinds results_overdue and estimated_date_passed ---------


@dataclass(frozen=True)
class Milestone:
    """Something that happened to a study by `today` without a new record: told once per
    (watch, study, kind, marker)."""

    kind: ChangeKind
    marker: str  # results_overdue: "" (once per study); estimated_date_passed: the date
    occurred: date
    summary: str
    details: dict[str, Any]


def milestones(facts: DueFacts, today: date, due_soon_days: int = DUE_SOON_DAYS) -> list[Milestone]:
    """The milestones the study has reached by `today`."""
    found = []
    verdict = judge_due(facts, today, due_soon_days)
    if verdict.state is DueState.OVERDUE and verdict.due is not None and verdict.overdue_from is not None:
        summary = f"Results overdue: due {verdict.due} ({verdict.basis}), none submitted 30 days later."
        details = {"due": verdict.due.isoformat(), "overdue_from": verdict.overdue_from.isoformat(),
                   "explanation": verdict.explain()}  # fmt: skip
        found.append(Milestone(ChangeKind.RESULTS_OVERDUE, "", verdict.overdue_from, summary, details))
    stale = stale_estimate(facts, today)
    if stale is not None:
        value = facts.primary_completion.value or ""
        summary = (
            f"Primary completion {value} is still marked estimated, {(today - stale).days} days after it passed: "
            "the record looks stale."
        )
        passed: dict[str, Any] = {"primary_completion": facts.primary_completion.as_dict(), "passed": str(stale)}
        found.append(Milestone(ChangeKind.ESTIMATED_DATE_PASSED, value, stale + STALE_AFTER + timedelta(days=1),
                               summary, passed))  # fmt: skip
    return found


def stale_estimate(facts: DueFacts, today: date) -> date | None:
    """The primary completion day when it is still estimated more than 30 days after it passed."""
    point = facts.primary_completion
    day = last_day(point.value)
    if point.type != "ESTIMATED" or day is None or today - day <= STALE_AFTER:
        return None
    return day


# --- dates ahead: the digest's "Coming up" and the calendar ---------------------------------------

EVENT_LABELS = {
    "primary_completion": "primary completion",
    "completion": "completion",
    "results_due": "results due",
}


@dataclass(frozen=True)
class DateEvent:
    nct_id: str
    title: str
    what: str  # primary_completion | completion | results_due
    day: date
    estimated: bool = False

    @property
    def label(self) -> str:
        return EVENT_LABELS[self.what] + (" (estimated)" if self.estimated else "")

    def line(self) -> str:
        """'2027-01-31 · NCT05805501 primary completion (estimated): A Study of …'"""
        return f"{self.day} · {self.nct_id} {self.label}: {self.title}"


def date_events(facts: DueFacts, today: date, due_soon_days: int = DUE_SOON_DAYS) -> list[DateEvent]:
    """A study's primary completion, completion and (when US reporting applies and results are not
    in) results due date, as events."""
    events = []
    for what, point in (("primary_completion", facts.primary_completion), ("completion", facts.completion)):
        day = last_day(point.value)
        if day is not None:
            events.append(DateEvent(facts.nct_id, facts.title, what, day, point.type == "ESTIMATED"))
    verdict = judge_due(facts, today, due_soon_days)
    if verdict.due is not None and verdict.state in (DueState.ONGOING, DueState.DUE_SOON, DueState.OVERDUE):
        events.append(DateEvent(facts.nct_id, facts.title, "results_due", verdict.due))
    return events


def coming_up(
    studies: Iterable[DueFacts], today: date, days: int = UPCOMING_DAYS, limit: int = UPCOMING_LINES
) -> list[DateEvent]:
    """Primary completions and results falling due in the next `days` (today included), soonest
    first, at most `limit`."""
    end = today + timedelta(days=days)
    found = [
        event
        for facts in studies
        for event in date_events(facts, today)
        if event.what != "completion" and today <= event.day <= end
    ]
    return sorted(found, key=lambda e: (e.day, e.nct_id, e.what))[:limit]


def count_states(verdicts: Iterable[Verdict]) -> dict[str, int]:
    """How many verdicts are in each state (every state named, zeros included)."""
    counts = {str(state): 0 for state in DueState}
    for verdict in verdicts:
        counts[str(verdict.state)] += 1
    return counts
