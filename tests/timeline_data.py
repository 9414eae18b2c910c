"""Seeding a database for the timeline, study and source pages (tests and `make bench`): studies
with stored versions whose dates slip, enrollment moves and sites come and go; changes on a clock
that we choose; articles that name a study."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from watcher.model import ChangeKind, Source, Study
from watcher.store import db, repo
from watcher.store.models import ChangeRow, FeedItemRow, StudyRow
from watcher.store.repo import pack_record
from watcher.store.watch_keys import active_watch_id

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
KINDS = ("status", "dates", "enrollment", "sites", "other", "publication", "new_article")


def evolve(record: dict[str, Any], step: int) -> dict[str, Any]:
    """Version `step` of a record: primary completion slips a month per step (completion actual
    from step 4 on), enrollment grows, the first site leaves at step 2, one site comes per step from 3."""
    out = copy.deepcopy(record)
    status = out["protocolSection"]["statusModule"]
    status["primaryCompletionDateStruct"] = {"date": f"{2027 + step // 12}-{step % 12 + 1:02d}-01", "type": "ESTIMATED"}
    status["completionDateStruct"] = {
        "date": f"{2028 + step // 12}-{step % 12 + 1:02d}-15",
        "type": "ACTUAL" if step >= 4 else "ESTIMATED",
    }
    design = out["protocolSection"].setdefault("designModule", {})
    design["enrollmentInfo"] = {"count": 40 + 10 * step, "type": "ACTUAL" if step >= 4 else "ESTIMATED"}
    locations = out["protocolSection"].setdefault("contactsLocationsModule", {}).setdefault("locations", [])
    if step >= 2 and locations:
        locations.pop(0)
    for added in range(3, step + 1):  # one more site from step 3 on
        locations.append({"facility": f"Added Hospital {added}", "city": "Lyon", "country": "France",
                          "status": "RECRUITING"})  # fmt: skip
    return out


def store_versions(engine: Engine, record: dict[str, Any], count: int, start: datetime = T0) -> list[int]:
    """`count` versions of one study, a week apart. Returns their ids."""
    ids = []
    for step in range(count):
        version = evolve(record, step)
        with db.transaction(engine) as session:
            ids.append(
                repo.save_study_version(
                    session=session, record=version, study=Study.from_record(version),
                    fingerprint=f"fp-{step}", now=start + timedelta(days=7 * step),
                )
            )  # fmt: skip
    return ids


def change_rows(count: int, *, watches: Iterable[str], nct_ids: list[str], start: datetime = T0) -> list[dict]:
    """`count` change rows (as insert values), one a minute, spread over watches, kinds and studies."""
    names = list(watches)
    rows = []
    for n in range(count):
        kind = KINDS[n % len(KINDS)]
        nct_id = "" if kind == "new_article" else nct_ids[n % len(nct_ids)]
        source = Source.FEEDS if kind in ("publication", "new_article") else Source.CLINICALTRIALS
        rows.append({
            "watch": names[n % len(names)], "kind": kind, "source": str(source), "nct_id": nct_id,
            "title": f"Study {n} of renal cell carcinoma" if n % 10 else f"Bispecific MEDI5752 trial {n}",
            "summary": f"Change {n}: {kind.replace('_', ' ')} moved",
            "details": {"link": f"https://journal.example/{n}", "feed": "JCO", "why": '"CAR-T" in title'}
            if source == Source.FEEDS else {},
            "detected_at": start + timedelta(minutes=n),
        })  # fmt: skip
    return rows


def insert_changes(engine: Engine, rows: list[dict], batch: int = 5000) -> None:
    """Insert the rows, each with its watch's id when the watch is stored (as a poll stores them)."""
    with db.transaction(engine) as session:
        names = sorted({row["watch"] for row in rows})
        ids = dict(zip(names, [active_watch_id(session=session, name=name) for name in names], strict=True))
        rows = [{**row, "watch_id": ids[row["watch"]]} for row in rows]
        for first in range(0, len(rows), batch):
            session.execute(insert(ChangeRow), rows[first : first + batch])


def insert_studies(engine: Engine, record: dict[str, Any], count: int, prefix: str = "NCT07") -> list[str]:
    """`count` studies with one stored version each, renumbered from `record`."""
    ids = [f"{prefix}{n:06d}" for n in range(count)]
    blob = pack_record(record)
    with db.transaction(engine) as session:
        session.execute(insert(StudyRow), [
            {"nct_id": i, "title": f"Study {i}", "status": "RECRUITING", "phase": "Phase 2", "fingerprint": "x",
             "first_seen_at": T0, "changed_at": T0} for i in ids
        ])  # fmt: skip
        from watcher.store.models import StudyVersion

        session.execute(insert(StudyVersion), [
            {"nct_id": i, "fingerprint": "x", "record": blob, "seen_at": T0} for i in ids
        ])  # fmt: skip
    return ids


def add_article(engine: Engine, *, title: str, nct_ids: list[str], when: datetime = T0) -> None:
    with db.transaction(engine) as session:
        session.add(FeedItemRow(key=f"doi:10.1/{title}", feed="JCO", doi=None, title=title,
                                link="https://journal.example/a", nct_ids=nct_ids, first_seen_at=when))  # fmt: skip


def add_change(engine: Engine, *, watch: str, kind: ChangeKind, nct_id: str, title: str, summary: str,
               when: datetime, details: dict[str, Any] | None = None) -> int:  # fmt: skip
    source = Source.FEEDS if kind in (ChangeKind.PUBLICATION, ChangeKind.NEW_ARTICLE) else Source.CLINICALTRIALS
    with db.transaction(engine) as session:
        row = repo.add_change(session=session, watch=watch, kind=kind, source=source, nct_id=nct_id, title=title,
                              summary=summary, details=details or {}, recipients=[], now=when)  # fmt: skip
        assert row.id is not None
        return row.id
