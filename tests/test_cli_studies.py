"""`trialwatch studies NAME`: the landscape of a watch on the terminal and as CSV, XLSX and JSON,
the same rows and filters as the web page (both databases)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import openpyxl

from tests.landscape_data import hold, study_record
from watcher.store import db

WATCH = "RCC bispecifics"


def seeded(cli_for, database_url):
    cli = cli_for(database_url=database_url)
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    records = [
        study_record(1, status="RECRUITING", phases=["PHASE2"], sponsor="Fictional Oncology Inc.", enrollment=120,
                     primary=("2027-03-31", "ESTIMATED"), title="Bispecific FX-101 in clear-cell RCC"),
        study_record(2, status="COMPLETED", phases=["PHASE3"], sponsor="=cmd|' /C calc'!A0", enrollment=994,
                     primary=("2020-12-14", "ACTUAL"), title="Adjuvant pembrolizumab"),
        study_record(3, status="RECRUITING", phases=["PHASE1"], sponsor="Université Paris Cité", enrollment=30,
                     primary=("2026-06", "ESTIMATED"), title="CAR-T cells after nivolumab"),
    ]  # fmt: skip
    hold(engine, WATCH, records, datetime(2026, 11, 1, tzinfo=UTC))
    engine.dispose()
    return cli


def test_an_aligned_table_without_a_format_and_the_filters(cli_for, database_url):
    cli = seeded(cli_for, database_url)
    lines = cli("studies", WATCH).splitlines()
    assert lines[0].split()[:3] == ["nct_id", "status", "phase"] and lines[-1] == "3 studies"
    assert [line.split()[0] for line in lines[1:4]] == ["NCT08000002", "NCT08000003", "NCT08000001"]
    column = lines[0].index("primary_completion")
    assert [line[column : column + 10] for line in lines[1:4]] == ["2020-12-14", "2026-06   ", "2027-03-31"]
    lines = cli("studies", WATCH, "--status", "RECRUITING", "--phase", "PHASE2", "--phase", "PHASE1").splitlines()
    assert [line.split()[0] for line in lines[1:-1]] == ["NCT08000003", "NCT08000001"]
    lines = cli("studies", WATCH, "--sort", "-enrollment", "--sponsor", "université").splitlines()
    assert len(lines) == 3 and lines[1].startswith("NCT08000003")


def test_json_csv_and_xlsx_have_the_web_columns(cli_for, database_url, tmp_path):
    cli = seeded(cli_for, database_url)
    body = json.loads(cli("studies", WATCH, "--json", "--status", "RECRUITING"))
    assert [s["nct_id"] for s in body] == ["NCT08000003", "NCT08000001"]
    assert (
        body[1]["enrollment"] == {"count": 120, "type": "ESTIMATED"} and body[1]["sponsor"] == "Fictional Oncology Inc."
    )
    assert "3 studies written" in cli("studies", WATCH, "--csv", str(tmp_path / "s.csv"))
    data = (tmp_path / "s.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[0]["nct_id"] == "NCT08000002" and rows[0]["sponsor"] == "'=cmd|' /C calc'!A0"
    assert rows[1]["sponsor"] == "Université Paris Cité"
    assert "3 studies written" in cli("studies", WATCH, "--xlsx", str(tmp_path / "s.xlsx"))
    sheet = openpyxl.load_workbook(tmp_path / "s.xlsx").active
    assert sheet["A2"].value == "NCT08000002" and sheet["E2"].value == "=cmd|' /C calc'!A0"
    assert sheet["E2"].data_type == "s" and sheet["E2"].quotePrefix and sheet.freeze_panes == "A2"


def test_clear_errors_and_help(cli_for, database_url):
    cli = seeded(cli_for, database_url)
    assert "RCC CAR-T" in cli("studies", "no such watch", code=2)  # the error lists the watches
    assert "--status: unknown status 'RUNNING'" in cli("studies", WATCH, "--status", "RUNNING", code=2)
    assert "choose one of --csv, --xlsx and --json" in cli("studies", WATCH, "--json", "--csv", "x.csv", code=2)
    assert "Example: trialwatch studies" in cli("studies", "--help")


def test_a_poll_stores_the_facts_the_landscape_reads(cli_for, database_url, registry, own_study):
    from sqlalchemy import select

    from watcher.store.models import StudyVersion

    registry.put(own_study("study_NCT09000001_v1"))
    cli = cli_for(database_url=database_url)
    cli("poll")
    engine = db.make_engine(database_url)
    with db.transaction(engine) as session:
        summaries = list(session.execute(select(StudyVersion.summary)).scalars())
    engine.dispose()
    assert summaries and all(summary and summary["landscape"]["sponsor"] for summary in summaries)
    lines = cli("studies", WATCH).splitlines()
    assert lines[1].startswith("NCT09000001") and "Fictional Oncology Inc." in lines[1]
