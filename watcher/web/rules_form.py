"""The rules of a watch (watcher.watch, #15) and its PubMed keys (#16) in the watch form: the
inputs as WatchConfig data and back. Validation stays WatchConfig's, so the form's errors are the
TOML file's and the API's. Nothing ticked in `alert_on` means every kind; an empty box, no rule."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from watcher.model import humanize_status
from watcher.rules import describe_rules
from watcher.watch import CHANGE_KINDS, REGISTRY_PHASES, REGISTRY_STATUSES, STORED, WatchConfig

PLACE_FIELDS = ("countries", "states", "cities")
NEAR_PARTS = ("lat", "lon", "radius_km")
# the form's names of the rule inputs, and the error keys shown next to them
RULE_FIELDS = (
    "alert_on", "min_slip_days", "min_enrollment_change_percent", "statuses", "phases", *PLACE_FIELDS,
    "near", *(f"near.{part}" for part in NEAR_PARTS), "pubmed", "pubmed_query",
)  # fmt: skip
# what the registry preview applies (the join rules)
PREVIEW_RULE_FIELDS = ("statuses", "phases", *PLACE_FIELDS, "near")


def phase_label(phase: str) -> str:
    return phase.replace("EARLY_PHASE", "Early phase ").replace("PHASE", "Phase ").replace("NA", "Not applicable")


RULE_CHOICES = {
    "alert_on": [(kind, kind.replace("_", " ").capitalize()) for kind in CHANGE_KINDS],
    "statuses": [(status, humanize_status(status)) for status in REGISTRY_STATUSES],
    "phases": [(phase, phase_label(phase)) for phase in REGISTRY_PHASES],
}


def split_places(text: str) -> list[str]:
    """Place names, one a line or separated by commas or semicolons; the registry's own commas
    are kept ("Korea, Republic of", "Congo, The Democratic Republic of the")."""
    names: list[str] = []
    for line in re.split(r"[\n;]+", text):
        for part in (part.strip() for part in line.split(",")):
            if not part:
                continue
            if names and line.count(",") and part.split()[-1].lower() in ("of", "the") and names[-1] in line:
                names[-1] = f"{names[-1]}, {part}"
            else:
                names.append(part)
    return names


def number_or_text(text: str) -> int | float | str | None:
    """A number input's value: None when blank, an int or a float when it reads as one, else the
    text itself (WatchConfig then names the key and the bad value, as for the TOML file)."""
    text = text.strip()
    if not text:
        return None
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def rules_from_form(form: Any) -> dict[str, Any]:
    """The rule and PubMed inputs as WatchConfig data (every key, None or [] when not set)."""
    data: dict[str, Any] = {
        "alert_on": [str(v) for v in form.getlist("alert_on")] or None,
        "min_slip_days": number_or_text(str(form.get("min_slip_days", ""))),
        "min_enrollment_change_percent": number_or_text(str(form.get("min_enrollment_change_percent", ""))),
        "statuses": [str(v) for v in form.getlist("statuses")],
        "phases": [str(v) for v in form.getlist("phases")],
        "pubmed": form.get("pubmed") == "on",
        "pubmed_query": str(form.get("pubmed_query", "")).strip() or None,
    }
    for key in PLACE_FIELDS:
        data[key] = split_places(str(form.get(key, "")))
    near = {part: number_or_text(str(form.get(f"near_{part}", ""))) for part in NEAR_PARTS}
    given = {part: value for part, value in near.items() if value is not None}
    data["near"] = given or None  # some but not all: WatchConfig says which key is missing
    return data


def _shown(value: Any) -> str:
    return "" if value is None else str(value)


def rule_values(data: dict[str, Any]) -> dict[str, Any]:
    """WatchConfig data as the rule inputs show it."""
    values: dict[str, Any] = {
        "alert_on": data.get("alert_on") or [],
        "statuses": data.get("statuses") or [],
        "phases": data.get("phases") or [],
        "min_slip_days": _shown(data.get("min_slip_days")),
        "min_enrollment_change_percent": _shown(data.get("min_enrollment_change_percent")),
        "pubmed": data.get("pubmed", True) is not False,
        "pubmed_query": _shown(data.get("pubmed_query")),
    }
    for key in PLACE_FIELDS:
        items = data.get(key) or []
        values[key] = "\n".join(map(str, items)) if isinstance(items, list) else str(items)
    given = data.get("near")
    near: dict[str, Any] = given if isinstance(given, dict) else {}
    for part in NEAR_PARTS:
        values[f"near_{part}"] = _shown(near.get(part))
    values["rules_set"] = any(
        values[key] for key in ("alert_on", "statuses", "phases", "min_slip_days", "min_enrollment_change_percent",
                                "pubmed_query", *PLACE_FIELDS)
    ) or bool(near) or not values["pubmed"]  # fmt: skip
    return values


def rules_in_words(definition: dict[str, Any], name: str = "watch") -> str:
    """A stored watch's rules in one line, as `trialwatch check` prints them (empty if it no
    longer validates)."""
    try:
        return describe_rules(WatchConfig.model_validate({**definition, "name": name}, context=STORED))
    except ValidationError:
        return ""
