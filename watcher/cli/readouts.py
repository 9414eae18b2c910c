"""What `queries`, `preview` and `check` say about Crossref and Europe PMC (#20): a watch's requests
as they are sent, how much each would find now, and each source's settings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from watcher.errors import SourceError

if TYPE_CHECKING:  # imported where used: `--help` and `version` stay quick
    from watcher.config import Config, WatchConfig


def readout_query_lines(config: Config, watch: WatchConfig) -> Iterator[str]:
    """The Crossref requests (one per journal; the same for every watch, matched here) and the
    watch's Europe PMC searches, or why there are none."""
    from watcher.literature.crossref import SELECT
    from watcher.literature.europepmc import preprint_query, trial_queries

    if not config.crossref.enabled or not watch.crossref:
        why = "[crossref] enabled = false" if not config.crossref.enabled else "crossref = false in this watch"
        yield f"  Crossref: not asked ({why})"
    else:
        for issn in config.crossref.journals:
            yield (
                f"  GET {config.crossref.base_url}/journals/{issn}/works"
                " filter='from-created-date:D,until-created-date:D' rows=1000 cursor='*'"
                f" select={SELECT!r} mailto={config.crossref.mailto!r}"
            )
        yield "  (every work of these journals is matched against the watch's words and the trials it holds)"
    if not config.europepmc.enabled or not watch.europepmc:
        why = "[europepmc] enabled = false" if not config.europepmc.enabled else "europepmc = false in this watch"
        yield f"  Europe PMC: not searched ({why})"
        return
    base = f"  GET {config.europepmc.base_url}/search resultType=core format=json pageSize=1000 cursorMark='*'"
    query = preprint_query(watch)
    if query:
        yield f"{base} query={query + ' AND FIRST_IDATE:[D TO D]'!r}"
    for trial_query in trial_queries(watch.nct_ids):
        yield f"{base} query={trial_query + ' AND FIRST_IDATE:[D TO D]'!r}"
    yield "  (and the same over every study the watch holds, each poll)"


def readout_count_lines(config: Config, watch: WatchConfig, now: datetime) -> Iterator[str]:
    """How much each source would find now: Crossref's works of the last `overlap_days` that
    match, Europe PMC's preprints (all dates) and records that name the watch's trials."""
    from watcher.cli.shared import make_crossref_client, make_europepmc_client
    from watcher.literature.europepmc import preprint_query, trial_queries
    from watcher.matching import match_text

    crossref = make_crossref_client(config) if watch.crossref else None
    window = ((now - timedelta(days=config.crossref.overlap_days)).date(), now.date())
    for issn in config.crossref.journals:
        if crossref is None:
            break
        try:
            works = crossref.works(issn, window)
        except SourceError as exc:
            yield f"Crossref {issn} cannot be read now: {exc.one_line()}"
            continue
        fields = [work.text_fields() for work in works]
        found = [f for f in fields if match_text(fields=f, conditions=watch.conditions, terms=watch.terms,
                                                  exclude=watch.exclude).matched]  # fmt: skip
        named = [work for work in works if set(work.nct_ids) & set(watch.nct_ids)]
        since = f"created since {window[0]}"
        yield f"Crossref {issn}: {len(found)} of {len(works)} works {since} match, {len(named)} name its trials"
    europepmc = make_europepmc_client(config) if watch.europepmc else None
    if europepmc is None:
        return
    try:
        query = preprint_query(watch)
        if query:
            yield f"Europe PMC: {europepmc.count(query)} preprints match: {query}"
        mentions = sum(europepmc.count(trial_query) for trial_query in trial_queries(watch.nct_ids))
        if watch.nct_ids:
            yield f"Europe PMC: {mentions} records name its trials ({', '.join(watch.nct_ids)})"
    except SourceError as exc:
        yield f"Europe PMC cannot be read now: {exc.one_line()}"


def readout_check_lines(config: Config) -> Iterator[str]:
    """`check`'s lines: each source on or off, schedule, pace, contact, journals."""
    crossref, europepmc = config.crossref, config.europepmc
    if not crossref.enabled:
        yield "crossref: not enabled ([crossref] enabled = false)"
    else:
        yield (
            f"crossref: journals {', '.join(crossref.journals)} every {crossref.poll_interval}, "
            f"{crossref.requests_per_second:g} requests/s at most (slower when Crossref's rate headers say so), "
            f"mailto {crossref.mailto}, {len(config.crossref_watches())} watch(es)"
        )
    if not europepmc.enabled:
        yield "europepmc: not enabled ([europepmc] enabled = false)"
    else:
        contact = f"email {europepmc.email}" if europepmc.email else "no email"
        yield (
            f"europepmc: {len(config.europepmc_watches())} watch(es) every {europepmc.poll_interval}, "
            f"{europepmc.requests_per_second:g} requests/s, {contact}"
        )
