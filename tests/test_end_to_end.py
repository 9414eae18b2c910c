"""The whole path, as a user runs it: config file -> `trialwatch poll` against a local registry ->
changes stored -> `trialwatch digest` -> mail in a real SMTP server (or .eml files).

Nothing of ours is mocked: the CLI runs in-process on a real SQLite file (and PostgreSQL where
configured), the registry is a real HTTP server on loopback, the mail server is aiosmtpd.
"""

from __future__ import annotations

import copy
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from tests.harness import REAL_0212, REAL_0216, REAL_0218, WATCHES, Cli, posted, write_config
from tests.servers import Fault
from watcher.cli.operating import app
from watcher.store import db
from watcher.store.models import ChangeRow, Notification, StudyRow, StudyVersion, WatchState, WatchStudy


def test_first_poll_is_a_baseline_and_alerts_nothing(cli_for, registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    registry.put(own_study("study_NCT09000002_v1"))
    cli = cli_for()
    output = cli("poll")
    assert "RCC bispecifics: baseline: 2 studies stored, no alerts" in output
    assert "RCC CAR-T: baseline: 2 studies stored" in output
    assert cli.changes() == []
    assert "nothing to deliver" in cli("digest", "--now")


def test_real_version_pairs_end_to_end_to_smtp(cli_for, registry, real_study, smtp, database_url):
    # the clock follows the real snapshots: 02-12 (baseline), 02-16 (an update posted on 02-12)
    registry.put(real_study(REAL_0212))
    cli = cli_for(smtp=smtp, database_url=database_url)
    cli.now = "2026-02-12T08:00:00+00:00"
    cli("poll")
    registry.put(real_study(REAL_0216))
    cli.now = "2026-02-16T10:00:00+00:00"
    output = cli("poll")
    assert "RCC bispecifics: incremental: 1 studies seen, 2 changes (1 dates, 1 sites)" in output

    changes = cli.changes("--watch", "RCC bispecifics")
    assert sorted(c["kind"] for c in changes) == ["dates", "sites"]
    dates = next(c for c in changes if c["kind"] == "dates")
    assert dates["source"] == "clinicaltrials"
    assert dates["nct_id"] == "NCT05805501"
    assert dates["details"]["primary_completion"]["slip_days"] == 92
    assert "slipped 92 days to 2026-10-31" in dates["summary"]
    assert set(dates) >= {"id", "watch", "kind", "source", "nct_id", "title", "summary", "details", "detected_at"}
    sites = next(c for c in changes if c["kind"] == "sites")
    assert sites["details"]["removed"][0]["facility"] == "Asan Medical Center"

    # 02-18: only versionHolder moved, lastUpdatePostDate did not: the incremental poll does not
    # even fetch it; a full reconciliation fetches it and finds nothing either
    registry.put(real_study(REAL_0218))
    cli.now = "2026-02-18T10:00:00+00:00"
    assert "RCC bispecifics: incremental: 0 studies seen, 0 changes" in cli("poll")
    assert "RCC bispecifics: full: 1 studies seen, 0 changes" in cli("poll", "--full")

    cli("digest", "--now")
    # onc@ is on both watches, coordinator@ on one: one message per recipient
    received = smtp.wait_for(2)
    by_rcpt = {tuple(r.rcpt_tos): r.message for r in received}
    onc = by_rcpt[("onc@example.org",)]
    assert onc["Subject"].startswith("[trialwatch] RCC bispecifics: 1 date change, 1 site change")
    text = onc.get_body(("plain",)).get_content()
    html = onc.get_body(("html",)).get_content()
    assert "Primary completion slipped 92 days to 2026-10-31" in text
    assert "Site removed: Asan Medical Center, Seoul, South Korea." in text
    assert "https://clinicaltrials.gov/study/NCT05805501" in text and "NCT05805501" in html
    # the CAR-T watch matched the same study at baseline; its changes go out in the same message
    assert "RCC CAR-T" in text
    assert len([r for r in received if r.rcpt_tos == ["onc@example.org"]]) == 1

    assert "nothing to deliver" in cli("digest", "--now")
    assert len(smtp.received) == 2


def test_smtp_failure_keeps_changes_pending_and_retry_reuses_message_id(changed, smtp):
    cli = changed(smtp=smtp)
    smtp.mode = "tempfail_data"  # the server reads the whole message, then answers 451
    output = cli("digest", "--now", code=1)
    assert "451" in output and "Try again later" in output
    assert smtp.received == []
    attempted = {a.rcpt_tos[0]: a.message["Message-ID"] for a in smtp.attempted}
    assert set(attempted) == {"onc@example.org", "coordinator@example.org"}

    smtp.mode = "accept"
    delivered = cli("digest", "--now")
    assert "delivered to onc@example.org" in delivered
    received = smtp.wait_for(2)
    assert {r.rcpt_tos[0]: r.message["Message-ID"] for r in received} == attempted
    assert all("Status changed from Recruiting" in r.message.get_body(("plain",)).get_content() for r in received)
    assert "nothing to deliver" in cli("digest", "--now")
    assert len(smtp.received) == 2


def test_permanent_rejection_of_one_recipient_does_not_block_the_other(changed, smtp):
    cli = changed(smtp=smtp)
    smtp.mode = "reject"
    smtp.reject_recipients = {"coordinator@example.org"}
    output = cli("digest", "--now", code=1)
    assert "550" in output and "coordinator@example.org" in output
    (received,) = smtp.wait_for(1)
    assert received.rcpt_tos == ["onc@example.org"]
    # a permanent refusal is final: not retried on every run
    assert "nothing to deliver" in cli("digest", "--now")


def stored_state(path: Path) -> dict[str, Any]:
    """Every row trialwatch keeps about studies and watches, but the last poll's time and error."""
    engine = db.make_engine(f"sqlite:///{path}")
    with db.transaction(engine) as session:
        dump: dict[str, Any] = {}
        for model in (StudyRow, StudyVersion, WatchStudy, ChangeRow, Notification):
            dump[model.__tablename__] = sorted(repr(row.model_dump()) for row in session.exec(select(model)))
        dump["watch_state"] = sorted(
            repr(
                row.model_dump(
                    exclude={"last_poll_at", "last_error", "failing_since", "request_count", "unchanged_count"}
                )
            )
            for row in session.exec(select(WatchState))
        )
    return dump


def test_failed_poll_changes_no_stored_state(cli_for, registry, own_study, tmp_path):
    one_watch = WATCHES.split("[[watch]]")[1]
    registry.put(own_study("study_NCT09000001_v1"))
    cli = cli_for(watches="[[watch]]" + one_watch)
    cli("poll")
    registry.put(own_study("study_NCT09000001_v2"))
    registry.put(posted(own_study("study_NCT09000002_v1"), "2026-11-20"))
    before = stored_state(tmp_path / "var" / "trialwatch.db")
    paged = Cli(write_config(tmp_path, registry, extra_ctgov="page_size = 1", watches="[[watch]]" + one_watch))
    registry.fail_next(Fault.none(), Fault.none(), *[Fault.status(500)] * 3)  # /version, page 1, then no page 2
    output = paged("poll", code=1)
    assert "RCC bispecifics: FAILED" in output and "HTTP 500" in output
    assert stored_state(tmp_path / "var" / "trialwatch.db") == before  # not a row, not a field moved
    assert "HTTP 500" in (stored_watch_error(tmp_path) or "")

    cli("poll")
    kinds = sorted(c["kind"] for c in cli.changes("--watch", "RCC bispecifics"))
    assert kinds == ["dates", "new_study", "sites", "status"]


def stored_watch_error(tmp_path: Path) -> str | None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'var' / 'trialwatch.db'}")
    with db.transaction(engine) as session:
        return session.exec(select(WatchState.last_error)).first()


def test_truncated_response_is_a_clear_failure(cli_for, registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    cli = cli_for()
    registry.fail_next(*[Fault.truncated()] * 3)
    output = cli("poll", code=1)
    assert "RCC bispecifics: FAILED" in output
    assert "truncated" in output or "not complete JSON" in output


def test_400_shows_the_registry_reason(cli_for, registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    cli = cli_for()
    registry.fail_next(Fault.status(400, body="Invalid value for query.term"))
    output = cli("poll", code=1)
    assert "HTTP 400" in output and "Invalid value for query.term" in output


def test_no_smtp_host_writes_eml_files(changed, tmp_path):
    cli = changed()
    output = cli("digest", "--now")
    files = sorted((tmp_path / "var" / "outbox").glob("*.eml"))
    assert len(files) == 2
    assert not list((tmp_path / "var" / "outbox").glob("*.tmp"))
    assert "delivered to onc@example.org" in output
    message = message_from_bytes(files[0].read_bytes(), policy=email_policy.default)
    assert message["Subject"].startswith("[trialwatch] RCC bispecifics:")
    assert message.get_content_type() == "multipart/alternative"
    assert "nothing to deliver" in cli("digest", "--now")


def test_immediate_watch_is_sent_by_poll(changed, smtp):
    watches = WATCHES.replace('digest = "daily"', 'digest = "immediate"')
    output = changed(smtp=smtp, watches=watches).last_poll
    assert "delivered to onc@example.org" in output
    received = smtp.wait_for(2)
    assert {r.rcpt_tos[0] for r in received} == {"onc@example.org", "coordinator@example.org"}
    # the weekly CAR-T watch is not due: its change waits for its digest
    assert all("RCC CAR-T" not in r.message["Subject"] for r in received)


def test_scheduled_digest_respects_schedule(changed, smtp):
    cli = changed(smtp=smtp)
    # the baseline was just taken: no daily or weekly slot has passed since, nothing is due
    assert "nothing to deliver" in cli("digest")
    assert smtp.received == []


def test_dry_run_prints_and_delivers_nothing(changed, smtp):
    cli = changed(smtp=smtp)
    output = cli("digest", "--now", "--dry-run")
    assert "To: onc@example.org" in output and "Subject: [trialwatch]" in output
    assert "Primary completion slipped 91 days" in output
    assert smtp.received == []
    cli("digest", "--now")
    assert len(smtp.wait_for(2)) == 2


def test_changes_filters_and_text_output(cli_for, registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    cli = cli_for()
    cli("poll")
    modified = copy.deepcopy(own_study("study_NCT09000001_v1"))
    modified["protocolSection"]["designModule"]["enrollmentInfo"] = {"count": 12, "type": "ACTUAL"}
    registry.put(posted(modified, "2026-11-20"))
    cli("poll")
    assert len(cli.changes("--watch", "RCC CAR-T")) == 1
    assert cli.changes("--since", "2999-01-01") == []
    output = cli("changes")
    assert "[enrollment] Enrollment 40 estimated → 12 actual." in output
    assert "no watch named 'nope'" in cli("changes", "--watch", "nope", code=2)
    assert "--since 'yesterday'" in cli("changes", "--since", "yesterday", code=2)


def test_check_reports_config_and_errors_in_one_line(cli_for, tmp_path):
    cli = cli_for()
    output = cli("check")
    assert output.startswith(f"ok: {cli.config}")
    assert "RCC bispecifics [daily] to onc@example.org, coordinator@example.org" in output
    cli.config.write_text(cli.config.read_text().replace("terms =", "keywrds =", 1))
    output = cli("check", code=2)
    assert output.strip() == f"error: {cli.config}: watch 'RCC bispecifics': unknown key 'keywrds'"


def all_commands() -> list[list[str]]:
    """Every command and subcommand the app registers (so a new one cannot miss its help)."""
    from typer.main import get_command

    root = get_command(app)
    found: list[list[str]] = [[]]
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        found.append([name])
        found.extend([name, sub] for sub in getattr(command, "commands", {}))
    return found


@pytest.mark.parametrize("command", all_commands(), ids=lambda c: " ".join(c) or "trialwatch")
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example: trialwatch" in result.stdout
