"""Queries on articles (`feed_item`), who has seen them (`article_watch`) and each watch's PubMed
state. Keyword-only functions that take the session; no commits here (see repo.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, insert
from sqlmodel import Session, col, select

from watcher.store.models import ArticleWatch, FeedItemRow, PubmedState, ReadoutState, StudyRow, WatchStudy


def find_article(*, session: Session, keys: Sequence[str], doi: str | None, pmid: str | None) -> FeedItemRow | None:
    """The stored article with any of these keys, this DOI (compared without regard to case, as
    DOIs are) or this PMID: one paper, whichever source saw it first."""
    found = session.exec(select(FeedItemRow).where(col(FeedItemRow.key).in_(list(keys)))).first() if keys else None
    if found is None and doi:
        found = session.exec(select(FeedItemRow).where(func.lower(col(FeedItemRow.doi)) == doi.lower())).first()
    if found is None and pmid:
        found = session.exec(select(FeedItemRow).where(FeedItemRow.pmid == pmid)).first()
    return found


def find_articles(
    *, session: Session, keys: Sequence[str], dois: Sequence[str], pmids: Sequence[str]
) -> tuple[dict[str, FeedItemRow], dict[str, FeedItemRow], dict[str, FeedItemRow]]:
    """find_article for many at once: the stored articles by key, by DOI (lower-cased) and by
    PMID, a few queries per 500 asked (a poll of 5,000 works makes 30, not 15,000)."""
    by_key: dict[str, FeedItemRow] = {}
    by_doi: dict[str, FeedItemRow] = {}
    by_pmid: dict[str, FeedItemRow] = {}
    lowered = list(dict.fromkeys(doi.lower() for doi in dois if doi))
    for start in range(0, max(len(keys), len(lowered), len(pmids)), 500):
        for row in session.exec(select(FeedItemRow).where(col(FeedItemRow.key).in_(list(keys[start : start + 500])))):
            by_key[row.key] = row
        doi_query = select(FeedItemRow).where(func.lower(col(FeedItemRow.doi)).in_(lowered[start : start + 500]))
        for row in session.exec(doi_query):
            by_doi.setdefault((row.doi or "").lower(), row)
        for row in session.exec(select(FeedItemRow).where(col(FeedItemRow.pmid).in_(list(pmids[start : start + 500])))):
            by_pmid.setdefault(row.pmid or "", row)
    return by_key, by_doi, by_pmid


ARTICLE: Table = FeedItemRow.__table__  # type: ignore[attr-defined]  # inserted by Core: no ORM bulk path


def insert_articles(*, session: Session, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """New articles (FeedItemRow's columns, distinct keys) inserted in one statement per 500, then
    their ids read back by key (SQLite would insert with RETURNING a row at a time). No model
    objects: constructing thousands costs more than the insert."""
    for start in range(0, len(rows), 500):
        session.execute(insert(ARTICLE), list(rows[start : start + 500]))
    keys = [str(row["key"]) for row in rows]
    found: dict[str, int] = {}
    for start in range(0, len(keys), 500):
        query = select(FeedItemRow.key, FeedItemRow.id).where(col(FeedItemRow.key).in_(keys[start : start + 500]))
        found.update((key, int(item_id or 0)) for key, item_id in session.exec(query))
    return found


def watches_that_saw_each(*, session: Session, item_ids: Sequence[int]) -> dict[int, set[str]]:
    """watches_that_saw for many articles at once."""
    seen: dict[int, set[str]] = {}
    for start in range(0, len(item_ids), 500):
        query = select(ArticleWatch.item_id, ArticleWatch.watch).where(
            col(ArticleWatch.item_id).in_(list(item_ids[start : start + 500]))
        )
        for item_id, watch in session.exec(query):
            seen.setdefault(item_id, set()).add(watch)
    return seen


def add_seen(*, session: Session, item_id: int, watch: str, now: datetime) -> None:
    """Record that a watch has seen an article known not to be seen by it yet (no lookup)."""
    session.add(ArticleWatch(item_id=item_id, watch=watch, seen_at=now))


def pmids_seen_by(*, session: Session, watch: str, pmids: Sequence[str]) -> set[str]:
    """Of these PMIDs, those of articles the watch has already had its say on."""
    seen: set[str] = set()
    for start in range(0, len(pmids), 500):
        query = (
            select(FeedItemRow.pmid)
            .join(ArticleWatch, col(ArticleWatch.item_id) == col(FeedItemRow.id))
            .where(ArticleWatch.watch == watch, col(FeedItemRow.pmid).in_(list(pmids[start : start + 500])))
        )
        seen.update(pmid for pmid in session.exec(query) if pmid)
    return seen


def mark_seen(*, session: Session, item_id: int, watch: str, now: datetime) -> bool:
    """Record that the watch has seen the article; False when it already had."""
    if session.get(ArticleWatch, (item_id, watch)) is not None:
        return False
    session.add(ArticleWatch(item_id=item_id, watch=watch, seen_at=now))
    return True


def watches_that_saw(*, session: Session, item_id: int) -> set[str]:
    return set(session.exec(select(ArticleWatch.watch).where(ArticleWatch.item_id == item_id)))


def held_nct_ids(*, session: Session, watch: str) -> list[str]:
    """The NCT ids of the studies a watch holds now."""
    query = select(WatchStudy.nct_id).where(WatchStudy.watch == watch).order_by(col(WatchStudy.nct_id))
    return list(session.exec(query))


def study_titles(*, session: Session, nct_ids: Iterable[str]) -> dict[str, str]:
    wanted = list(nct_ids)
    if not wanted:
        return {}
    return dict(session.exec(select(StudyRow.nct_id, StudyRow.title).where(col(StudyRow.nct_id).in_(wanted))).all())


def get_pubmed_state(*, session: Session, watch: str) -> PubmedState:
    state = session.get(PubmedState, watch)
    if state is None:
        state = PubmedState(watch=watch)
        session.add(state)
    return state


def pubmed_states(*, session: Session) -> dict[str, PubmedState]:
    return {state.watch: state for state in session.exec(select(PubmedState))}


def get_readout_state(*, session: Session, name: str) -> ReadoutState:
    """The state of `crossref:<ISSN>` or `europepmc:<watch>` (made when first asked for)."""
    state = session.get(ReadoutState, name)
    if state is None:
        state = ReadoutState(name=name)
        session.add(state)
    return state


def readout_states(*, session: Session) -> dict[str, ReadoutState]:
    return {state.name: state for state in session.exec(select(ReadoutState))}


def articles_by_dois(*, session: Session, dois: Sequence[str]) -> list[FeedItemRow]:
    """The stored articles with any of these DOIs (compared lower-cased)."""
    wanted = list(dict.fromkeys(doi.lower() for doi in dois if doi))
    if not wanted:
        return []
    return list(session.exec(select(FeedItemRow).where(func.lower(col(FeedItemRow.doi)).in_(wanted))))
