"""Issue #23: the milestones a poll notes (results_overdue, estimated_date_passed), mailed exactly
once through polls and restarts (each `trialwatch poll` a command run of its own, as cron runs it:
only the database carries over), never after results are
reported; on the real record of NCT05805501 (phase 2, FDA-regulated drug; primary completion
2026-10-31, estimated, in its 2026-02-16 version: results due 2027-10-31, overdue from 2027-12-01),
both databases, the clock moved with time-machine."""

from __future__ import annotations

import copy
from typing import Any

from tests.harness import REAL_0216, posted

WATCH = """
[[watch]]
name = "RCC bispecifics"
nct_ids = ["NCT05805501"]
recipients = ["onc@example.org"]
digest = "immediate"
"""


def kinds(cli: Any, kind: str) -> list[dict[str, Any]]:
    return [change for change in cli.changes("--all") if change["kind"] == kind]


def mails_about(smtp: Any, words: str) -> list[Any]:
    return [r for r in smtp.received if words in r.message.get_body(("plain",)).get_content()]


def test_results_overdue_is_mailed_once_on_the_day_and_never_again(cli_for, registry, real_study, smtp, database_url):
    registry.put(real_study(REAL_0216))
    cli = cli_for(smtp=smtp, database_url=database_url, watches=WATCH)
    cli.now = "2027-11-20T10:00:00+00:00"
    cli("poll")  # the baseline: the estimated date long past is noted silently
    cli.now = "2027-11-30T10:00:00+00:00"
    cli("poll")  # due 2027-10-31 + 30 days: not yet overdue
    assert kinds(cli, "results_overdue") == [] and smtp.received == []
    cli.now = "2027-12-01T10:00:00+00:00"
    output = cli("poll")
    assert "1 results_overdue" in output
    (change,) = kinds(cli, "results_overdue")
    assert change["nct_id"] == "NCT05805501" and change["details"]["due"] == "2027-10-31"
    assert change["summary"].startswith("Results overdue: due 2027-10-31 (primary completion 2026-10-31")
    smtp.wait_for(1)
    (mail,) = mails_about(smtp, "Results overdue")
    assert "results overdue" in mail.message["Subject"]
    for day in ("2027-12-01T18:00:00+00:00", "2027-12-02T10:00:00+00:00", "2027-12-20T10:00:00+00:00"):
        cli.now = day
        cli("poll", "--full")
        cli("poll")
    assert len(kinds(cli, "results_overdue")) == 1
    assert len(mails_about(smtp, "Results overdue")) == 1
    assert kinds(cli, "estimated_date_passed") == []  # passed before the watch followed it


def test_no_results_overdue_when_the_study_reports_first(cli_for, registry, real_study, smtp, database_url):
    record = real_study(REAL_0216)
    registry.put(record)
    cli = cli_for(smtp=smtp, database_url=database_url, watches=WATCH)
    cli.now = "2027-11-20T10:00:00+00:00"
    cli("poll")
    reported = copy.deepcopy(posted(record, "2027-11-25"))
    reported["protocolSection"]["statusModule"]["resultsFirstSubmitDate"] = "2027-11-24"
    registry.put(reported)
    cli.now = "2027-11-25T10:00:00+00:00"
    cli("poll", "--full")
    for day in ("2027-12-01T10:00:00+00:00", "2028-03-01T10:00:00+00:00"):
        cli.now = day
        cli("poll", "--full")
    assert kinds(cli, "results_overdue") == []
    assert mails_about(smtp, "Results overdue") == []


def test_an_estimated_date_passed_is_told_once_per_date(cli_for, registry, real_study, smtp, database_url):
    record = real_study(REAL_0216)
    registry.put(record)
    cli = cli_for(smtp=smtp, database_url=database_url, watches=WATCH)
    cli.now = "2026-11-20T10:00:00+00:00"  # 2026-10-31 (estimated) passed 20 days ago
    cli("poll")
    cli.now = "2026-12-01T10:00:00+00:00"  # 31 days: stale
    cli("poll")
    cli.now = "2026-12-02T10:00:00+00:00"
    cli("poll", "--full")
    (stale,) = kinds(cli, "estimated_date_passed")
    assert stale["details"]["primary_completion"] == {"date": "2026-10-31", "type": "ESTIMATED"}
    assert "still marked estimated" in stale["summary"]
    moved = posted(record, "2026-12-03")
    moved["protocolSection"]["statusModule"]["primaryCompletionDateStruct"] = {
        "date": "2026-11-30",
        "type": "ESTIMATED",
    }
    registry.put(moved)
    cli.now = "2026-12-03T10:00:00+00:00"
    cli("poll", "--full")  # a new date, not yet 30 days past
    cli.now = "2027-01-01T10:00:00+00:00"
    cli("poll", "--full")
    cli("poll", "--full")
    passed = kinds(cli, "estimated_date_passed")
    assert [c["details"]["primary_completion"]["date"] for c in passed] == ["2026-11-30", "2026-10-31"]


def test_alert_on_holds_a_milestone_back(cli_for, registry, real_study, smtp, database_url):
    registry.put(real_study(REAL_0216))
    watch = WATCH + 'alert_on = ["status", "results_posted"]\n'
    cli = cli_for(smtp=smtp, database_url=database_url, watches=watch)
    cli.now = "2027-11-20T10:00:00+00:00"
    cli("poll")
    cli.now = "2027-12-01T10:00:00+00:00"
    cli("poll")
    (change,) = kinds(cli, "results_overdue")
    assert change["alerted"] is False and change["suppressed_by"] == "alert_on"
    assert smtp.received == []


TWO_WATCHES = """
[[watch]]
name = "RCC bispecifics"
nct_ids = ["NCT05805501", "NCT05127824"]
recipients = ["onc@example.org"]
digest = "immediate"

[[watch]]
name = "Quiet calendar"
nct_ids = ["NCT05805501"]
recipients = ["onc@example.org"]
digest = "immediate"
upcoming = false
"""


def test_the_digest_has_a_coming_up_section_per_watch(cli_for, registry, real_study, smtp, database_url):
    registry.put(real_study("study_NCT05805501_rcc_bispecific_2026-02-12.json"))
    registry.put(real_study("study_NCT05127824_kidney_cancer_recruiting.json"))
    cli = cli_for(smtp=smtp, database_url=database_url, watches=TWO_WATCHES)
    cli.now = "2026-06-01T10:00:00+00:00"
    cli("poll")
    registry.put(posted(real_study(REAL_0216), "2026-08-20"))  # primary completion 2026-07-31 -> 2026-10-31
    cli.now = "2026-08-20T10:00:00+00:00"
    cli("poll", "--full")
    (mail,) = smtp.wait_for(1)
    text = mail.message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    section = text.split("== RCC bispecifics")[1].split("== Quiet calendar")[0]
    assert "Coming up:\n  2026-10-31 · NCT05805501 primary completion (estimated): A Study of Immune" in section
    assert "NCT05127824 primary completion" not in text  # 2026-12-31: beyond 90 days
    assert "Coming up" not in text.split("== Quiet calendar")[1]  # upcoming = false
    html = mail.message.get_body(("html",)).get_content()
    assert html.count("Coming up</h3>") == 1


WORDS = """
[[watch]]
name = "RCC words"
conditions = ["renal cell carcinoma"]
recipients = ["onc@example.org"]
digest = "daily"
"""


def test_a_study_that_joins_already_overdue_is_not_news_one_that_falls_overdue_later_is(
    cli_for, registry, real_study, database_url
):
    registry.put(real_study("study_NCT04514484_rcc_io_2026-02-10.json"))  # phase 1: never due
    cli = cli_for(database_url=database_url, watches=WORDS)
    cli.now = "2027-11-01T10:00:00+00:00"
    cli("poll")
    registry.put(posted(real_study("study_NCT05127824_kidney_cancer_recruiting.json"), "2027-11-10"))  # due 2027-12-31
    cli.now = "2027-11-10T10:00:00+00:00"
    cli("poll")
    registry.put(posted(real_study(REAL_0216), "2027-12-15"))  # overdue since 2027-12-01 when it joins
    cli.now = "2027-12-15T10:00:00+00:00"
    cli("poll")
    assert {c["nct_id"] for c in kinds(cli, "new_study")} == {"NCT05127824", "NCT05805501"}
    assert kinds(cli, "results_overdue") == []
    cli.now = "2028-01-31T10:00:00+00:00"  # NCT05127824: due 2027-12-31 + 30 days
    cli("poll")
    assert [c["nct_id"] for c in kinds(cli, "results_overdue")] == ["NCT05127824"]
