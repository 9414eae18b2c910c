"""One Crossref poll of one journal: window -> every work created in it (cursor-paged) -> store
what is new -> match every watch that takes part -> changes, in one transaction (#20).

- Window: created dates from `overlap_days` before the journal's last successful poll to today
  (records appear some days after their issue date). The first poll of a journal is a baseline:
  the window starts `overlap_days` back, everything is stored, nothing is alerted.
- A work already stored from Crossref was judged when it first came: the overlap never tells it
  twice. One stored first by another source (a journal feed, PubMed, Europe PMC) is told only to
  the watches not yet told of it (readout_pipeline).
- A watch is told of a work that names a study it holds, or that matches its words
  (matching.match_text on the title and abstract: an ESMO abstract is matched on its title alone).
- A failed poll (HTTP after retries, a cut-off body, a repeating page, too many pages) stores
  nothing but the journal's error; the other sources are not touched.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from watcher.config import Config
from watcher.errors import SourceError
from watcher.http import Stopping
from watcher.literature.crossref import CrossrefClient
from watcher.literature.readout_pipeline import (
    SOURCE_NAMES,
    ChangeBatch,
    ReadoutReport,
    held_studies,
    record_failure,
    record_success,
    store_works,
    tell_watch,
    told_preprints,
)
from watcher.literature.readouts import Readout
from watcher.matching import match_text, word_tokens
from watcher.store import articles
from watcher.store.db import transaction
from watcher.watch import WatchConfig

log = logging.getLogger(__name__)

_NOT_ALNUM = re.compile(r"[\W_]+")
_ASCII_NOT_ALNUM = bytes(byte for byte in range(128) if not chr(byte).isalnum())
_ASCII_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")


def state_name(issn: str) -> str:
    return f"crossref:{issn}"


def poll_crossref(
    *, engine: Engine, client: CrossrefClient, config: Config, issn: str, now: datetime,
    stopping: threading.Event | None = None,
) -> ReadoutReport:  # fmt: skip
    """Poll one journal; never raises SourceError (the report carries it)."""
    report = ReadoutReport(name=state_name(issn))
    started, requests_before = time.monotonic(), client.requests_made
    try:
        with transaction(engine) as session:
            state = articles.get_readout_state(session=session, name=report.name)
            baseline = state.baseline_at is None
            anchor = now if baseline else (state.last_success_at or now)
        report.status = "baseline" if baseline else "ok"
        window = ((anchor - timedelta(days=config.crossref.overlap_days)).date(), now.date())
        works = client.works(issn, window)
        report.found = len(works)
        if stopping is not None and stopping.is_set():  # asked to stop: store nothing half-way
            raise Stopping
        with transaction(engine) as session:
            _apply(session=session, config=config, works=works, baseline=baseline, now=now, report=report)
            record_success(session=session, name=report.name, baseline=baseline, signature="", now=now,
                           requests=client.requests_made - requests_before)  # fmt: skip
    except SourceError as exc:
        report.status, report.error = "failed", exc.one_line()
        record_failure(engine=engine, name=report.name, error=report.error, now=now,
                       requests=client.requests_made - requests_before)  # fmt: skip
    report.requests = client.requests_made - requests_before
    report.seconds = time.monotonic() - started
    log.log(logging.INFO if report.ok else logging.ERROR, "poll %s", report.line())
    return report


def _apply(
    *, session: Session, config: Config, works: list[Readout], baseline: bool, now: datetime, report: ReadoutReport
) -> None:
    stored = store_works(session=session, works=works, now=now)
    report.items += sum(row.new for row in stored)
    if baseline:
        return
    watches = config.crossref_watches()
    held = {watch.name: held_studies(session=session, watch=watch) for watch in watches}
    gates = {watch.name: word_gate(watch) for watch in watches}
    older = [row.id for row in stored if not row.new and row.feed != SOURCE_NAMES["crossref"]]
    told_before = articles.watches_that_saw_each(session=session, item_ids=older)
    preprints = told_preprints(session=session, works=works)
    batch = ChangeBatch(session=session, now=now)
    for work, row in zip(works, stored, strict=True):
        if not row.new and row.feed == SOURCE_NAMES["crossref"]:
            continue  # judged when it first came
        squashed = squash(f"{work.title}\n{work.quick_abstract}")  # the abstract read only past the gate
        for watch in watches:
            if watch.name in told_before.get(row.id, ()):
                continue
            named = any(nct in held[watch.name] for nct in work.nct_ids)
            if not named and not gates[watch.name](squashed) and not work.preprints:
                continue  # neither its trials nor its words: the common case, decided without the matcher
            match = match_text(fields=work.text_fields(), conditions=watch.conditions, terms=watch.terms,
                               exclude=watch.exclude)  # fmt: skip
            version = next((doi for doi in work.preprints if watch.name in preprints.get(doi, ())), None)
            if not named and not match.matched and version is None:
                continue
            told = tell_watch(batch=batch, watch=watch, work=work, studies=held[watch.name],
                              why=match.describe() if match.matched else None, version=version)  # fmt: skip
            if told:
                articles.add_seen(session=session, item_id=row.id, watch=watch.name, now=now)
            report.changes += told
    batch.write()


def squash(text: str) -> str:
    """The text's letters and digits alone, case-folded (NFKC): what word_gate reads. ASCII's
    punctuation goes in one bytes.translate (ASCII is its own NFKC form and folds by lower());
    what is left of another text's goes by the regular expression."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_LOWER, _ASCII_NOT_ALNUM).decode("ascii")
    folded = unicodedata.normalize("NFKC", text).casefold()
    rest = folded.encode("utf-8", "surrogatepass").translate(None, _ASCII_NOT_ALNUM).decode("utf-8", "surrogatepass")
    return rest if rest.isascii() else _NOT_ALNUM.sub("", rest)


def word_gate(watch: WatchConfig) -> Callable[[str], bool]:
    """A quick test a squashed text must pass to match the watch's words: it holds the letters of
    one of the conditions (or, without conditions, of one of the terms) in a row. The matcher finds
    a word when the text's tokens glued together spell it, so this is never false for a text that
    matches; it is a substring search, a hundred times cheaper than the matcher."""
    spelled = [
        letters for letters in ("".join(word_tokens(word)) for word in watch.conditions or watch.terms) if letters
    ]
    return lambda squashed: any(letters in squashed for letters in spelled)
