"""`trialwatch studies NAME`: a watch's landscape on the terminal (an aligned table), or its CSV,
XLSX or JSON: the rows and columns of /watches/<name>/studies and its exports, from the same query
(registry.landscape)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from watcher.cli.inspecting import _known_watch
from watcher.cli.shared import State, fail, guarded, make_service, now, out

if TYPE_CHECKING:
    from watcher.registry.landscape_row import LandscapeRow

app = typer.Typer()

# the terminal table: the columns a reader scans, the title last (the exports have them all)
TABLE = ("nct_id", "status", "phase", "sponsor", "enrollment", "start", "primary_completion", "completion",
         "sites_recruiting", "articles", "last_change", "title")  # fmt: skip
MAX_CELL = 28


@app.command()
def studies(
    name: Annotated[str, typer.Argument(help="The watch.")],
    status: Annotated[list[str] | None, typer.Option(help="This status (repeatable), e.g. RECRUITING.")] = None,
    phase: Annotated[list[str] | None, typer.Option(help="This phase (repeatable), e.g. PHASE2, NA.")] = None,
    sponsor: Annotated[str, typer.Option(help="Only lead sponsors whose name contains this.")] = "",
    intervention_type: Annotated[list[str] | None, typer.Option(help="This type (repeatable), e.g. DRUG.")] = None,
    country: Annotated[list[str] | None, typer.Option(help="Only studies with a site in this country.")] = None,
    words: Annotated[str, typer.Option("--q", help="Words all in the title or interventions.")] = "",
    left: Annotated[bool, typer.Option("--left", help="Also the studies that left the watch.")] = False,
    sort: Annotated[str, typer.Option(help="Sort by this column; '-' before it: descending.")] = "primary_completion",
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Write a CSV (UTF-8, BOM) here.")] = None,
    xlsx_file: Annotated[Path | None, typer.Option("--xlsx", help="Write the XLSX to this file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array, one object per study.")] = False,
) -> None:  # fmt: skip
    """Every study a watch holds, one row each: status, phase, lead sponsor, interventions,
    enrollment, start, primary completion and completion, countries and recruiting sites, results,
    articles naming it and its last change. The same filters and columns as the web page
    /watches/NAME/studies and its exports; without --csv, --xlsx or --json, an aligned table of
    the main columns.

    Example: trialwatch studies "RCC bispecifics" --status RECRUITING --phase PHASE2 --xlsx rcc.xlsx
    """

    from watcher.config import load_config
    from watcher.registry.landscape import landscape
    from watcher.registry.landscape_query import parse_view
    from watcher.store import db

    def action() -> int:
        if sum(bool(x) for x in (csv_file, xlsx_file, as_json)) > 1:
            fail("choose one of --csv, --xlsx and --json")
        single = {"sponsor": sponsor, "q": words, "sort": sort, "left": "1" if left else ""}
        many = {"status": status or [], "phase": phase or [], "intervention_type": intervention_type or [],
                "country": country or []}  # fmt: skip
        view = parse_view(single, lambda key: many.get(key, []))
        if view.errors:
            fail("; ".join(f"--{key.replace('_', '-')}: {message}" for key, message in view.errors.items()))
        service = make_service(load_config(State.config_path))
        _known_watch(service, name)
        with db.transaction(service.engine) as session:
            rows = landscape(session=session, watch=name, filters=view.filters, now=now())
        _write(rows, csv_file, xlsx_file, as_json)
        return 0

    guarded(action)


def _write(rows: list[LandscapeRow], csv_file: Path | None, xlsx_file: Path | None, as_json: bool) -> None:
    from watcher.registry.landscape_export import csv_chunks, row_json, write_xlsx

    if csv_file is not None:
        with csv_file.open("wb") as handle:
            for chunk in csv_chunks(rows):
                handle.write(chunk)
        out.print(f"{len(rows)} studies written to {csv_file}", markup=False)
    elif xlsx_file is not None:
        write_xlsx(rows, xlsx_file)
        out.print(f"{len(rows)} studies written to {xlsx_file}", markup=False)
    elif as_json:
        out.print(json.dumps([row_json(row) for row in rows], indent=2, ensure_ascii=False), markup=False)
    else:
        for line in aligned_table(rows):
            out.print(line, markup=False)


def aligned_table(rows: list[LandscapeRow]) -> list[str]:
    """The main columns, each as wide as its widest cell (at most MAX_CELL, the title in full)."""
    from watcher.registry.landscape_export import COLUMNS, cells, plain

    names = [column.name for column in COLUMNS]
    picked = [names.index(name) for name in TABLE]
    table = [list(TABLE)]
    for row in rows:
        values = cells(row)
        table.append([" ".join(plain(values[i]).split()) for i in picked])
    widths = [min(max(len(line[i]) for line in table), MAX_CELL) for i in range(len(TABLE) - 1)]
    lines = []
    for line in table:
        parts = [_fit(text, width) for text, width in zip(line, widths, strict=False)]
        lines.append("  ".join([*parts, line[-1]]).rstrip())
    lines.append(f"{len(rows)} stud{'y' if len(rows) == 1 else 'ies'}")
    return lines


def _fit(text: str, width: int) -> str:
    return (text if len(text) <= width else text[: width - 1] + "…").ljust(width)
