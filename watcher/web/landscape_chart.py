"""Pure: a landscape's timeline as inline SVG, drawn on the server (no script, no chart library).

One bar per study, sorted by primary completion: from its start to its primary completion, then on
to its completion. A part that ends on an ACTUAL date is solid, one that ends on an estimated (or
untyped) date is hatched; a study with only one date is a diamond. Bars are coloured by status
(a legend names the colours), a vertical line marks today, and each row (its NCT id and title,
then its bar) links to the study's page, with the dates in its tooltip. Built with xml.etree (every
label escaped) and presentation attributes only (no `style`), so the strict CSP allows it. The SVG
has a fixed size: on a phone it scrolls inside its own box (landscape.css).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import date

from watcher.model import DatePoint, humanize_status
from watcher.registry.landscape_row import LandscapeRow
from watcher.web.charts import SVG_NS, parse_registry_date

LABEL, PLOT, RIGHT = 310, 620, 20  # widths: the labels, the time axis, a margin
TOP, ROW, BOTTOM = 78, 20, 30  # the legend and axis above the bars, one row, below
MAX_TITLE = 36
STATUS_COLOURS = {
    "RECRUITING": "#1b7f3b", "NOT_YET_RECRUITING": "#a06800", "ENROLLING_BY_INVITATION": "#2b8a8a",
    "ACTIVE_NOT_RECRUITING": "#1f5fa8", "COMPLETED": "#4d5660", "SUSPENDED": "#c2410c",
    "TERMINATED": "#a3213f", "WITHDRAWN": "#7a4fa0",
}  # fmt: skip
OTHER_COLOUR = "#8a939c"
TODAY_COLOUR = "#d11a2a"
WIDTH = LABEL + PLOT + RIGHT


def colour_of(status: str) -> str:
    return STATUS_COLOURS.get(status, OTHER_COLOUR)


def _days(row: LandscapeRow) -> tuple[date | None, date | None, date | None]:
    return (parse_registry_date(row.start.value), parse_registry_date(row.primary_completion.value),
            parse_registry_date(row.completion.value))  # fmt: skip


def chart_order(rows: Sequence[LandscapeRow]) -> list[LandscapeRow]:
    """Sorted by primary completion (then completion, start; studies without dates last)."""

    def key(row: LandscapeRow) -> tuple[date, date, date, str]:
        start, primary, end = _days(row)
        last = date.max
        return (primary or end or last, end or primary or last, start or last, row.nct_id)

    return sorted(rows, key=key)


class _Axis:
    def __init__(self, low: date, high: date) -> None:
        self.low, self.span = low, max((high - low).days, 1)

    def x(self, day: date) -> float:
        return LABEL + PLOT * (day - self.low).days / self.span


def _axis_of(rows: Sequence[LandscapeRow], today: date) -> _Axis:
    days = [day for row in rows for day in _days(row) if day is not None] + [today]
    low, high = min(days), max(days)
    return _Axis(date(low.year, 1, 1), date(high.year + 1, 1, 1))


def timeline_chart(rows: Sequence[LandscapeRow], today: date, *, title: str) -> str:
    """The chart of `rows` (drawn in the order given: see chart_order)."""
    height = TOP + ROW * max(len(rows), 1) + BOTTOM
    svg = ET.Element("svg", {
        "xmlns": SVG_NS, "width": str(WIDTH), "height": str(height), "viewBox": f"0 0 {WIDTH} {height}",
        "role": "img", "class": "landscape-chart", "aria-label": title, "font-family": "sans-serif",
        "font-size": "12",
    })  # fmt: skip
    ET.SubElement(svg, "title").text = title
    statuses = list(dict.fromkeys(row.status for row in rows))
    _patterns(svg, statuses)
    _legend(svg, statuses, today)
    if not rows:
        _text(svg, WIDTH / 2, TOP + 14, "No study to draw.", anchor="middle")
        return ET.tostring(svg, encoding="unicode")
    axis = _axis_of(rows, today)
    _years(svg, axis, height)
    for index, row in enumerate(rows):
        _bar(svg, axis, row, TOP + ROW * index)
    x = axis.x(today)
    ET.SubElement(svg, "line", {"x1": f"{x:.1f}", "x2": f"{x:.1f}", "y1": str(TOP - 6), "y2": str(height - BOTTOM),
                                "stroke": TODAY_COLOUR, "stroke-width": "1.5", "class": "today"})  # fmt: skip
    return ET.tostring(svg, encoding="unicode")


def _pattern_id(status: str) -> str:
    return f"hatch-{status.lower()}" if status in STATUS_COLOURS else "hatch-other"


def _patterns(svg: ET.Element, statuses: Sequence[str]) -> None:
    defs = ET.SubElement(svg, "defs")
    for status in dict.fromkeys([*statuses, "UNKNOWN"]):
        attributes = {"id": _pattern_id(status), "patternUnits": "userSpaceOnUse", "width": "6", "height": "6",
                      "patternTransform": "rotate(45)"}  # fmt: skip
        pattern = ET.SubElement(defs, "pattern", attributes)
        ET.SubElement(pattern, "rect", {"width": "6", "height": "6", "fill": "#ffffff"})
        ET.SubElement(pattern, "line", {"x1": "0", "y1": "0", "x2": "0", "y2": "6", "stroke": colour_of(status),
                                        "stroke-width": "3"})  # fmt: skip


def _legend(svg: ET.Element, statuses: Sequence[str], today: date) -> None:
    """Row 1: the colour of each status drawn; row 2: solid, hatched, the diamond and today."""
    x = 8.0
    for status in statuses:
        ET.SubElement(svg, "rect", {"x": f"{x:.1f}", "y": "6", "width": "14", "height": "10",
                                    "fill": colour_of(status)})  # fmt: skip
        label = humanize_status(status)
        _text(svg, x + 18, 15, label)
        x += 30 + 6.6 * len(label)
    ET.SubElement(svg, "rect", {"x": "8", "y": "26", "width": "28", "height": "10", "fill": "#4d5660"})
    _text(svg, 40, 35, "actual (solid)")
    ET.SubElement(svg, "rect", {"x": "130", "y": "26", "width": "28", "height": "10", "fill": "url(#hatch-other)",
                                "stroke": OTHER_COLOUR})  # fmt: skip
    _text(svg, 162, 35, "estimated (hatched)")
    ET.SubElement(svg, "path", {"d": "M 290 31 l 6 -6 l 6 6 l -6 6 z", "fill": "#4d5660"})
    _text(svg, 308, 35, "one date only")
    ET.SubElement(svg, "line", {"x1": "410", "x2": "410", "y1": "24", "y2": "38", "stroke": TODAY_COLOUR,
                                "stroke-width": "1.5"})  # fmt: skip
    _text(svg, 416, 35, f"today ({today:%Y-%m-%d})")
    _text(svg, 8, 52, "bars run from start to primary completion, then on to completion", fill="#5b6570")


def _years(svg: ET.Element, axis: _Axis, height: int) -> None:
    years = range(axis.low.year, axis.low.year + axis.span // 365 + 2)
    step = max(1, len(years) // 12)
    for year in years[::step]:
        x = axis.x(date(year, 1, 1))
        if x > LABEL + PLOT + 0.5:
            break
        ET.SubElement(svg, "line", {"x1": f"{x:.1f}", "x2": f"{x:.1f}", "y1": str(TOP - 2),
                                    "y2": str(height - BOTTOM), "stroke": "#d8dde3", "stroke-width": "1"})  # fmt: skip
        if x < LABEL + PLOT - 10:  # above the bars and below them
            _text(svg, x + 3, TOP - 6, str(year), fill="#5b6570")
            _text(svg, x + 3, height - BOTTOM + 16, str(year), fill="#5b6570")


def _bar(svg: ET.Element, axis: _Axis, row: LandscapeRow, y: float) -> None:
    link = ET.SubElement(svg, "a", {"href": f"/studies/{row.nct_id}", "class": "bar"})
    ET.SubElement(link, "title").text = _tooltip(row)
    title = row.title if len(row.title) <= MAX_TITLE else row.title[: MAX_TITLE - 1].rstrip() + "…"
    _text(link, 8, y + 14, row.nct_id, fill="#1f5fa8")
    _text(link, 92, y + 14, title)
    start, primary, end = _days(row)
    colour = colour_of(row.status)
    parts = [(start, primary, row.primary_completion), (primary or start, end, row.completion)]
    drawn = False
    for begin, finish, point in parts:
        if begin is None or finish is None or finish < begin:
            continue
        x1, x2 = axis.x(begin), axis.x(finish)
        actual = point.type == "ACTUAL"
        ET.SubElement(link, "rect", {
            "x": f"{x1:.1f}", "y": f"{y + 4}", "width": f"{max(x2 - x1, 2):.1f}", "height": str(ROW - 8),
            "fill": colour if actual else f"url(#{_pattern_id(row.status)})", "stroke": colour, "stroke-width": "1",
            "class": "actual" if actual else "estimated",
        })  # fmt: skip
        drawn = True
    single = primary or end or start
    if not drawn and single is not None:
        x = axis.x(single)
        ET.SubElement(link, "path", {"d": f"M {x - 6:.1f} {y + 10} l 6 -6 l 6 6 l -6 6 z", "fill": colour})
    elif not drawn:
        _text(link, LABEL + 4, y + 14, "no dates given", fill="#5b6570")


def _tooltip(row: LandscapeRow) -> str:
    def said(point: DatePoint) -> str:
        return point.describe()

    return (f"{row.nct_id} · {row.title}\n{row.status_label}, {row.phase}\nstart {said(row.start)}; "
            f"primary completion {said(row.primary_completion)}; completion {said(row.completion)}")  # fmt: skip


def _text(parent: ET.Element, x: float, y: float, text: str, anchor: str = "start", fill: str = "#1d2329") -> None:
    node = ET.SubElement(parent, "text", {"x": f"{x:.1f}", "y": f"{y:.1f}", "text-anchor": anchor, "fill": fill})
    node.text = text
