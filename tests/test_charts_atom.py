"""Pure parts of the study page and the feeds: the SVG charts (markers, dashes, legend, escaping)
and the Atom writer (feedparser reads it with bozo 0; ids are tag: URIs stable across renders)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import feedparser

from watcher.model import ChangeKind, ChangeRecord, DatePoint, Source
from watcher.registry.studies import VersionFacts, VersionView
from watcher.store.timeline import VersionMeta
from watcher.web.atom import entry_id, render_atom
from watcher.web.charts import Point, Series, dates_chart, parse_registry_date, study_charts

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def version(n: int, primary: DatePoint, completion: DatePoint, enrollment: int | None, kind: str) -> VersionView:
    meta = VersionMeta(id=n, number=n, seen_at=T0 + timedelta(days=n), last_update_posted=None)
    facts = VersionFacts(status="RECRUITING", start=DatePoint(None), primary_completion=primary,
                         completion=completion, enrollment_count=enrollment, enrollment_type=kind)  # fmt: skip
    return VersionView(meta=meta, facts=facts, changes=())


def markers(svg: ET.Element) -> list[ET.Element]:
    return [
        e for e in svg.iter() if e.tag in (f"{SVG}circle", f"{SVG}rect") and e.get("class") in ("actual", "estimated")
    ]


def test_estimated_dates_are_hollow_and_dashed_actual_ones_filled_and_solid():
    versions = [
        version(1, DatePoint("2027-03-31", "ESTIMATED"), DatePoint("2027-12", "ESTIMATED"), 40, "ESTIMATED"),
        version(2, DatePoint("2027-06-30", "ESTIMATED"), DatePoint(None), 60, "ESTIMATED"),
        version(3, DatePoint("2027-05-02", "ACTUAL"), DatePoint("2028-01-15", "ACTUAL"), 58, "ACTUAL"),
    ]
    dates, enrollment = study_charts(versions)
    svg = ET.fromstring(dates)
    plotted = [m for m in markers(svg) if m.find(f"{SVG}title").text != "legend"]
    series_marks = [m for m in plotted if "·" in (m.find(f"{SVG}title").text or "")]
    assert len(series_marks) == 5  # three primary completion dates, two completion dates (one not given)
    filled = [m for m in series_marks if m.get("class") == "actual"]
    assert len(filled) == 2 and all(m.get("fill") != "#ffffff" for m in filled)
    assert all(m.get("fill") == "#ffffff" for m in series_marks if m.get("class") == "estimated")
    lines = [e for e in svg.iter(f"{SVG}line") if e.get("stroke") in ("#1f5fa8", "#b4462a")]
    dashed = [line for line in lines if line.get("stroke-dasharray")]
    assert len(lines) == 2 and len(dashed) == 1  # v1->v2 estimated (dashed), v2->v3 actual (solid); completion broken
    legend = " ".join(t.text or "" for t in svg.iter(f"{SVG}text"))
    assert "primary completion" in legend and "completion" in legend and "estimated" in legend and "actual" in legend
    enrollment_marks = [m for m in markers(ET.fromstring(enrollment)) if "·" in (m.find(f"{SVG}title").text or "")]
    assert [m.get("class") for m in enrollment_marks] == ["estimated", "estimated", "actual"]


def test_labels_are_escaped_and_nothing_runs():
    hostile = "<img src=x onerror=alert(1)>"
    svg_text = dates_chart(hostile, [Series(hostile, (Point(hostile, 738000.0, True, hostile),))])
    assert "<img" not in svg_text and "&lt;img src=x onerror=alert(1)&gt;" in svg_text
    svg = ET.fromstring(svg_text)
    assert not [e for e in svg.iter() if e.tag.endswith("script") or any(k.startswith("on") for k in e.attrib)]
    assert not [e for e in svg.iter() if "style" in e.attrib]  # presentation attributes only (CSP)


def test_no_dates_says_so():
    svg = dates_chart("t", [Series("primary completion", (Point("v1", None, False, "not given"),))])
    assert "No dates in the stored versions" in svg


def test_registry_dates_of_every_precision():
    assert [parse_registry_date(v) for v in ("2027", "2027-06", "2027-06-30", None, "soon")] == [
        datetime(2027, 1, 1).date(), datetime(2027, 6, 1).date(), datetime(2027, 6, 30).date(), None, None,
    ]  # fmt: skip


def change(n: int, **kwargs) -> ChangeRecord:
    fields = dict(id=n, watch="RCC <bispecifics>", kind=ChangeKind.DATES, source=Source.CLINICALTRIALS,
                  nct_id="NCT05805501", title="<img src=x onerror=alert(1)>",
                  summary=f"Primary completion slipped {n} days & more <b>", details={},
                  detected_at=T0 - timedelta(hours=n))  # fmt: skip
    fields.update(kwargs)
    return ChangeRecord(**fields)


def test_atom_is_valid_and_its_ids_are_stable():
    article = change(9, kind=ChangeKind.NEW_ARTICLE, source=Source.FEEDS, nct_id="",
                     details={"link": "https://journal.example/a?x=1&y=2"})  # fmt: skip
    changes = [change(1), change(2), article]
    first = render_atom(watch="RCC <bispecifics>", changes=changes, public_url="https://tw.example.org/",
                        generated_at=T0)  # fmt: skip
    second = render_atom(watch="RCC <bispecifics>", changes=changes, public_url="https://tw.example.org/",
                         generated_at=T0 + timedelta(hours=5))  # fmt: skip
    parsed, again = feedparser.parse(first), feedparser.parse(second)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10" and len(parsed.entries) == 3
    assert (
        [e.id for e in parsed.entries]
        == [e.id for e in again.entries]
        == [entry_id("https://tw.example.org/", n) for n in (1, 2, 9)]
    )
    assert parsed.entries[0].id == "tag:tw.example.org,2026:trialwatch/change/1"
    entry = parsed.entries[0]
    assert entry.title == "NCT05805501, dates: Primary completion slipped 1 days & more <b>"
    assert entry.link == "https://tw.example.org/studies/NCT05805501"
    assert {link.href for link in entry.links} == {"https://tw.example.org/studies/NCT05805501",
                                                   "https://clinicaltrials.gov/study/NCT05805501"}  # fmt: skip
    assert entry.content[0].value == "Primary completion slipped 1 days & more <b>"
    assert entry.updated_parsed[:5] == (2026, 3, 1, 8, 30)
    assert parsed.entries[2].link == "https://journal.example/a?x=1&y=2"
    assert parsed.feed.title == "trialwatch: RCC <bispecifics>" and parsed.feed.author == "trialwatch"
    assert b"<b>" not in first and b"<img" not in first
