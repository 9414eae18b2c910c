"""Issue #23: `trialwatch due [--watch NAME] [--state STATE] [--json]` over the real records a
watch holds (phase 2 FDA-regulated, phase 1 alone, a 2006 study with results), both databases."""

from __future__ import annotations

import json
from typing import Any

from tests.harness import REAL_0216

RECORDS = (
    REAL_0216,  # phase 2, FDA-regulated drug: due 2027-10-31
    "study_NCT05127824_kidney_cancer_recruiting.json",  # phase 2, primary completion 2026-12: due 2027-12-31
    "study_NCT04514484_rcc_io_2026-02-10.json",  # phase 1 only
    "study_NCT00554515_rcc_with_results.json",  # started 2006, completed 2013
)
WATCH = """
[[watch]]
name = "RCC due"
nct_ids = ["NCT05805501", "NCT05127824", "NCT04514484", "NCT00554515"]
recipients = ["onc@example.org"]
"""


def polled(cli_for: Any, registry: Any, real_study: Any, database_url: str, extra: str = "") -> Any:
    for name in RECORDS:
        registry.put(real_study(name))
    cli = cli_for(database_url=database_url, watches=WATCH + extra)
    cli.now = "2027-12-05T10:00:00+00:00"
    cli("poll")
    return cli


def test_due_lists_each_held_study_overdue_first(cli_for, registry, real_study, database_url):
    cli = polled(cli_for, registry, real_study, database_url)
    rows = json.loads(cli("due", "--json"))
    assert [(r["nct_id"], r["state"], r["due"]) for r in rows] == [
        ("NCT05805501", "overdue", "2027-10-31"),
        ("NCT05127824", "due_soon", "2027-12-31"),
        ("NCT00554515", "not_applicable", None),
        ("NCT04514484", "not_applicable", None),
    ]
    assert rows[0]["watch"] == "RCC due" and rows[0]["overdue_from"] == "2027-12-01"
    assert rows[0]["explanation"].startswith("overdue since 2027-12-01: due 2027-10-31, no results submitted")
    assert rows[3]["explanation"] == "US results reporting does not apply: phase 1 only"
    text = cli("due", "--state", "overdue", "--watch", "RCC due")
    assert text.splitlines() == [
        "RCC due NCT05805501 overdue: overdue since 2027-12-01: due 2027-10-31, no results submitted: "
        "primary completion 2026-10-31 (estimated) + 1 year; FDA-regulated drug; phase 2"
    ]
    assert cli("due", "--state", "reported") == "no studies reported\n"


def test_due_soon_days_comes_from_the_config(cli_for, registry, real_study, tmp_path):
    cli = polled(cli_for, registry, real_study, f"sqlite:///{tmp_path / 'tw.db'}")
    text = cli.config.read_text().replace("[digest]", "[milestones]\ndue_soon_days = 10\n\n[digest]")
    cli.config.write_text(text)
    states = {r["nct_id"]: r["state"] for r in json.loads(cli("due", "--json"))}
    assert states["NCT05127824"] == "ongoing"  # due 2027-12-31, 26 days away: not within 10


def test_due_refuses_an_unknown_state_or_watch(cli_for, registry, real_study, tmp_path):
    cli = polled(cli_for, registry, real_study, f"sqlite:///{tmp_path / 'tw.db'}")
    assert "--state 'late': expected one of not_applicable, ongoing" in cli("due", "--state", "late", code=2)
    assert "no watch named 'Nope'" in cli("due", "--watch", "Nope", code=2)


def test_the_new_config_keys_are_checked(tmp_path):
    from watcher.config import load_config
    from watcher.errors import ConfigError

    path = tmp_path / "trialwatch.toml"
    path.write_text("[milestones]\ndue_soon_days = 30\n\n[digest]\nupcoming_days = 0\n" + WATCH + "upcoming = false\n")
    config = load_config(path)
    assert (config.milestones.due_soon_days, config.digest.upcoming_days) == (30, 0)
    assert config.watch[0].upcoming is False
    defaults = load_config(_written(tmp_path, WATCH))
    assert (defaults.milestones.due_soon_days, defaults.digest.upcoming_days, defaults.watch[0].upcoming) == (
        60,
        90,
        True,
    )
    for text, message in (
        (
            "[milestones]\ndue_soon_days = -1\n",
            "[milestones]: key 'due_soon_days': Input should be greater than or equal to 0",
        ),
        ("[milestones]\ndue_son_days = 3\n", "[milestones]: unknown key 'due_son_days'"),
        (
            "[digest]\nupcoming_days = 5000\n",
            "[digest]: key 'upcoming_days': Input should be less than or equal to 3650",
        ),
    ):
        try:
            load_config(_written(tmp_path, text))
        except ConfigError as exc:
            assert str(exc).endswith(message), str(exc)
        else:
            raise AssertionError(f"accepted: {text!r}")


def _written(tmp_path: Any, text: str) -> Any:
    path = tmp_path / "other.toml"
    path.write_text(text)
    return path
