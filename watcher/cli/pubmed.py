"""What `queries` and `preview` say about PubMed: a watch's esearch, and how much it finds now."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from watcher.errors import SourceError

if TYPE_CHECKING:  # imported where used: `--help` and `version` stay quick
    from watcher.config import Config, WatchConfig
    from watcher.literature.pubmed import PubmedClient


def pubmed_query_lines(config: Config, watch: WatchConfig) -> Iterator[str]:
    """The watch's PubMed query as esearch gets it (without the API key), or why there is none."""
    if not config.pubmed.enabled or not watch.pubmed:
        why = "[pubmed] enabled = false" if not config.pubmed.enabled else "pubmed = false in this watch"
        yield f"  PubMed: not searched ({why})"
        return
    from watcher.config import Secrets
    from watcher.literature.pubmed import nct_queries, word_query

    method = "POST" if Secrets().ncbi_api_key is not None else "GET"  # the key travels only in a form
    base = f"{method} {config.pubmed.base_url}/esearch.fcgi db=pubmed datetype=edat"
    query = word_query(watch)
    if query:
        yield f"  {base} term={query!r}"
    for trial_query in nct_queries(watch.nct_ids):
        yield f"  {base} term={trial_query!r}"
    yield "  (and NCT…[si] OR NCT…[tiab] over every study the watch holds, each poll)"


def pubmed_count_lines(client: PubmedClient, watch: WatchConfig) -> Iterator[str]:
    """How many PubMed records the watch's word query finds now (all dates; nothing fetched)."""
    from watcher.literature.pubmed import word_query

    query = word_query(watch)
    if not query:
        return
    try:
        count = client.count(query)
    except SourceError as exc:
        yield f"PubMed cannot be read now: {exc.one_line()}"
        return
    yield f"PubMed: {count} records match: {query}"


def pubmed_check_line(config: Config) -> str:
    """`check`'s line on PubMed: on or off, schedule, pace, contact, whether a key is set (never the key)."""
    settings = config.pubmed
    if not settings.enabled:
        return "pubmed: not enabled ([pubmed] enabled = false)"
    from watcher.config import Secrets

    key = "API key set" if Secrets().ncbi_api_key is not None else "no API key (TRIALWATCH_NCBI_API_KEY)"
    watches = len(config.pubmed_watches())
    return (
        f"pubmed: {watches} watch(es) every {settings.poll_interval}, {settings.requests_per_second:g} requests/s, "
        f"contact {settings.email}, {key}"
    )
