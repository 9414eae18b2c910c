"""Group one recipient's pending changes by watch, then study; render subject, text and HTML.

Rendering is pure: the same changes give the same message. Templates live in
watcher/mail/templates (Jinja2, autoescaped for HTML: every title and site name came from outside).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from watcher.cleantext import xml_text
from watcher.mail.links import MessageLinks
from watcher.milestones import DateEvent
from watcher.model import CTGOV_HISTORY_URL, CTGOV_STUDY_URL, ChangeKind, ChangeRecord, Source, humanize_status

if TYPE_CHECKING:
    from jinja2 import Environment

SUBJECT_LIMIT = 120
_KIND_WORDS = {
    ChangeKind.STATUS: ("status change", "status changes"),
    ChangeKind.RESULTS_POSTED: ("results posted", "results posted"),
    ChangeKind.RESULTS_OVERDUE: ("results overdue", "results overdue"),
    ChangeKind.NEW_STUDY: ("new study", "new studies"),
    ChangeKind.NO_LONGER_MATCHING: ("study left", "studies left"),
    ChangeKind.DATES: ("date change", "date changes"),
    ChangeKind.ESTIMATED_DATE_PASSED: ("estimated date passed", "estimated dates passed"),
    ChangeKind.ENROLLMENT: ("enrollment change", "enrollment changes"),
    ChangeKind.SITES: ("site change", "site changes"),
    ChangeKind.ARMS: ("arm change", "arm changes"),
    ChangeKind.ELIGIBILITY: ("eligibility change", "eligibility changes"),
    ChangeKind.OUTCOMES: ("outcome change", "outcome changes"),
    ChangeKind.PHASE: ("phase change", "phase changes"),
    ChangeKind.SPONSOR: ("sponsor change", "sponsor changes"),
    ChangeKind.TITLE: ("title change", "title changes"),
    ChangeKind.OTHER: ("other change", "other changes"),
    ChangeKind.PUBLICATION: ("article on a watched trial", "articles on watched trials"),
    ChangeKind.NEW_ARTICLE: ("new article", "new articles"),
}


@dataclass
class StudySection:
    nct_id: str
    title: str
    status: str
    phase: str
    changes: list[ChangeRecord] = field(default_factory=list)

    @property
    def url(self) -> str:
        return CTGOV_STUDY_URL.format(nct_id=self.nct_id)

    @property
    def history_url(self) -> str:
        return CTGOV_HISTORY_URL.format(nct_id=self.nct_id)

    @property
    def rank(self) -> int:
        return min(change.kind.rank for change in self.changes)


_FOUND_IN = {Source.PUBMED: "PubMed", Source.CROSSREF: "Crossref", Source.EUROPEPMC: "Europe PMC"}
_TYPE_ORDER = {"meeting_abstract": 0, "preprint": 1}  # readouts first in the articles section (#20)


@dataclass(frozen=True)
class ArticleView:
    """A new article as the digest shows it: title, journal, date, why it matched, trials named."""

    change: ChangeRecord

    @property
    def title(self) -> str:
        return str(self.change.details.get("title") or self.change.title)

    @property
    def link(self) -> str:
        return safe_url(self.change.details.get("link"))

    @property
    def journal(self) -> str:
        return str(self.change.details.get("journal") or self.change.details.get("feed") or "")

    @property
    def source(self) -> str:
        """Where trialwatch found it, when not in the journal's own feed: 'PubMed', 'Crossref'."""
        return _FOUND_IN.get(self.change.source, "")

    @property
    def item_type(self) -> str:
        return self.change.item_type

    @property
    def label(self) -> str:
        """What it is, where: 'Meeting abstract 4068, J Clin Oncol 39 (15_suppl), 2021' (#20)."""
        return str(self.change.details.get("label") or "")

    @property
    def pmid(self) -> str:
        return str(self.change.details.get("pmid") or "")

    @property
    def date(self) -> str:
        published = self.change.details.get("published")
        return str(published)[:10] if published else f"seen {self.change.detected_at:%Y-%m-%d}"

    @property
    def why(self) -> str:
        return str(self.change.details.get("why") or "")

    @property
    def trials(self) -> list[str]:
        return [str(nct) for nct in self.change.details.get("nct_ids") or []]

    @property
    def doi(self) -> str:
        return str(self.change.details.get("doi") or "")


@dataclass
class WatchSection:
    name: str
    studies: list[StudySection]
    articles: list[ArticleView] = field(default_factory=list)

    @property
    def changes(self) -> list[ChangeRecord]:
        return [change for study in self.studies for change in study.changes] + [a.change for a in self.articles]

    def counts(self) -> str:
        """'1 status change, 2 date changes' in reading order."""
        counter = Counter(change.kind for change in self.changes)
        parts = []
        for kind in sorted(counter, key=lambda k: k.rank):
            singular, plural = _KIND_WORDS[kind]
            parts.append(f"{counter[kind]} {singular if counter[kind] == 1 else plural}")
        return ", ".join(parts)


@dataclass(frozen=True)
class SourceProblem:
    """A source that is failing now: shown in the footer of every digest until it recovers."""

    source: str
    error: str
    since: datetime

    def describe(self) -> str:
        return one_line(f"{self.source}: {self.error} (failing since {self.since:%Y-%m-%d %H:%M} UTC)", 300)


@dataclass
class Digest:
    recipient: str
    watches: list[WatchSection]
    created_at: datetime
    quiet: list[str] = field(default_factory=list)  # watches with `send_empty` and nothing new
    problems: list[SourceProblem] = field(default_factory=list)
    config_name: str = "trialwatch.toml"
    links: MessageLinks | None = None  # unsubscribe and manage links, when the web app is public
    coming_up: dict[str, list[DateEvent]] = field(default_factory=dict)  # by watch: dates ahead (mail.coming_up)

    @property
    def change_count(self) -> int:
        return sum(len(watch.changes) for watch in self.watches)

    @property
    def watch_names(self) -> list[str]:
        """Every watch this message speaks for (with changes first, then quiet ones)."""
        return [watch.name for watch in self.watches] + self.quiet

    def health(self) -> str:
        count = len(self.problems)
        return "all sources healthy" if not count else f"{count} source{'s' if count != 1 else ''} failing"

    def subject(self) -> str:
        ranked = sorted(self.watches, key=lambda watch: min(change.kind.rank for change in watch.changes))
        parts = [f"{watch.name}: {watch.counts()}" for watch in ranked]  # what matters most first
        if self.quiet and not parts:
            parts = [f"{', '.join(self.quiet)}: nothing new, {self.health()}"]
        return one_line(f"[trialwatch] {'; '.join(parts) or 'nothing new'}", SUBJECT_LIMIT)


def safe_url(value: object) -> str:
    """A link from outside, only if it is http(s): never `javascript:` or `data:` in an href."""
    text = str(value or "").strip()
    return text if text.lower().startswith(("https://", "http://")) else ""


def one_line(text: str, limit: int) -> str:
    """Collapse all whitespace (CR/LF included), drop what XML and headers cannot hold (control
    characters, #25) and cut to `limit` characters with an ellipsis."""
    flat = " ".join(xml_text(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def build_digest(
    recipient: str,
    changes: Sequence[ChangeRecord],
    created_at: datetime,
    watch_order: Sequence[str] = (),
    *,
    quiet: Sequence[str] = (),
    problems: Sequence[SourceProblem] = (),
    config_name: str = "trialwatch.toml",
) -> Digest:
    """Group changes by watch (in config order) and study (most important first). Only alerted
    changes: one a watch rule held back never reaches a digest."""
    by_watch: dict[str, dict[str, StudySection]] = {}
    articles: dict[str, list[ArticleView]] = {}
    for change in sorted((c for c in changes if c.alerted), key=lambda c: (c.kind.rank, c.id)):
        studies = by_watch.setdefault(change.watch, {})
        if change.kind is ChangeKind.NEW_ARTICLE:
            articles.setdefault(change.watch, []).append(ArticleView(change))
        else:
            studies.setdefault(change.nct_id, _study_section(change)).changes.append(change)
    watches = [
        WatchSection(
            name=name,
            studies=sorted(studies.values(), key=lambda s: (s.rank, s.nct_id)),
            articles=sorted(articles.get(name, []), key=lambda a: _TYPE_ORDER.get(a.item_type, 2)),
        )
        for name, studies in sorted(by_watch.items(), key=lambda item: _order(item[0], watch_order))
    ]
    with_changes = {watch.name for watch in watches}
    return Digest(
        recipient=recipient,
        watches=watches,
        created_at=created_at,
        quiet=[name for name in quiet if name not in with_changes],
        problems=list(problems),
        config_name=config_name,
    )


def _study_section(change: ChangeRecord) -> StudySection:
    status = humanize_status(change.study_status) if change.study_status else ""
    return StudySection(nct_id=change.nct_id, title=change.title, status=status, phase=change.study_phase)


def _order(name: str, watch_order: Sequence[str]) -> tuple[int, str]:
    return (watch_order.index(name) if name in watch_order else len(watch_order), name)


def _environment() -> Environment:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape  # when a mail is rendered

    environment = Environment(
        loader=PackageLoader("watcher.mail", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["safe_url"] = safe_url
    return environment


def render_text(digest: Digest) -> str:
    return _environment().get_template("digest.txt").render(digest=digest)


def render_html(digest: Digest) -> str:
    return _environment().get_template("digest.html").render(digest=digest)
