"""Pure: charts as inline SVG, drawn on the server (no chart library, no script in the browser).

`dates_chart` draws a study's primary completion and completion dates across its stored versions;
`enrollment_chart` its enrollment. An ACTUAL value is a filled marker reached by a solid line, an
ESTIMATED (or untyped) one a hollow marker reached by a dashed line; a legend says so. Built with
xml.etree, so every label is escaped; only presentation attributes (no `style`), so a strict
Content-Security-Policy allows it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from watcher.model import DatePoint
from watcher.registry.studies import VersionView

SVG_NS = "http://www.w3.org/2000/svg"
WIDE, NARROW, HEIGHT = 640, 340, 300  # viewBox widths: a desktop column and a phone screen
LEFT, RIGHT, TOP, BOTTOM = 70, 14, 52, 46
COLOURS = ("#1f5fa8", "#b4462a")  # colour-blind safe pair: blue and rust
MARK_SHAPES = ("circle", "square")


@dataclass(frozen=True)
class Point:
    label: str  # the version, e.g. "v3 · 2026-11-02"
    value: float | None  # None: not given in this version
    actual: bool
    text: str  # how the value reads, e.g. "2027-06-30 (estimated)"


@dataclass(frozen=True)
class Series:
    name: str
    points: tuple[Point, ...]


def parse_registry_date(value: str | None) -> date | None:
    """'2027', '2027-06' or '2027-06-30' -> a day (the first of the month or year)."""
    if not value or not re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", value):
        return None
    parts = [int(p) for p in value.split("-")] + [1, 1]
    return date(parts[0], parts[1], parts[2])


def dates_chart(title: str, series: Sequence[Series], width: int = WIDE) -> str:
    """Dates (y, as ordinal days) across versions (x)."""
    return _chart(title, series, _date_ticks, "dates", width)


def enrollment_chart(title: str, series: Sequence[Series], width: int = WIDE) -> str:
    return _chart(title, series, _number_ticks, "participants", width)


def _chart(title: str, series: Sequence[Series], ticks_for: object, unit: str, width: int) -> str:
    svg = ET.Element(
        "svg",
        {"xmlns": SVG_NS, "viewBox": f"0 0 {width} {HEIGHT}", "role": "img", "class": "chart",
         "aria-label": title, "font-family": "sans-serif", "font-size": "13"},
    )  # fmt: skip
    ET.SubElement(svg, "title").text = title
    values = [p.value for s in series for p in s.points if p.value is not None]
    count = max((len(s.points) for s in series), default=0)
    if not values or count == 0:
        _text(svg, width / 2, HEIGHT / 2, f"No {unit} in the stored versions", anchor="middle")
        return ET.tostring(svg, encoding="unicode")
    low, high = min(values), max(values)
    ticks = ticks_for(low, high)  # type: ignore[operator]
    low, high = min(low, ticks[0][0]), max(high, ticks[-1][0])
    scale = _Scale(low=low, high=high if high > low else low + 1, count=count, width=width)
    _axes(svg, scale, ticks, series[0].points if series else ())
    for index, one in enumerate(series):
        _draw_series(svg, scale, one, COLOURS[index % 2], MARK_SHAPES[index % 2])
    _legend(svg, series)
    return ET.tostring(svg, encoding="unicode")


@dataclass(frozen=True)
class _Scale:
    low: float
    high: float
    count: int
    width: int

    def x(self, index: int) -> float:
        span = self.width - LEFT - RIGHT
        return LEFT + (span / 2 if self.count == 1 else span * index / (self.count - 1))

    def y(self, value: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - (value - self.low) / (self.high - self.low))


def _axes(svg: ET.Element, scale: _Scale, ticks: list[tuple[float, str]], points: Sequence[Point]) -> None:
    bottom = HEIGHT - BOTTOM
    for value, label in ticks:
        y = scale.y(value)
        ET.SubElement(svg, "line", {"x1": str(LEFT), "x2": str(scale.width - RIGHT), "y1": f"{y:.1f}", "y2": f"{y:.1f}",
                                    "stroke": "#d8dde3", "stroke-width": "1"})  # fmt: skip
        _text(svg, LEFT - 6, y + 4, label, anchor="end")
    ET.SubElement(svg, "line", {"x1": str(LEFT), "x2": str(scale.width - RIGHT), "y1": str(bottom), "y2": str(bottom),
                                "stroke": "#5b6570", "stroke-width": "1"})  # fmt: skip
    step = max(1, len(points) // (6 if scale.width >= WIDE else 3))  # a few labels under the axis
    for index, point in enumerate(points):
        last = index == len(points) - 1
        if (index % step == 0 and len(points) - 1 - index >= max(step // 2, 1)) or last or len(points) <= 2:
            _text(svg, scale.x(index), bottom + 18, point.label.split(" · ")[0], anchor="middle")
    _text(svg, (LEFT + scale.width - RIGHT) / 2, bottom + 36, "stored versions, oldest to newest", anchor="middle",
          fill="#5b6570")  # fmt: skip


def _draw_series(svg: ET.Element, scale: _Scale, series: Series, colour: str, shape: str) -> None:
    group = ET.SubElement(svg, "g", {"class": "series"})
    ET.SubElement(group, "title").text = series.name
    previous: tuple[float, float] | None = None
    for index, point in enumerate(series.points):
        if point.value is None:
            previous = None
            continue
        x, y = scale.x(index), scale.y(point.value)
        if previous is not None:
            line = {"x1": f"{previous[0]:.1f}", "y1": f"{previous[1]:.1f}", "x2": f"{x:.1f}", "y2": f"{y:.1f}",
                    "stroke": colour, "stroke-width": "2"}  # fmt: skip
            if not point.actual:
                line["stroke-dasharray"] = "6 4"
            ET.SubElement(group, "line", line)
        previous = (x, y)
    for index, point in enumerate(series.points):
        if point.value is not None:
            _marker(group, scale.x(index), scale.y(point.value), colour, shape, point, series.name)


def _marker(group: ET.Element, x: float, y: float, colour: str, shape: str, point: Point, name: str) -> None:
    fill = colour if point.actual else "#ffffff"
    attrs = {"fill": fill, "stroke": colour, "stroke-width": "2", "class": "actual" if point.actual else "estimated"}
    if shape == "circle":
        mark = ET.SubElement(group, "circle", {"cx": f"{x:.1f}", "cy": f"{y:.1f}", "r": "5", **attrs})
    else:
        mark = ET.SubElement(group, "rect", {"x": f"{x - 5:.1f}", "y": f"{y - 5:.1f}", "width": "10", "height": "10",
                                             **attrs})  # fmt: skip
    ET.SubElement(mark, "title").text = f"{name}, {point.label}: {point.text}"


def _legend(svg: ET.Element, series: Sequence[Series]) -> None:
    """Row 1: each series (colour and shape); row 2: what filled and hollow mean."""
    x: float = LEFT
    for index, one in enumerate(series):
        colour, shape = COLOURS[index % 2], MARK_SHAPES[index % 2]
        group = ET.SubElement(svg, "g", {"class": "legend"})
        _marker(group, x + 6, 14, colour, shape, Point("", 0, True, "actual"), one.name)
        _text(group, x + 16, 18, one.name)
        x += 30 + 7.2 * len(one.name)
    _marker(svg, LEFT + 6, 34, "#5b6570", "circle", Point("", 0, True, "actual"), "legend")
    _text(svg, LEFT + 16, 38, "actual (solid)")
    _marker(svg, LEFT + 126, 34, "#5b6570", "circle", Point("", 0, False, "estimated"), "legend")
    _text(svg, LEFT + 136, 38, "estimated (dashed)")


def _text(parent: ET.Element, x: float, y: float, text: str, anchor: str = "start", fill: str = "#1d2329") -> None:
    node = ET.SubElement(parent, "text", {"x": f"{x:.1f}", "y": f"{y:.1f}", "text-anchor": anchor, "fill": fill})
    node.text = text


def _date_ticks(low: float, high: float) -> list[tuple[float, str]]:
    """Ticks on the first of January (or of a quarter when the dates span little more than a year)."""
    first, last = date.fromordinal(int(low)), date.fromordinal(int(high))
    months = 3 if (last.year - first.year) <= 1 else 12 * max(1, (last.year - first.year + 5) // 6)
    ticks: list[tuple[float, str]] = []
    year, month = first.year, 1 if months >= 12 else ((first.month - 1) // 3) * 3 + 1
    while True:
        day = date(year, month, 1)
        ticks.append((float(day.toordinal()), f"{day:%Y}" if month == 1 and months >= 12 else f"{day:%Y-%m}"))
        if day > last:
            return ticks
        month += months
        year, month = year + (month - 1) // 12, (month - 1) % 12 + 1


def _number_ticks(low: float, high: float) -> list[tuple[float, str]]:
    span = max(high - min(low, 0), 1)
    step = 10 ** len(str(int(span))) / 10
    while span / step > 6:
        step *= 2
    top = step * (int(high // step) + 1)
    return [(step * n, f"{int(step * n):,}") for n in range(int(top // step) + 1)]


def _registry(version: VersionView) -> str:
    """' · registry version 24' (the site's number), when known."""
    return f" · {version.meta.registry_label}" if version.meta.registry_label else ""


def study_charts(versions: Sequence[VersionView], width: int = WIDE) -> tuple[str, str]:
    """The study page's two charts: dates (primary completion, completion) and enrollment."""
    labels = [f"v{v.meta.number} · {v.meta.seen_at:%Y-%m-%d}" + _registry(v) for v in versions]

    def date_series(name: str, attr: str) -> Series:
        points = []
        for label, version in zip(labels, versions, strict=True):
            point: DatePoint = getattr(version.facts, attr)
            day = parse_registry_date(point.value)
            points.append(Point(label, float(day.toordinal()) if day else None, point.type == "ACTUAL",
                                point.describe()))  # fmt: skip
        return Series(name, tuple(points))

    enrollment = Series("enrollment", tuple(
        Point(label, float(v.facts.enrollment_count) if v.facts.enrollment_count is not None else None,
              v.facts.enrollment_type == "ACTUAL",
              f"{v.facts.enrollment_count} {(v.facts.enrollment_type or '').lower()}".strip())
        for label, v in zip(labels, versions, strict=True)
    ))  # fmt: skip
    dates = dates_chart(
        "Primary completion and completion dates across stored versions",
        [date_series("primary completion", "primary_completion"), date_series("completion", "completion")],
        width,
    )
    return dates, enrollment_chart("Enrollment across stored versions", [enrollment], width)
