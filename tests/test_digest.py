"""mail/digest.py and mail/transport.py: grouping, subjects, escaping, the built message."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy

from hypothesis import given
from hypothesis import strategies as st

from watcher.mail.digest import SUBJECT_LIMIT, SourceProblem, build_digest, render_html, render_text
from watcher.mail.transport import build_message, new_message_id
from watcher.model import ChangeKind, ChangeRecord, Source

WHEN = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


def change(
    id: int,
    kind: ChangeKind,
    *,
    watch: str = "RCC bispecifics",
    nct: str = "NCT09000001",
    title: str = "FX-101 in RCC",
    summary: str = "Something changed.",
) -> ChangeRecord:
    return ChangeRecord(
        id=id,
        watch=watch,
        kind=kind,
        source=Source.CLINICALTRIALS,
        nct_id=nct,
        title=title,
        summary=summary,
        details={},
        detected_at=WHEN,
        study_status="RECRUITING",
        study_phase="Phase 1",
    )


def test_grouped_by_watch_in_config_order_then_most_important_first():
    digest = build_digest(
        "onc@example.org",
        [
            change(1, ChangeKind.SITES, watch="B"),
            change(2, ChangeKind.DATES, watch="A", nct="NCT09000002"),
            change(3, ChangeKind.STATUS, watch="A", nct="NCT09000003"),
            change(4, ChangeKind.ENROLLMENT, watch="A", nct="NCT09000002"),
        ],
        WHEN,
        watch_order=["B", "A"],
    )
    assert [w.name for w in digest.watches] == ["B", "A"]
    a = digest.watches[1]
    assert [s.nct_id for s in a.studies] == ["NCT09000003", "NCT09000002"]
    assert [c.kind for c in a.studies[1].changes] == [ChangeKind.DATES, ChangeKind.ENROLLMENT]
    # the body keeps the config's order; the subject puts the watch with the most important change first
    assert digest.subject() == "[trialwatch] A: 1 status change, 1 date change, 1 enrollment change; B: 1 site change"


def test_text_part_reads_on_its_own():
    text = render_text(
        build_digest("onc@example.org", [change(1, ChangeKind.DATES, summary="Completion slipped.")], WHEN)
    )
    assert "== RCC bispecifics (1 date change) ==" in text
    assert "FX-101 in RCC\nNCT09000001 · Recruiting · Phase 1" in text
    assert "  - Completion slipped." in text
    assert "Record:  https://clinicaltrials.gov/study/NCT09000001" in text
    assert "History: https://clinicaltrials.gov/study/NCT09000001?tab=history" in text


def test_html_escapes_everything_from_outside():
    hostile = change(
        1, ChangeKind.SITES, title='<script>alert("x")</script> & "CAR-T"', summary="Site added: <b>O'Brien</b> & Co."
    )
    html = render_html(build_digest("onc@example.org", [hostile], WHEN))
    assert "<script>" not in html and "<b>O" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;CAR-T&#34;" in html
    assert "Site added: &lt;b&gt;O&#39;Brien&lt;/b&gt; &amp; Co." in html


def test_html_escapes_watch_names_and_source_errors():
    problem = SourceProblem('Feed <img src=x onerror="y">', "403 <script>blocked</script> & more", WHEN)
    digest = build_digest(
        "onc@example.org", [change(1, ChangeKind.STATUS, watch="A & <B>")], WHEN,
        quiet=["Quiet <i>watch</i>"], problems=[problem],
    )  # fmt: skip
    html = render_html(digest)
    assert "<img" not in html and "<script>" not in html and "<i>watch" not in html and "<B>" not in html
    assert "Feed &lt;img src=x onerror=&#34;y&#34;&gt;: 403 &lt;script&gt;blocked&lt;/script&gt; &amp; more" in html
    assert "A &amp; &lt;B&gt;" in html and "Quiet &lt;i&gt;watch&lt;/i&gt;" in html
    text = render_text(digest)
    assert "403 <script>blocked</script> & more" in text  # the text part shows it as it is


@given(st.text(min_size=0, max_size=400))
def test_subject_is_one_short_line_whatever_the_watch_name(name):
    digest = build_digest("onc@example.org", [change(1, ChangeKind.STATUS, watch=name or "w")], WHEN)
    subject = digest.subject()
    assert len(subject) <= SUBJECT_LIMIT
    assert "\n" not in subject and "\r" not in subject
    assert not any(ord(c) < 32 or c in "\ufffe\uffff" or 0xD800 <= ord(c) <= 0xDFFF for c in subject)  # #25
    message = build_message(digest=digest, sender="trialwatch <tw@localhost>", message_id="<a@b>", date=WHEN)
    assert message_from_bytes(message.as_bytes(), policy=email_policy.default)["Subject"]


def test_a_title_with_crlf_cannot_add_a_header():
    evil = change(1, ChangeKind.STATUS, watch="RCC\r\nBcc: victim@example.org", title="x\r\nBcc: victim@example.org")
    digest = build_digest("onc@example.org", [evil], WHEN)
    message = build_message(digest=digest, sender="trialwatch <tw@localhost>", message_id="<a@b>", date=WHEN)
    parsed = message_from_bytes(message.as_bytes(), policy=email_policy.default)
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == "[trialwatch] RCC Bcc: victim@example.org: 1 status change"


def test_message_is_multipart_alternative_with_stable_headers():
    digest = build_digest("onc@example.org", [change(1, ChangeKind.STATUS)], WHEN)
    message_id = new_message_id("trialwatch <tw@example.org>", "abc123")
    assert message_id == "<trialwatch.abc123@example.org>"
    message = build_message(digest=digest, sender="trialwatch <tw@example.org>", message_id=message_id, date=WHEN)
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Message-ID"] == message_id
    assert message["Date"] == "Tue, 24 Nov 2026 07:00:00 +0000"
    assert message["To"] == "onc@example.org"


def test_article_fields_from_outside_are_escaped_and_only_http_links_are_kept():
    details = {
        "feed": "Evil <Journal> & Co", "title": '<script>alert("t")</script> CAR-T & "RCC"',
        "link": "javascript:fetch('//evil.example')", "doi": "10.1/<x>", "nct_ids": ["NCT09000001"],
        "published": None, "why": '"CAR-T" in <b>title</b>',
    }  # fmt: skip
    article = ChangeRecord(
        id=1, watch="RCC", kind=ChangeKind.NEW_ARTICLE, source=Source.FEEDS, nct_id="", title=details["title"],
        summary="New article in Evil <Journal>: x", details=details, detected_at=WHEN,
    )  # fmt: skip
    publication = ChangeRecord(
        id=2, watch="RCC", kind=ChangeKind.PUBLICATION, source=Source.FEEDS, nct_id="NCT09000001", title="FX-101",
        summary="New article on NCT09000001 in Evil <Journal>: <i>x</i>",
        details={**details, "link": "data:text/html,x"}, detected_at=WHEN,
    )  # fmt: skip
    html = render_html(build_digest("onc@example.org", [article, publication], WHEN))
    assert "<script>" not in html and "<Journal>" not in html and "<b>title" not in html and "<i>x" not in html
    assert "javascript:" not in html and "data:text" not in html
    assert "&lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt; CAR-T &amp; &#34;RCC&#34;" in html
    assert "Evil &lt;Journal&gt; &amp; Co" in html and "doi:10.1/&lt;x&gt;" in html
    text = render_text(build_digest("onc@example.org", [article, publication], WHEN))
    assert "javascript:" not in text and 'Matched: "CAR-T" in <b>title</b>' in text


def test_coming_up_is_rendered_per_watch_and_omitted_when_empty():
    from datetime import date

    from watcher.milestones import DateEvent

    events = [
        DateEvent(f"NCT0900000{i}", f"<Trial {i}>", "primary_completion", date(2027, 1, i), True) for i in range(1, 4)
    ]
    digest = build_digest("a@example.org", [], datetime(2026, 12, 1, tzinfo=UTC), quiet=["RCC", "Other"])
    digest.coming_up = {"RCC": events}
    text, html = render_text(digest), render_html(digest)
    assert text.count("Coming up:") == 1
    assert "  2027-01-01 · NCT09000001 primary completion (estimated): <Trial 1>\n" in text
    assert "&lt;Trial 1&gt;" in html and "<Trial 1>" not in html
    assert "Coming up" not in text.split("== Other ==")[1]


def test_meeting_abstracts_come_first_among_the_articles_labelled_as_what_they_are():
    def article(id: int, source: Source, item_type: str, label: str) -> ChangeRecord:
        details = {"title": f"Work {id}", "link": f"https://doi.org/10.1/{id}", "item_type": item_type,
                   "label": label, "journal": "J", "why": '"CAR-T" in title'}  # fmt: skip
        return ChangeRecord(id=id, watch="RCC", kind=ChangeKind.NEW_ARTICLE, source=source, nct_id="",
                            title=f"Work {id}", summary="x", details=details, detected_at=WHEN)  # fmt: skip

    changes = [
        article(1, Source.PUBMED, "article", ""),
        article(2, Source.EUROPEPMC, "preprint", "medRxiv preprint, 2026"),
        article(3, Source.CROSSREF, "meeting_abstract", "Meeting abstract 4068, J Clin Oncol 39 (15_suppl), 2021"),
    ]
    digest = build_digest("onc@example.org", changes, WHEN)
    assert [view.change.id for view in digest.watches[0].articles] == [3, 2, 1]
    text = render_text(digest)
    assert text.index("Work 3") < text.index("Work 2") < text.index("Work 1")
    assert "  Meeting abstract 4068, J Clin Oncol 39 (15_suppl), 2021 (found in Crossref)" in text
    assert "  medRxiv preprint, 2026 (found in Europe PMC)" in text
    html = render_html(digest)
    assert "<strong>Meeting abstract 4068, J Clin Oncol 39 (15_suppl), 2021</strong>" in html
