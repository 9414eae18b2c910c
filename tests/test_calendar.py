"""Issue #23: `GET /calendar/<watch>.ics?token=`: the dates of a watch's studies as iCalendar,
parsed back with the icalendar library; UIDs stable across polls, SEQUENCE growing when a date
slips (the real NCT05805501 pair: primary completion and completion 2026-07-31 -> 2026-10-31); a
wrong or revoked token answers 404 as Atom does. Served for real over a fresh database, both kinds."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from icalendar import Calendar

from tests.harness import REAL_0212, REAL_0216, REAL_0218
from watcher.registry.client import CtgovClient
from watcher.registry.pipeline import Plan, poll_watch
from watcher.store import db, people
from watcher.watch import WatchConfig

WATCH = WatchConfig(
    name="RCC <dates>", nct_ids=["NCT05805501", "NCT04514484"], recipients=["onc@example.org"], digest="daily"
)
PATH = "/calendar/RCC%20%3Cdates%3E.ics"


def poll(site: Any, mode: str) -> None:
    report = poll_watch(
        engine=site.engine, client=CtgovClient(site.config.clinicaltrials), watch=WATCH, plan=Plan(mode),
        now=datetime.now(UTC),
    )  # fmt: skip
    assert report.ok, report.error


def events_of(body: bytes) -> dict[str, Any]:
    calendar = Calendar.from_ical(body)
    assert calendar["version"] == "2.0" and "trialwatch" in str(calendar["prodid"])
    return {str(event["uid"]): event for event in calendar.walk("VEVENT")}


def test_calendar_events_keep_their_uid_and_grow_their_sequence(web_server, registry, real_study):
    registry.put(real_study(REAL_0212))
    registry.put(real_study("study_NCT04514484_rcc_io_2026-02-05.json"))
    web_server.provision(WATCH)
    poll(web_server, "baseline")
    token = web_server.token("reader@example.org")
    client = web_server.client()  # no session: a calendar app
    first = client.get(f"{PATH}?token={token}")
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/calendar")
    before = events_of(first.content)
    pc = before["NCT05805501-primary-completion@127.0.0.1"]
    assert pc.decoded("dtstart") == date(2026, 7, 31) and pc.decoded("dtend") == date(2026, 8, 1)  # all day
    assert str(pc["summary"]).startswith("NCT05805501 primary completion (estimated): A Study of Immune")
    assert str(pc["url"]).endswith("/studies/NCT05805501") and str(pc["url"]) in str(pc["description"])
    assert int(pc["sequence"]) == 0
    due = before["NCT05805501-results-due@127.0.0.1"]
    assert due.decoded("dtstart") == date(2027, 7, 31)
    assert "NCT04514484-results-due@127.0.0.1" not in before  # phase 1 only: nothing owed
    assert set(before) >= {"NCT04514484-primary-completion@127.0.0.1", "NCT04514484-completion@127.0.0.1"}

    registry.put(real_study(REAL_0216))  # the dates slip 92 days
    poll(web_server, "full")
    after = events_of(client.get(f"{PATH}?token={token}").content)
    assert set(after) == set(before)  # the same UIDs: moved, not added
    moved = {uid: (event.decoded("dtstart"), int(event["sequence"])) for uid, event in after.items()}
    assert moved["NCT05805501-primary-completion@127.0.0.1"] == (date(2026, 10, 31), 1)
    assert moved["NCT05805501-completion@127.0.0.1"] == (date(2026, 10, 31), 1)
    assert moved["NCT05805501-results-due@127.0.0.1"] == (date(2027, 10, 31), 1)
    assert moved["NCT04514484-primary-completion@127.0.0.1"][1] == 0

    registry.put(real_study(REAL_0218))  # only versionHolder differs
    poll(web_server, "full")
    again = events_of(client.get(f"{PATH}?token={token}").content)
    assert {uid: int(event["sequence"]) for uid, event in again.items()} == {
        uid: sequence for uid, (_, sequence) in moved.items()
    }


def test_a_wrong_or_revoked_token_is_404(web_server, registry, real_study):
    registry.put(real_study(REAL_0212))
    web_server.provision(WATCH)
    poll(web_server, "baseline")
    token = web_server.token("reader@example.org")
    client = web_server.client()
    assert client.get(f"{PATH}?token={token}").status_code == 200
    for path in (f"{PATH}?token=wrong", PATH, f"{PATH}?token=", f"/calendar/No%20such.ics?token={token}",
                 f"/calendar/RCC%20%3Cdates%3E.ical?token={token}", f"{PATH}?token={'x' * 5000}"):  # fmt: skip
        response = client.get(path)
        assert response.status_code == 404 and "There is no calendar here." in response.text, path
    with db.transaction(web_server.engine) as session:
        for info in people.list_tokens(session=session):
            people.revoke_token(session=session, token_id=info.id)
    assert client.get(f"{PATH}?token={token}").status_code == 404


def test_the_watch_page_hands_out_a_calendar_address_with_a_read_only_token(web_server):
    """#25 W6: the address a calendar app stores can read the calendar and change nothing."""
    import re

    from tests.web_support import FILE_WATCH

    client = web_server.signed_in("reader@example.org")
    page = client.submit(
        "/watches/" + quote(FILE_WATCH.name, safe=""), {"watch": FILE_WATCH.name, "kind": "calendar"},
        action="/account/feed-address",
    )  # fmt: skip
    assert page.status_code == 200
    [url] = re.findall(r'id="new-feed-url">([^<]+)<', page.text)
    assert "/calendar/" in url and "?token=" in url
    token = url.rsplit("token=", 1)[1]
    answer = web_server.client().get("/" + url.split("/", 3)[3].replace("&amp;", "&"))
    assert answer.status_code == 200 and answer.text.startswith("BEGIN:VCALENDAR")
    refused = web_server.api(token).post("/api/v1/watches", json={"name": "x", "conditions": ["y"]})
    assert refused.status_code == 403
