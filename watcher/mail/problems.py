"""The sources failing now that matter to one recipient: the footer of every digest they get."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from watcher.config import Config
from watcher.mail.digest import SourceProblem
from watcher.store import articles, repo


def source_problems(*, session: Session, config: Config, recipient: str) -> list[SourceProblem]:
    """Sources failing now that matter to this recipient: the registry, for their watches (one
    line per distinct error, naming the watches it stops), and every feed, for a recipient of a
    watch that takes part in feed matching."""
    mine = [watch.name for watch in config.watch if recipient in {r.lower() for r in watch.recipients}]
    states = repo.watch_states(session=session)
    by_error: dict[str, list[tuple[str, datetime]]] = {}
    for name in mine:
        state = states.get(name)
        if state is not None and state.failing_since is not None and state.last_error:
            by_error.setdefault(state.last_error, []).append((name, state.failing_since))
    problems = [
        SourceProblem(
            f"ClinicalTrials.gov ({', '.join(name for name, _ in failing)})",
            error,
            min(since for _, since in failing),
        )
        for error, failing in by_error.items()
    ]
    problems += _pubmed_problems(session=session, config=config, mine=mine)
    problems += _readout_problems(session=session, config=config, mine=mine)
    if any(watch.feeds for watch in config.watch if watch.name in mine):
        feeds = repo.feed_states(session=session)
        for feed in config.feed:
            feed_state = feeds.get(feed.name)
            if feed_state is None or not feed_state.last_error:
                continue
            since = feed_state.failing_since or feed_state.gone_at
            if since is not None:
                problems.append(SourceProblem(feed.name, feed_state.last_error, since))
    return problems


def _pubmed_problems(*, session: Session, config: Config, mine: list[str]) -> list[SourceProblem]:
    """PubMed, for the recipient's watches that search it: one line per distinct error."""
    searched = {watch.name for watch in config.pubmed_watches()}
    states = articles.pubmed_states(session=session)
    by_error: dict[str, list[tuple[str, datetime]]] = {}
    for name in mine:
        state = states.get(name)
        if name in searched and state is not None and state.failing_since is not None and state.last_error:
            by_error.setdefault(state.last_error, []).append((name, state.failing_since))
    return [
        SourceProblem(f"PubMed ({', '.join(name for name, _ in failing)})", error, min(at for _, at in failing))
        for error, failing in by_error.items()
    ]


def _readout_problems(*, session: Session, config: Config, mine: list[str]) -> list[SourceProblem]:
    """Crossref's journals (for a recipient of a watch that takes part) and Europe PMC's searches
    of the recipient's watches that take part (#20)."""
    states = articles.readout_states(session=session)
    names: list[tuple[str, str]] = []
    if any(watch.name in mine for watch in config.crossref_watches()):
        names += [(f"crossref:{issn}", f"Crossref ({issn})") for issn in config.crossref.journals]
    names += [(f"europepmc:{w.name}", f"Europe PMC ({w.name})") for w in config.europepmc_watches() if w.name in mine]
    problems = []
    for key, shown in names:
        state = states.get(key)
        if state is not None and state.failing_since is not None and state.last_error:
            problems.append(SourceProblem(shown, state.last_error, state.failing_since))
    return problems
