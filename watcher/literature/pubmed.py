"""PubMed through NCBI's E-utilities: a watch's queries, and a client for esearch and efetch.

A watch becomes at most two kinds of search, each over an entry-date window (`datetype=edat`):
- its words (`word_query`): the conditions OR-ed, AND the terms OR-ed, each word in `[tiab]`
  (a phrase quoted), `NOT` the excluded words OR-ed; or its own `pubmed_query`, verbatim;
- its trials (`nct_queries`): `NCT…[si] OR NCT…[tiab]` over the NCT ids it holds, in batches
  that keep a URL short; `[si]` finds an article that deposits the id in its DataBankList.
esearch pages through `retmax` (at most 10,000) ids at a time; efetch takes at most 200 ids a
request. Every request carries `tool` and `email`, and `api_key` when TRIALWATCH_NCBI_API_KEY is
set. The key is never part of a URL: a request that carries it is a POST of a form (urllib3 logs
the URLs it requests at debug level), and error messages never show it (watcher.http).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import date
from urllib.parse import urlencode

from watcher.errors import SourceError
from watcher.http import HttpClient, Pacer, interruptible_sleep, make_session
from watcher.http_deadline import DEFAULT_REQUEST_DEADLINE
from watcher.literature.pubmed_xml import PubmedArticle, SearchPage, parse_efetch, parse_esearch
from watcher.pubmed_config import PubmedConfig
from watcher.watch import WatchConfig

ESEARCH_MAX = 10_000  # NCBI's largest retmax
EFETCH_BATCH = 200
NCT_IDS_PER_QUERY = 20  # 'NCT01234567[si] OR NCT01234567[tiab]' is 36 characters
MAX_GET_CHARS = 1500  # a longer request is POSTed
MAX_PAGES = 100
Window = tuple[date, date]
_PLAIN_WORD = re.compile(r"^[^\W_]+$")


def tiab(word: str) -> str:
    """'bispecific[tiab]', '"renal cell carcinoma"[tiab]': a phrase (or a word with a hyphen,
    slash or other mark) quoted; quotes and brackets inside a word are dropped."""
    cleaned = " ".join(re.sub(r'["\[\]()]', " ", word).split())
    return f"{cleaned}[tiab]" if _PLAIN_WORD.match(cleaned) else f'"{cleaned}"[tiab]'


def _any(words: Sequence[str]) -> str:
    parts = list(dict.fromkeys(tiab(word) for word in words))
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


def word_query(watch: WatchConfig) -> str | None:
    """The watch's `pubmed_query`, else the query built from its words; None without words."""
    if watch.pubmed_query:
        return watch.pubmed_query
    groups = [_any(words) for words in (watch.conditions, watch.terms) if words]
    if not groups:
        return None
    query = " AND ".join(groups)
    return f"{query} NOT {_any(watch.exclude)}" if watch.exclude else query


def nct_queries(nct_ids: Sequence[str]) -> list[str]:
    """'NCT…[si] OR NCT…[tiab] OR …' in batches of NCT_IDS_PER_QUERY ids."""
    unique = list(dict.fromkeys(nct_ids))
    return [
        " OR ".join(f"{nct}[si] OR {nct}[tiab]" for nct in unique[start : start + NCT_IDS_PER_QUERY])
        for start in range(0, len(unique), NCT_IDS_PER_QUERY)
    ]


def query_signature(watch: WatchConfig) -> str:
    """Changes when the watch's word query changes (its next PubMed poll is then a baseline)."""
    return hashlib.sha256((word_query(watch) or "").encode()).hexdigest()[:16]


def pubmed_date(day: date) -> str:
    return day.strftime("%Y/%m/%d")


class PubmedClient:
    """esearch and efetch with pacing (`requests_per_second`), retries and a size cap."""

    def __init__(
        self,
        config: PubmedConfig,
        *,
        api_key: str | None = None,
        user_agent: str | None = None,
        stopping: threading.Event | None = None,
        page_size: int = ESEARCH_MAX,
        sleep: Callable[[float], None] | None = None,
        request_deadline: float = DEFAULT_REQUEST_DEADLINE,
    ) -> None:
        self.config, self.page_size = config, min(page_size, ESEARCH_MAX)
        self._api_key = api_key or None
        sleep = sleep or (interruptible_sleep(stopping) if stopping is not None else time.sleep)
        self.http = HttpClient(
            session=make_session(user_agent or f"{config.tool} (+mailto:{config.email})", request_deadline),
            timeout=config.timeout,
            pacer=Pacer(config.requests_per_second, sleep=sleep),
            attempts=config.max_attempts,
            backoff=config.backoff_seconds,
            sleep=sleep,
        )
        self.http.session.headers["Accept"] = "application/json, application/xml;q=0.9"

    @property
    def requests_made(self) -> int:
        return self.http.requests_made

    def esearch_params(self, term: str, window: Window | None = None) -> dict[str, str]:
        """The esearch parameters of a search (without retstart/retmax and the API key)."""
        params = {"db": "pubmed", "term": term, "retmode": "json", "tool": self.config.tool}
        params["email"] = self.config.email
        if window is not None:
            params |= {"datetype": "edat", "mindate": pubmed_date(window[0]), "maxdate": pubmed_date(window[1])}
        return params

    def search(self, term: str, window: Window | None) -> list[str]:
        """Every PMID the query finds in the window, paging `page_size` at a time."""
        ids: list[str] = []
        for _ in range(MAX_PAGES):
            page = self._esearch(term, window, retstart=len(ids), retmax=self.page_size)
            ids += page.ids
            if not page.ids or len(ids) >= page.count:
                return list(dict.fromkeys(ids))
        raise SourceError(f"esearch {term[:60]!r}: more than {MAX_PAGES} pages; narrow the query")

    def count(self, term: str, window: Window | None = None) -> int:
        """How many records the query finds (nothing fetched)."""
        return self._esearch(term, window, retstart=0, retmax=0).count

    def fetch(self, pmids: Sequence[str]) -> list[PubmedArticle]:
        """The records of these PMIDs, EFETCH_BATCH a request; an answer with a record not asked
        for fails the poll."""
        articles: list[PubmedArticle] = []
        for start in range(0, len(pmids), EFETCH_BATCH):
            batch = list(pmids[start : start + EFETCH_BATCH])
            params = {"db": "pubmed", "id": ",".join(batch), "retmode": "xml", "tool": self.config.tool}
            params["email"] = self.config.email
            url = f"{self.config.base_url}/efetch.fcgi"
            where = f"efetch of {len(batch)} PMIDs from {batch[0]}"
            found = parse_efetch(self._request(url, params), where=where)
            unasked = sorted({article.pmid for article in found} - set(batch))
            if unasked or len(found) > len(batch):
                extra = ", ".join(unasked[:5]) or "repeated records"
                raise SourceError(f"{where}: NCBI returned {len(found)} records for {len(batch)} ids ({extra})")
            articles += found
        return articles

    def _esearch(self, term: str, window: Window | None, *, retstart: int, retmax: int) -> SearchPage:
        params = self.esearch_params(term, window) | {"retstart": str(retstart), "retmax": str(retmax)}
        where = f"esearch {term[:80]!r}"
        page = parse_esearch(self._request(f"{self.config.base_url}/esearch.fcgi", params), where=where)
        if len(page.ids) > retmax:
            raise SourceError(f"{where}: NCBI returned {len(page.ids)} ids where at most {retmax} were asked for")
        return page

    def _request(self, url: str, params: dict[str, str]) -> bytes:
        """GET, or a POST of the same form when it carries the API key or is long."""
        if self._api_key is not None:
            return self.http.fetch_bytes(url, form=params | {"api_key": self._api_key},
                                         max_bytes=self.config.max_bytes)  # fmt: skip
        if len(urlencode(params)) > MAX_GET_CHARS:
            return self.http.fetch_bytes(url, form=params, max_bytes=self.config.max_bytes)
        return self.http.fetch_bytes(url, params=params, max_bytes=self.config.max_bytes)
