"""Seeding a watch's landscape (tests and `make bench`): studies held by a watch, built on our own
record tests/data/study_NCT09000001_v1.json with their facts varied (status, phases, sponsor,
interventions, countries, sites, the three dates, results), stored as the poll stores them."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlmodel import col

from watcher.model import Study
from watcher.store import db, repo
from watcher.store.models import StudyRow, StudyVersion, WatchStudy

BASE = Path(__file__).resolve().parent / "data" / "study_NCT09000001_v1.json"
STATUSES = ("RECRUITING", "NOT_YET_RECRUITING", "ACTIVE_NOT_RECRUITING", "COMPLETED", "TERMINATED")
PHASES = (["PHASE1"], ["PHASE1", "PHASE2"], ["PHASE2"], ["PHASE3"], [])
TYPES = ("DRUG", "BIOLOGICAL", "DEVICE", "PROCEDURE")
COUNTRIES = ("France", "Germany", "United States", "Japan", "Côte d'Ivoire")


def base_record() -> dict[str, Any]:
    return json.loads(BASE.read_text(encoding="utf-8"))


def study_record(n: int, **facts: Any) -> dict[str, Any]:
    """Study number `n` (NCT0800000n): facts cycle with n; `facts` overrides title, status, phases,
    sponsor, interventions [(type, name)], sites [(country, status)], start/primary/completion
    (date, type), results (bool)."""
    record = copy.deepcopy(base_record())
    protocol = record["protocolSection"]
    nct_id = facts.get("nct_id", f"NCT08{n:06d}")
    protocol["identificationModule"] = {"nctId": nct_id, "briefTitle": facts.get("title", f"Study {n} of RCC")}
    status = protocol["statusModule"]
    status["overallStatus"] = facts.get("status", STATUSES[n % len(STATUSES)])
    year = 2020 + n % 9
    status["startDateStruct"] = _date(facts.get("start", (f"{year}-{n % 12 + 1:02d}-01", "ACTUAL")))
    status["primaryCompletionDateStruct"] = _date(facts.get("primary", (f"{year + 2}-{n % 12 + 1:02d}", "ESTIMATED")))
    status["completionDateStruct"] = _date(facts.get("completion", (f"{year + 3}", "ESTIMATED")))
    protocol["designModule"]["phases"] = facts.get("phases", PHASES[n % len(PHASES)])
    protocol["designModule"]["enrollmentInfo"] = {"count": facts.get("enrollment", 10 + n), "type": "ESTIMATED"}
    protocol["sponsorCollaboratorsModule"]["leadSponsor"] = {"name": facts.get("sponsor", f"Sponsor {n % 7}")}
    interventions = facts.get("interventions", [(TYPES[n % len(TYPES)], f"Drug-{n % 11}")])
    protocol["armsInterventionsModule"]["interventions"] = [{"type": t, "name": name} for t, name in interventions]
    sites = facts.get("sites", [(COUNTRIES[n % len(COUNTRIES)], "RECRUITING"), (COUNTRIES[(n + 1) % 5], "COMPLETED")])
    protocol["contactsLocationsModule"]["locations"] = [
        {"facility": f"Hospital {i}", "city": "City", "country": country, "status": site_status}
        for i, (country, site_status) in enumerate(sites)
    ]
    record["hasResults"] = facts.get("results", n % 4 == 0)
    if record["hasResults"]:
        status["resultsFirstPostDateStruct"] = {"date": "2026-03-01", "type": "ACTUAL"}
    return record


def _date(pair: tuple[str, str] | None) -> dict[str, str] | None:
    return {"date": pair[0], "type": pair[1]} if pair else None


def hold(engine: Engine, watch: str, records: list[dict[str, Any]], now: datetime) -> list[str]:
    """Store each record as a study held by `watch` (one version each). Returns their NCT ids."""
    ids = []
    with db.transaction(engine) as session:
        for record in records:
            study = Study.from_record(record)
            version = repo.save_study_version(session=session, record=record, study=study,
                                              fingerprint=f"fp-{study.nct_id}", now=now)  # fmt: skip
            session.add(WatchStudy(watch=watch, nct_id=study.nct_id, version_id=version, matched_at=now))
            ids.append(study.nct_id)
    return ids


def hold_many(engine: Engine, watch: str, count: int, now: datetime, batch: int = 1000, first: int = 0) -> None:
    """`count` studies held by `watch` (numbered from `first`), inserted in bulk (the benchmark's thousands)."""
    for start in range(first, first + count, batch):
        records = [study_record(n) for n in range(start, min(start + batch, first + count))]
        ids = [record["protocolSection"]["identificationModule"]["nctId"] for record in records]
        with db.transaction(engine) as session:
            session.execute(insert(StudyRow), [_study_values(r, now) for r in records])
            session.execute(insert(StudyVersion), [
                {"nct_id": i, "fingerprint": "x", "record": repo.pack_record(r), "seen_at": now - timedelta(days=30)}
                for i, r in zip(ids, records, strict=True)
            ])  # fmt: skip
            versions = dict(session.execute(
                select(StudyVersion.nct_id, StudyVersion.id).where(col(StudyVersion.nct_id).in_(ids))
            ).all())  # fmt: skip
            session.execute(update(StudyRow), [{"nct_id": i, "version_id": versions[i]} for i in ids])
            session.execute(insert(WatchStudy), [
                {"watch": watch, "nct_id": i, "version_id": versions[i], "matched_at": now} for i in ids
            ])  # fmt: skip


def _study_values(record: dict[str, Any], now: datetime) -> dict[str, Any]:
    study = Study.from_record(record)
    return {"nct_id": study.nct_id, "title": study.title, "status": study.status, "phase": study.phase_label,
            "fingerprint": "x", "first_seen_at": now, "changed_at": now - timedelta(days=30)}  # fmt: skip
