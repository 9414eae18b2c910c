"""A landscape's rows for outside: the columns every rendering shares (CSV, XLSX, the terminal
table), one JSON object per row (the API, `trialwatch studies --json`), a CSV streamed a few
hundred rows at a time and an XLSX written with XlsxWriter in its constant-memory mode.

Spreadsheet injection (OWASP, "CSV Injection"): registry text may start with `=`, `+`, `-`, `@`,
a tab or a carriage return, which a spreadsheet would take for a formula. In the CSV such a cell
is written with a leading apostrophe; in the XLSX every text is a string cell (never a formula)
and such a cell also carries Excel's quote prefix, so editing it does not turn it into one.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import xlsxwriter

from watcher.model import DatePoint
from watcher.registry.landscape_row import LandscapeRow

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_BATCH = 500  # rows per chunk of a streamed CSV
BOM = "\ufeff"
Cell = str | int | date | DatePoint | None


@dataclass(frozen=True)
class Column:
    name: str  # the header, as in the JSON fields
    width: int  # characters, in the XLSX


COLUMNS: tuple[Column, ...] = tuple(Column(name, width) for name, width in (
    ("nct_id", 13), ("title", 60), ("status", 22), ("phase", 16), ("sponsor", 30), ("interventions", 45),
    ("enrollment", 11), ("enrollment_type", 11), ("start", 11), ("start_type", 10), ("primary_completion", 11),
    ("primary_completion_type", 10), ("completion", 11), ("completion_type", 10), ("countries", 30), ("sites", 7),
    ("sites_recruiting", 9), ("results_posted", 11), ("articles", 8), ("last_change", 16), ("last_change_at", 16),
    ("left_at", 16), ("url", 38),
))  # fmt: skip


def _lower(value: str | None) -> str | None:
    return value.lower() if value else None


def _minute(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%d %H:%M") if value else None


def cells(row: LandscapeRow) -> list[Cell]:
    """The row's cells in the order of COLUMNS (one call per row: 10,000 rows are 230,000 cells)."""
    last = row.last_change
    start, primary, end = row.start, row.primary_completion, row.completion
    return [
        row.nct_id, row.title, row.status_label, row.phase, row.sponsor, row.interventions_text,
        row.enrollment_count, _lower(row.enrollment_type), start, _lower(start.type), primary, _lower(primary.type),
        end, _lower(end.type), "; ".join(row.countries), row.sites, row.sites_recruiting,
        (row.results_date or "yes") if row.results else "no", row.articles, last.kind if last else None,
        _minute(last.detected_at) if last else None, _minute(row.left_at), row.url,
    ]  # fmt: skip


def safe_text(text: str) -> str:
    """Text a spreadsheet will not evaluate: a leading apostrophe before a formula's first sign."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def plain(value: Cell) -> str:
    """A cell as text (the CSV, the terminal): dates as the registry gives them."""
    if value is None:
        return ""
    if isinstance(value, DatePoint):
        return value.value or ""
    return str(value)


def csv_chunks(rows: Iterable[LandscapeRow]) -> Iterator[bytes]:
    """The CSV (RFC 4180: CRLF, quotes doubled) in UTF-8 with a byte-order mark, CSV_BATCH rows a chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write(BOM)
    writer.writerow([column.name for column in COLUMNS])
    for count, row in enumerate(rows, start=1):
        writer.writerow([_csv_cell(value) for value in cells(row)])
        if count % CSV_BATCH == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def _csv_cell(value: Cell) -> str:
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    return plain(value)


def write_xlsx(rows: Iterable[LandscapeRow], path: Path, *, sheet: str = "Studies") -> None:
    """The XLSX at `path`: a frozen header row, sized columns, registry dates as dates (a month or
    a year alone shown as such), counts as numbers, every text a string cell."""
    options = {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
               "strings_to_numbers": False, "tmpdir": str(path.parent)}  # fmt: skip
    workbook = xlsxwriter.Workbook(str(path), options)
    try:
        formats = {
            "header": workbook.add_format({"bold": True, "bottom": 1}),
            "quoted": workbook.add_format({"quote_prefix": True}),
            10: workbook.add_format({"num_format": "yyyy-mm-dd"}),
            7: workbook.add_format({"num_format": "yyyy-mm"}),
            4: workbook.add_format({"num_format": "yyyy"}),
        }
        worksheet = workbook.add_worksheet(sheet)
        worksheet.freeze_panes(1, 0)
        for index, column in enumerate(COLUMNS):
            worksheet.set_column(index, index, column.width)
            worksheet.write_string(0, index, column.name, formats["header"])
        for number, row in enumerate(rows, start=1):
            for index, value in enumerate(cells(row)):
                if value is not None and value != "":
                    _xlsx_cell(worksheet, number, index, value, formats)
        worksheet.autofilter(0, 0, 0, len(COLUMNS) - 1)
    finally:
        workbook.close()


def _xlsx_cell(worksheet: Any, row: int, index: int, value: Cell, formats: dict[Any, Any]) -> None:
    if isinstance(value, str):
        worksheet.write_string(row, index, value, formats["quoted"] if value.startswith(FORMULA_STARTS) else None)
    elif isinstance(value, int):
        worksheet.write_number(row, index, value)
    elif isinstance(value, DatePoint):
        day = _registry_day(value.value)
        if day is not None and value.value is not None:
            worksheet.write_datetime(row, index, day, formats[len(value.value)])


def _registry_day(value: str | None) -> date | None:
    if not value or len(value) not in (4, 7, 10):
        return None
    try:
        parts = [int(p) for p in value.split("-")] + [1, 1]
        return date(parts[0], parts[1], parts[2])
    except ValueError:
        return None


def _date_json(point: DatePoint) -> dict[str, str | None]:
    return {"date": point.value, "type": point.type}


def row_json(row: LandscapeRow) -> dict[str, Any]:
    """One study of the landscape as the API and `trialwatch studies --json` give it."""
    last = row.last_change
    return {
        "nct_id": row.nct_id, "title": row.title, "status": row.status, "phase": row.phase,
        "phases": list(row.phases), "sponsor": row.sponsor,
        "interventions": [{"type": kind, "name": name} for kind, name in row.interventions],
        "enrollment": {"count": row.enrollment_count, "type": row.enrollment_type},
        "start": _date_json(row.start), "primary_completion": _date_json(row.primary_completion),
        "completion": _date_json(row.completion), "countries": list(row.countries),
        "sites": {"count": row.sites, "recruiting": row.sites_recruiting},
        "results_posted": {"posted": row.results, "date": row.results_date}, "articles": row.articles,
        "last_change": {"id": last.id, "kind": last.kind, "detected_at": last.detected_at.isoformat()}
        if last else None,
        "changed_recently": row.recent, "left_at": row.left_at.isoformat() if row.left_at else None,
        "url": row.url,
    }  # fmt: skip
