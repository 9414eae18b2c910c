"""One Europe PMC poll of one watch: window -> its preprint search and its trial-mention searches
-> store what is new -> changes, in one transaction (#20). Reads like the PubMed pipeline.

- Window: first-index dates from `overlap_days` before the watch's last successful poll to today.
  The first poll (or the first after the watch's words changed) is a baseline: stored, nothing
  alerted.
- A work the watch has had its say on (from any source: a MED record PubMed or a feed brought is
  the same item by PMID or DOI) is not told again.
- A trial mention names the held study Europe PMC found in its full text: when a batch of ids was
  asked for and the title and abstract name none of them, each id of the batch is asked for alone
  to learn which.
- A failed poll (HTTP after retries, an errCode inside a 200, a cut-off body, a repeating page)
  stores nothing but the watch's Europe PMC error; the other sources are not touched.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from watcher.errors import SourceError
from watcher.http import Stopping
from watcher.literature.europepmc import (
    FULL_TEXT,
    EuropepmcClient,
    Window,
    preprint_query,
    query_signature,
    trial_queries,
)
from watcher.literature.readout_pipeline import (
    ChangeBatch,
    ReadoutReport,
    held_studies,
    record_failure,
    record_success,
    store_work,
    tell_watch,
)
from watcher.literature.readouts import Readout
from watcher.matching import match_text
from watcher.store import articles
from watcher.store.db import transaction
from watcher.watch import WatchConfig

log = logging.getLogger(__name__)


def state_name(watch: str) -> str:
    return f"europepmc:{watch}"


def poll_europepmc(
    *, engine: Engine, client: EuropepmcClient, watch: WatchConfig, overlap_days: int, now: datetime,
    stopping: threading.Event | None = None,
) -> ReadoutReport:  # fmt: skip
    """Poll Europe PMC for one watch; never raises SourceError (the report carries it)."""
    report = ReadoutReport(name=state_name(watch.name))
    started, requests_before = time.monotonic(), client.requests_made
    try:
        with transaction(engine) as session:
            state = articles.get_readout_state(session=session, name=report.name)
            baseline = state.baseline_at is None or state.query_signature != query_signature(watch)
            anchor = now if baseline else (state.last_success_at or now)
            studies = held_studies(session=session, watch=watch)
        report.status = "baseline" if baseline else "ok"
        window = ((anchor - timedelta(days=overlap_days)).date(), now.date())
        by_words, mentions = search_watch(client, watch, list(studies), window)
        report.found = len(by_words) + len([key for key in mentions if key not in by_words])
        if stopping is not None and stopping.is_set():
            raise Stopping
        with transaction(engine) as session:
            _apply(session=session, watch=watch, by_words=by_words, mentions=mentions, studies=studies,
                   baseline=baseline, now=now, report=report)  # fmt: skip
            record_success(session=session, name=report.name, baseline=baseline, signature=query_signature(watch),
                           now=now, requests=client.requests_made - requests_before)  # fmt: skip
    except SourceError as exc:
        report.status, report.error = "failed", exc.one_line()
        record_failure(engine=engine, name=report.name, error=report.error, now=now,
                       requests=client.requests_made - requests_before)  # fmt: skip
    report.requests = client.requests_made - requests_before
    report.seconds = time.monotonic() - started
    log.log(logging.INFO if report.ok else logging.ERROR, "poll %s", report.line())
    return report


def search_watch(
    client: EuropepmcClient, watch: WatchConfig, held: list[str], window: Window
) -> tuple[dict[str, Readout], dict[str, Readout]]:
    """The works the preprint search found, and those the trial searches found (each with the
    held ids it names), by source id."""
    query = preprint_query(watch)
    by_words = {work.source_id: work for work in client.search(query, window)} if query else {}
    mentions: dict[str, Readout] = {}
    for start in range(0, len(held), 10):
        batch = held[start : start + 10]
        found = client.search(trial_queries(batch)[0], window)
        unnamed = [work for work in found if not set(work.nct_ids) & set(batch)]
        which = _which_ids(client, batch, window) if unnamed and len(batch) > 1 else {}
        for work in found:
            ids = which.get(work.source_id, batch if len(batch) == 1 else [])
            extra = {nct: FULL_TEXT for nct in ids if nct not in work.named_by}
            mentions[work.source_id] = dataclasses.replace(work, named_by=work.named_by | extra) if extra else work
    return by_words, mentions


def _which_ids(client: EuropepmcClient, batch: list[str], window: Window) -> dict[str, list[str]]:
    """Each id of the batch asked for alone: which works mention which ids."""
    which: dict[str, list[str]] = {}
    for nct in batch:
        for work in client.search(trial_queries([nct])[0], window):
            which.setdefault(work.source_id, []).append(nct)
    return which


def _apply(
    *, session: Session, watch: WatchConfig, by_words: dict[str, Readout], mentions: dict[str, Readout],
    studies: dict[str, str], baseline: bool, now: datetime, report: ReadoutReport,
) -> None:  # fmt: skip
    batch = ChangeBatch(session=session, now=now)
    for key, work in (by_words | mentions).items():
        row, new = store_work(session=session, work=work, now=now)
        report.items += new
        assert row.id is not None
        if not articles.mark_seen(session=session, item_id=row.id, watch=watch.name, now=now) or baseline:
            continue
        why = None
        if key in by_words:
            match = match_text(fields=work.text_fields(), conditions=watch.conditions, terms=watch.terms,
                               exclude=watch.exclude)  # fmt: skip
            why = match.describe() if match.matched else "Europe PMC's search of the watch's words"
        report.changes += tell_watch(batch=batch, watch=watch, work=work, studies=studies, why=why)
    batch.write()
