"""A watch's landscape over HTTP against the real app (uvicorn on loopback), on SQLite and
PostgreSQL: /watches/<name>/studies (sorting, every filter, the switch for studies that left,
paging), its CSV and XLSX exports read back (cells, dates, spreadsheet injection) and its JSON twin
/api/v1/watches/<name>/studies (the same filters, keyset pages)."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from html import unescape
from urllib.parse import quote

import openpyxl
import pytest

from tests.landscape_data import hold, hold_many, study_record
from tests.timeline_data import add_article, add_change
from tests.web_support import FILE_WATCH, WebSite
from watcher.model import ChangeKind
from watcher.store import db
from watcher.store.models import WatchStudy

NAME = FILE_WATCH.name
PAGE = "/watches/" + quote(NAME, safe="") + "/studies"
API = "/api/v1/watches/" + quote(NAME, safe="") + "/studies"
HOSTILE = "<img src=x onerror=alert(1)>"
INJECTIONS = ('=HYPERLINK("http://evil.example","x")', "+1+2", "-2+3", "@SUM(A1)", "\tTabbed", "\rReturned")


def seed(site: WebSite) -> datetime:
    """Six studies with distinct facts (one with a hostile title, one whose interventions and
    sponsor are formulas), one that left the watch, changes and an article."""
    now = site.clock.now()
    records = [
        study_record(1, title=f"Bispecific {HOSTILE} in RCC", status="RECRUITING", phases=["PHASE1", "PHASE2"],
                     sponsor="Fictional Oncology Inc.", interventions=[("BIOLOGICAL", "FX-101")],
                     sites=[("France", "RECRUITING"), ("Germany", "RECRUITING")], enrollment=120,
                     start=("2025-06-02", "ACTUAL"), primary=("2027-03-31", "ESTIMATED"),
                     completion=("2027-12-31", "ESTIMATED"), results=False),
        study_record(2, title="CAR-T after nivolumab", status="ACTIVE_NOT_RECRUITING", phases=["PHASE2"],
                     sponsor="Université Paris Cité", interventions=[("GENETIC", "CAR-T cells"), ("DRUG", "Nivolumab")],
                     sites=[("Côte d'Ivoire", "COMPLETED")], enrollment=30, start=("2022-01", "ACTUAL"),
                     primary=("2025-06-30", "ACTUAL"), completion=("2026-12", "ESTIMATED"), results=True),
        study_record(3, title="Adjuvant pembrolizumab", status="COMPLETED", phases=["PHASE3"], sponsor="Merck",
                     interventions=[("DRUG", "Pembrolizumab")], sites=[("United States", "COMPLETED")],
                     enrollment=994, start=("2017-06-09", "ACTUAL"), primary=("2020-12-14", "ACTUAL"),
                     completion=("2024-09-30", "ACTUAL"), results=True),
        study_record(4, title="Formulas in registry text", status="NOT_YET_RECRUITING", phases=[],
                     sponsor=INJECTIONS[0], interventions=[("DEVICE", INJECTIONS[1])], sites=[], enrollment=None,
                     start=None, primary=None, completion=("2030", "ESTIMATED"), results=False),
        study_record(5, title=INJECTIONS[2], status="TERMINATED", phases=["PHASE1"], sponsor=INJECTIONS[3],
                     interventions=[("DRUG", INJECTIONS[4])], sites=[(INJECTIONS[5], "RECRUITING")], enrollment=5,
                     start=("2019-02-01", "ACTUAL"), primary=("2021-02-01", "ACTUAL"),
                     completion=("2021-03-01", "ACTUAL"), results=False),
        study_record(6, title="Gone from the watch", status="WITHDRAWN", phases=["PHASE2"], sponsor="Left Pharma",
                     interventions=[("DRUG", "Leftamab")], sites=[], enrollment=0),
    ]  # fmt: skip
    hold(site.engine, NAME, records, now - timedelta(days=60))
    with db.transaction(site.engine) as session:  # study 6 left the watch
        link = session.get(WatchStudy, (NAME, "NCT08000006"))
        assert link is not None
        session.delete(link)
    add_change(site.engine, watch=NAME, kind=ChangeKind.NO_LONGER_MATCHING, nct_id="NCT08000006",
               title="Gone from the watch", summary="No longer matches", when=now - timedelta(days=20))  # fmt: skip
    add_change(site.engine, watch=NAME, kind=ChangeKind.DATES, nct_id="NCT08000001", title="Bispecific",
               summary="Primary completion slipped", when=now - timedelta(days=2))  # fmt: skip
    add_change(site.engine, watch=NAME, kind=ChangeKind.STATUS, nct_id="NCT08000003", title="Adjuvant",
               summary="Completed", when=now - timedelta(days=40))  # fmt: skip
    add_article(site.engine, title="FX-101 phase 1 results", nct_ids=["NCT08000001", "NCT08000003"])
    add_article(site.engine, title="FX-101 safety", nct_ids=["NCT08000001"])
    return now


def ids_in(html: str) -> list[str]:
    return re.findall(r'<td class="mono nowrap"><a href="/studies/(NCT\d{8})">', html)


def xstring(text: str) -> str:
    """A cell's text as a spreadsheet shows it: OOXML writes a control character as _xHHHH_
    (openpyxl leaves that escape as it is; Excel and LibreOffice read it back)."""
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), text)


@pytest.fixture
def site(web_server: WebSite) -> WebSite:
    seed(web_server)
    return web_server


def test_the_page_and_its_exports_need_a_session_and_the_api_a_token(web_server):
    client = web_server.client()
    for path in (PAGE, PAGE + ".csv", PAGE + ".xlsx"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/login"), path
    assert client.get(API).status_code == 401


def test_the_table_lists_what_the_watch_holds_with_every_column(site):
    client = site.signed_in("ann@example.org")
    response = client.get(PAGE)
    assert response.status_code == 200
    html = response.text
    assert "<img" not in html and "onerror=alert(1)>" not in html  # the hostile title is escaped
    # default order: primary completion, studies without one last (then by NCT id)
    assert ids_in(html) == ["NCT08000003", "NCT08000005", "NCT08000002", "NCT08000001", "NCT08000004"]
    table = html.split('<table class="landscape">', 1)[1]
    row = unescape(table.split('href="/studies/NCT08000001"', 1)[1].split("</tr>", 1)[0])
    for text in ("Recruiting", "Phase 1/Phase 2", "Fictional Oncology Inc.", "FX-101", "(biological)", "120",
                 "2025-06-02", "actual", "2027-03-31", "estimated", "France, Germany", "2 <span", ">2</td>",
                 "dates</a>"):  # fmt: skip
        assert text in row, text
    assert 'class="recent"' in row  # a change 2 days ago
    other = table.split('href="/studies/NCT08000003"', 1)[1].split("</tr>", 1)[0]
    assert 'class="recent"' not in other and ">1</td>" in other  # 40 days ago; one article
    assert "<strong>5</strong> of 5 studies" in html
    assert "NCT08000006" not in html  # left: behind the switch
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in html and html.count('<a href="/studies/NCT0800000') >= 10


def test_sorting_by_any_column_both_ways(site):
    client = site.signed_in("ann@example.org")
    expected = {
        "enrollment": ["NCT08000005", "NCT08000002", "NCT08000001", "NCT08000003", "NCT08000004"],
        "-enrollment": ["NCT08000003", "NCT08000001", "NCT08000002", "NCT08000005", "NCT08000004"],
        "start": ["NCT08000003", "NCT08000005", "NCT08000002", "NCT08000001", "NCT08000004"],
        "-completion": ["NCT08000004", "NCT08000001", "NCT08000002", "NCT08000003", "NCT08000005"],
        "sponsor": ["NCT08000004", "NCT08000005", "NCT08000001", "NCT08000003", "NCT08000002"],
        "-articles": ["NCT08000001", "NCT08000003", "NCT08000002", "NCT08000004", "NCT08000005"],
        "-last_change": ["NCT08000001", "NCT08000003", "NCT08000002", "NCT08000004", "NCT08000005"],
        "-nct_id": ["NCT08000005", "NCT08000004", "NCT08000003", "NCT08000002", "NCT08000001"],
        "title": ["NCT08000005", "NCT08000003", "NCT08000001", "NCT08000002", "NCT08000004"],
    }
    for sort, order in expected.items():
        html = client.get(f"{PAGE}?sort={quote(sort)}").text
        assert ids_in(html) == order, sort
    html = client.get(f"{PAGE}?sort=enrollment").text
    assert 'aria-sort="ascending"' in html and "sort=-enrollment" in html  # the heading reverses it


def test_each_filter_and_the_switch_for_studies_that_left(site):
    client = site.signed_in("ann@example.org")
    cases = {
        "status=RECRUITING&status=COMPLETED": ["NCT08000003", "NCT08000001"],
        "phase=PHASE2": ["NCT08000002", "NCT08000001"],
        "phase=NA": ["NCT08000004"],
        "sponsor=oncology": ["NCT08000001"],
        "sponsor=universit%C3%A9": ["NCT08000002"],
        "intervention_type=GENETIC&intervention_type=DEVICE": ["NCT08000002", "NCT08000004"],
        "country=c%C3%B4te+d%27ivoire": ["NCT08000002"],
        "q=nivolumab": ["NCT08000002"],
        "q=fx-101+bispecific": ["NCT08000001"],
        "status=RECRUITING&phase=PHASE3": [],
        "left=1": ["NCT08000003", "NCT08000005", "NCT08000002", "NCT08000001", "NCT08000006", "NCT08000004"],
        "left=1&status=WITHDRAWN": ["NCT08000006"],
    }
    for query, order in cases.items():
        response = client.get(f"{PAGE}?{query}")
        assert response.status_code == 200, query
        assert ids_in(response.text) == order, query
    html = client.get(f"{PAGE}?left=1&status=WITHDRAWN").text
    assert 'class="left"' in html and "left 20" in html
    assert "No study matches these filters." in client.get(f"{PAGE}?status=RECRUITING&phase=PHASE3").text
    # a bookmarkable view: the export links and the headings keep every filter
    html = unescape(client.get(f"{PAGE}?status=RECRUITING&q=bispecific").text)
    assert f"{PAGE}.csv?status=RECRUITING&q=bispecific" in html
    assert f"{PAGE}?status=RECRUITING&q=bispecific&sort=enrollment" in html


def test_bad_parameters_are_a_clear_400_and_an_unknown_watch_a_404(site):
    client = site.signed_in("ann@example.org")
    cases = (("status=RUNNING", "unknown status"), ("phase=PHASE9", "unknown phase"),
             ("sort=colour", "sort &#39;colour&#39;"), ("intervention_type=MAGIC", "unknown intervention"),
             ("q=" + "+".join(["w"] * 11), "at most 10 words"), ("sponsor=" + "x" * 101, "at most 100"),
             ("page=0", "a page is a number"), ("page=x", "a page is a number"))  # fmt: skip
    for query, message in cases:
        response = client.get(f"{PAGE}?{query}")
        assert response.status_code == 400 and message in response.text, query
    assert client.get(f"{PAGE}.csv?status=RUNNING").status_code == 400
    assert client.get("/watches/no%20such%20watch/studies").status_code == 404
    api = site.api(site.token("bob@example.org"))
    for query in ("status=RUNNING", "limit=0", "limit=501", "cursor=nonsense", "cursor=" + "A" * 700):
        response = api.get(f"{API}?{query}")
        assert response.status_code == 400 and response.json()["error"], query
    assert api.get("/api/v1/watches/nothing/studies").status_code == 404


def test_dashboard_and_watch_page_link_their_study_counts_here(site):
    client = site.signed_in("ann@example.org")
    link = f'<a href="{PAGE}">5</a>'
    assert link in client.get("/").text
    assert link in client.get("/watches/" + quote(NAME, safe="")).text


def test_the_json_twin_gives_the_same_rows_with_the_same_filters(site):
    api = site.api(site.token("bob@example.org"))
    body = api.get(f"{API}?status=RECRUITING&status=ACTIVE_NOT_RECRUITING").json()
    assert body["watch"] == NAME and body["total"] == 2 and body["next_cursor"] is None
    first = body["studies"][1]
    assert first["nct_id"] == "NCT08000001" and first["title"] == f"Bispecific {HOSTILE} in RCC"
    assert first["interventions"] == [{"type": "BIOLOGICAL", "name": "FX-101"}]
    assert first["enrollment"] == {"count": 120, "type": "ESTIMATED"}
    assert first["primary_completion"] == {"date": "2027-03-31", "type": "ESTIMATED"}
    assert first["countries"] == ["France", "Germany"] and first["sites"] == {"count": 2, "recruiting": 2}
    assert first["articles"] == 2 and first["last_change"]["kind"] == "dates" and first["changed_recently"] is True
    assert first["results_posted"] == {"posted": False, "date": None} and first["left_at"] is None
    assert [s["nct_id"] for s in api.get(f"{API}?left=1&sort=-nct_id&limit=2").json()["studies"]] == [
        "NCT08000006", "NCT08000005"]  # fmt: skip


def test_pages_of_100_and_keyset_pages_in_the_api(web_server):
    hold_many(web_server.engine, NAME, 230, web_server.clock.now())
    client = web_server.signed_in("ann@example.org")
    first, third = client.get(PAGE).text, client.get(f"{PAGE}?page=3&sort=-enrollment").text
    assert len(ids_in(first)) == 100 and "page 1 of 3" in first and "page=2" in first
    assert len(ids_in(third)) == 30 and "page 3 of 3" in third and 'rel="prev"' in third
    assert ids_in(third)[-1] == "NCT08000000"  # the smallest enrollment, last
    api = web_server.api(web_server.token("bob@example.org"))
    seen, cursor = [], ""
    while True:
        body = api.get(f"{API}?sort=-enrollment&limit=70" + (f"&cursor={cursor}" if cursor else "")).json()
        seen += [s["nct_id"] for s in body["studies"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 230 == len(set(seen)) and seen[0] == "NCT08000229" and seen[-1] == "NCT08000000"
    # a cursor is bound to its sort
    body = api.get(f"{API}?sort=-enrollment&limit=70").json()
    assert api.get(f"{API}?sort=enrollment&cursor={body['next_cursor']}").status_code == 400


def test_the_csv_reads_back_with_its_cells_and_no_formula(site):
    client = site.signed_in("ann@example.org")
    response = client.get(f"{PAGE}.csv?sort=nct_id")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert 'filename="RCC-file-watch-studies-' in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf") and b"\r\n" in response.content
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    assert [r["nct_id"] for r in rows] == [f"NCT0800000{n}" for n in range(1, 6)]
    one = rows[0]
    assert one["title"] == f"Bispecific {HOSTILE} in RCC" and one["interventions"] == "Biological: FX-101"
    assert one["enrollment"] == "120" and one["primary_completion"] == "2027-03-31"
    assert one["primary_completion_type"] == "estimated" and one["countries"] == "France; Germany"
    assert one["articles"] == "2" and one["last_change"] == "dates" and one["results_posted"] == "no"
    assert rows[1]["countries"] == "Côte d'Ivoire" and rows[1]["sponsor"] == "Université Paris Cité"
    formulas = [rows[3]["sponsor"], rows[3]["interventions"], rows[4]["title"], rows[4]["sponsor"],
                rows[4]["interventions"], rows[4]["countries"]]  # fmt: skip
    assert formulas == ["'" + INJECTIONS[0], "Device: " + INJECTIONS[1], "'" + INJECTIONS[2], "'" + INJECTIONS[3],
                        "Drug: " + INJECTIONS[4], "'" + INJECTIONS[5]]  # fmt: skip
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    filtered = client.get(f"{PAGE}.csv?status=COMPLETED").content.decode("utf-8-sig").splitlines()
    assert len(filtered) == 2 and filtered[1].startswith("NCT08000003,")


def test_the_xlsx_reads_back_with_dates_a_frozen_header_and_no_formula(site, tmp_path):
    client = site.signed_in("ann@example.org")
    response = client.get(f"{PAGE}.xlsx?sort=nct_id")
    assert response.status_code == 200 and "spreadsheetml" in response.headers["content-type"]
    path = tmp_path / "studies.xlsx"
    path.write_bytes(response.content)
    sheet = openpyxl.load_workbook(path).active
    assert sheet.freeze_panes == "A2"
    header = [cell.value for cell in sheet[1]]
    assert header[:3] == ["nct_id", "title", "status"] and "primary_completion" in header
    assert sheet.column_dimensions["B"].width >= 50  # the title's column is sized
    rows = [dict(zip(header, (cell for cell in row), strict=True)) for row in sheet.iter_rows(min_row=2)]
    assert [r["nct_id"].value for r in rows] == [f"NCT0800000{n}" for n in range(1, 6)]
    one = rows[0]
    assert one["primary_completion"].value == datetime(2027, 3, 31) and one["primary_completion"].is_date
    assert one["primary_completion"].number_format == "yyyy-mm-dd"
    assert rows[1]["start"].value == datetime(2022, 1, 1) and rows[1]["start"].number_format == "yyyy-mm"
    assert rows[3]["completion"].value == datetime(2030, 1, 1) and rows[3]["completion"].number_format == "yyyy"
    assert one["enrollment"].value == 120 and one["enrollment"].data_type == "n"
    assert rows[3]["enrollment"].value is None and rows[3]["start"].value is None
    assert one["title"].value == f"Bispecific {HOSTILE} in RCC"
    for cell in (rows[3]["sponsor"], rows[4]["title"], rows[4]["sponsor"], rows[4]["countries"]):
        assert cell.data_type == "s" and cell.quotePrefix, cell.value  # a string, marked as text for editing
    read = [rows[3]["sponsor"].value, rows[4]["title"].value, rows[4]["sponsor"].value, rows[4]["countries"].value]
    assert [xstring(text) for text in read] == [INJECTIONS[0], INJECTIONS[2], INJECTIONS[3], INJECTIONS[5]]
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)  # no formula anywhere
