"""ClinicalTrials.gov polling as a trial coordinator relies on it: cheap when nothing changed,
incremental otherwise, full on a slower schedule, every page followed, retries bounded; each
study's history and `preview`. The registry is a real HTTP server on loopback (tests/servers.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

from tests.harness import REAL_0212, REAL_0216, REAL_0218, posted
from tests.servers import Fault
from watcher.config import ClinicalTrialsConfig
from watcher.errors import SourceError
from watcher.http import HttpClient, Pacer, make_session
from watcher.registry.client import CtgovClient, next_token_unparsed
from watcher.store import db, repo
from watcher.store.models import StudyVersion, WatchState

ONE_WATCH = """
[[watch]]
name = "RCC bispecifics"
conditions = ["renal cell carcinoma"]
terms = ["bispecific"]
recipients = ["onc@example.org"]
"""

BASE = datetime(2026, 11, 21, 10, tzinfo=UTC)


def at(delta: timedelta) -> str:
    return (BASE + delta).isoformat()


def studies_requests(registry: Any, since: int = 0) -> list[dict[str, str]]:
    return [params for path, params in registry.requests_log[since:] if path.endswith("/studies")]


def test_no_change_cycle_is_one_request(cli_for, registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    cli = cli_for(watches=ONE_WATCH)
    cli("poll")
    before = registry.request_count()
    cli.now = at(timedelta(hours=6))
    output = cli("poll")
    assert registry.request_count() - before == 1
    assert registry.requests_log[-1][0].endswith("/version")
    assert "RCC bispecifics: registry data unchanged since the last poll, nothing to do (1 request" in output


def test_each_poll_charges_its_requests_to_the_watch(cli_for, registry, own_study, tmp_path):
    """The sources page's counters: requests (retries too) and polls that ended at /version."""
    registry.put(own_study("study_NCT09000001_v1"))
    cli = cli_for(watches=ONE_WATCH)
    cli("poll")  # baseline: /version and one page
    assert counters(tmp_path) == (2, 0)
    cli.now = at(timedelta(hours=6))
    cli("poll")  # unchanged: /version only
    assert counters(tmp_path) == (3, 1)
    registry.put(own_study("study_NCT09000001_v2"))
    cli.now = at(timedelta(days=1))
    assert "1 studies seen, 3 changes" in cli("poll")  # /version and one page
    assert counters(tmp_path) == (5, 1)
    registry.fail_next(Fault.none(), *[Fault.status(503)] * 3)  # /version answers, the page does not
    cli.now = at(timedelta(days=2))
    assert "FAILED" in cli("poll", "--full", code=1)
    assert counters(tmp_path) == (9, 1)


def counters(tmp_path: Any) -> tuple[int, int]:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'var' / 'trialwatch.db'}")
    with db.transaction(engine) as session:
        (state,) = session.exec(select(WatchState))
        counted = state.request_count, state.unchanged_count
    engine.dispose()
    return counted


def test_incremental_poll_asks_only_for_recent_updates(cli_for, registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    registry.put(own_study("study_NCT09000002_v1"))
    cli = cli_for(watches=ONE_WATCH)
    cli("poll")
    (baseline,) = studies_requests(registry)
    assert "filter.advanced" not in baseline and baseline["pageSize"] == "1000"
    mark = len(registry.requests_log)
    registry.put(own_study("study_NCT09000001_v2"))  # posted 2026-11-20
    cli.now = at(timedelta(days=1))
    output = cli("poll")
    (incremental,) = studies_requests(registry, mark)
    # the window starts 3 days (overlap_days) before the last successful poll (2026-11-21)
    assert incremental["filter.advanced"] == "AREA[LastUpdatePostDate]RANGE[2026-11-18,MAX]"
    assert incremental["pageSize"] == "1000"
    assert "RCC bispecifics: incremental: 1 studies seen, 3 changes (1 dates, 1 sites, 1 status)" in output
    assert "(2 requests," in output  # /version and one page


def test_unchanged_days_do_not_move_the_incremental_window(cli_for, registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    cli = cli_for(watches=ONE_WATCH)
    cli("poll")  # 2026-11-21
    for day in range(1, 5):  # the registry's data does not move for four days
        cli.now = at(timedelta(days=day))
        assert "registry data unchanged" in cli("poll")
    mark = len(registry.requests_log)
    registry.put(posted(own_study("study_NCT09000001_v2"), "2026-11-22"))  # posted during the stall
    cli.now = at(timedelta(days=5))
    assert "incremental: 1 studies seen, 3 changes" in cli("poll")
    (request,) = studies_requests(registry, mark)
    assert request["filter.advanced"] == "AREA[LastUpdatePostDate]RANGE[2026-11-18,MAX]"


def test_full_reconciliation_on_schedule_finds_studies_that_left(cli_for, registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    registry.put(own_study("study_NCT09000002_v1"))
    cli = cli_for(watches=ONE_WATCH)
    cli("poll")
    registry.remove("NCT09000002")
    cli.now = at(timedelta(days=3))
    assert "RCC bispecifics: incremental: 0 studies seen, 0 changes" in cli("poll")
    registry.put(posted(own_study("study_NCT09000001_v1"), "2026-11-28"))
    cli.now = at(timedelta(days=7, hours=1))
    output = cli("poll")
    assert "RCC bispecifics: full: 1 studies seen, 1 change (1 no_longer_matching)" in output
    (left,) = cli.changes()
    assert left["kind"] == "no_longer_matching" and left["nct_id"] == "NCT09000002"
    assert left["summary"].startswith("No longer matches this watch: ")
    # the next full poll does not report it again
    registry.put(posted(own_study("study_NCT09000001_v1"), "2026-11-29"))
    assert "full: 1 studies seen, 0 changes" in cli("poll", "--full")


def test_failed_version_request_fails_every_watch_and_stores_nothing(cli_for, registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    cli = cli_for()
    registry.fail_next(*[Fault.status(503)] * 3)
    output = cli("poll", code=1)
    assert "RCC bispecifics: FAILED: ClinicalTrials.gov /version: GET" in output
    assert "RCC CAR-T: FAILED" in output and "HTTP 503" in output
    assert registry.request_count("/studies") == 0
    assert "baseline: 1 studies stored" in cli("poll")


def test_real_search_pages_are_followed_by_their_real_tokens(cli_for, registry, real_fixtures_dir):
    first = json.loads((real_fixtures_dir / "ctgov" / "search_page_raw_v2_ild_pagesize5.json").read_text())
    second = json.loads((real_fixtures_dir / "ctgov" / "search_page_fields_subset_totalcount_2023.json").read_text())
    registry.script_pages(first, second, {"studies": []})  # the 2023 page has a token: the next page is empty
    cli = cli_for(watches=ONE_WATCH)
    output = cli("poll")
    assert "RCC bispecifics: baseline: 55 studies stored" in output
    tokens = [params.get("pageToken") for params in studies_requests(registry)]
    assert tokens == [None, first["nextPageToken"], second["nextPageToken"]]
    assert cli("history", "NCT06476470").splitlines()[1].startswith("first seen 2026-11-21")


def test_exactly_full_last_page_then_an_empty_page_ends_pagination(cli_for, registry, own_study):
    registry.exact_full_page_token = True
    registry.put(own_study("study_NCT09000001_v1"))
    registry.put(own_study("study_NCT09000002_v1"))
    cli = cli_for(watches=ONE_WATCH, extra_ctgov="page_size = 1")
    assert "baseline: 2 studies stored" in cli("poll")
    assert len(studies_requests(registry)) == 3  # two full pages, then the empty one


def test_a_record_with_a_lone_surrogate_escape_is_stored_diffed_and_shown(cli_for, registry, own_study, tmp_path):
    """orjson refuses `\\ud800` (no UTF-8 for it); the json module parses it, and the lone
    surrogate is cleaned to U+FFFD where it is parsed (#25): stored, diffed and shown as such."""
    record = own_study("study_NCT09000001_v1")
    record["protocolSection"]["identificationModule"]["officialTitle"] = "CD70 \ud800 CAR-T"
    registry.put(record)
    cli = cli_for(watches=ONE_WATCH)
    assert "baseline: 1 studies stored" in cli("poll")
    changed = posted(record, "2026-11-20")
    changed["protocolSection"]["statusModule"]["overallStatus"] = "COMPLETED"
    registry.put(changed)
    cli.now = at(timedelta(days=1))
    assert "1 change (1 status)" in cli("poll")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'var' / 'trialwatch.db'}")
    with db.transaction(engine) as session:
        stored = [repo.unpack_record(v.record) for v in session.exec(select(StudyVersion))]
    assert [r["protocolSection"]["identificationModule"]["officialTitle"] for r in stored] == ["CD70 \ufffd CAR-T"] * 2


def test_alias_maps_to_the_current_id(cli_for, registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    cli = cli_for(watches=ONE_WATCH)
    cli("poll")
    renamed = posted(own_study("study_NCT09000001_v1"), "2026-11-20")
    ident = renamed["protocolSection"]["identificationModule"]
    ident["nctId"], ident["nctIdAliases"] = "NCT09000003", ["NCT09000001"]
    renamed["protocolSection"]["statusModule"]["overallStatus"] = "COMPLETED"
    registry.remove("NCT09000001")
    registry.put(renamed)
    cli.now = at(timedelta(days=1))
    cli("poll")
    changes = cli.changes()
    assert [(c["kind"], c["nct_id"]) for c in changes] == [("other", "NCT09000003"), ("status", "NCT09000003")]
    assert changes[0]["summary"] == "Registry id changed from NCT09000001 to NCT09000003."
    cli.now = at(timedelta(days=2))
    assert "full: 1 studies seen, 0 changes" in cli("poll", "--full")


def test_large_record_is_stored_compressed_and_a_removed_site_is_one_change(cli_for, registry, real_study, tmp_path):
    record = real_study("study_NCT02513394_with_results_large.json")
    watch = ONE_WATCH + 'nct_ids = ["NCT02513394"]\n'
    registry.put(record)
    cli = cli_for(watches=watch)
    cli("poll")
    shorter = posted(record, "2026-11-20")
    removed = shorter["protocolSection"]["contactsLocationsModule"]["locations"].pop(100)
    registry.put(shorter)
    cli.now = at(timedelta(days=1))
    assert "incremental: 1 studies seen, 1 change (1 sites)" in cli("poll")
    (change,) = cli.changes()
    assert change["details"]["removed"][0]["facility"] == removed["facility"]
    assert change["details"]["count"] == {"before": 437, "after": 436}
    engine = db.make_engine(f"sqlite:///{tmp_path / 'var' / 'trialwatch.db'}")
    with db.transaction(engine) as session:
        versions = list(session.exec(select(StudyVersion).where(StudyVersion.nct_id == "NCT02513394")))
    assert len(versions) == 2
    raw = len(json.dumps(record, separators=(",", ":")).encode())  # 1.5 MB as indented on disk
    assert raw > 700_000 and all(len(v.record) < raw / 4 for v in versions)
    assert repo.unpack_record(versions[1].record) == shorter


def test_history_shows_versions_and_changes_and_skips_noise(cli_for, registry, real_study):
    registry.put(real_study(REAL_0212))
    cli = cli_for(watches=ONE_WATCH + 'nct_ids = ["NCT05805501"]\n')
    cli.now = "2026-02-12T08:00:00+00:00"
    cli("poll")
    registry.put(real_study(REAL_0216))
    cli.now = "2026-02-16T10:00:00+00:00"
    cli("poll")
    registry.put(real_study(REAL_0218))
    cli.now = "2026-02-18T10:00:00+00:00"
    cli("poll", "--full")
    lines = cli("history", "nct05805501").splitlines()
    assert lines[0].startswith("NCT05805501: ")
    assert lines[1] == "first seen 2026-02-12 08:00 UTC"
    assert (
        lines[2] == "version 1: seen 2026-02-12 08:00 UTC, registry update posted 2025-11-13 (Active, not recruiting)"
    )
    assert (
        lines[3] == "version 2: seen 2026-02-16 10:00 UTC, registry update posted 2026-02-12 (Active, not recruiting)"
    )
    assert "[dates] Primary completion slipped 92 days to 2026-10-31" in lines[4]
    assert lines[5] == "  - [sites] Site removed: Asan Medical Center, Seoul, South Korea."
    assert len(lines) == 6  # 02-18 differs only in versionHolder: no third version
    assert "never seen by trialwatch" in cli("history", "NCT09999999")
    assert "not an NCT id" in cli("history", "12345", code=2)


def test_preview_shows_matches_and_the_exact_query_and_stores_nothing(cli_for, registry, own_study):
    for name in ("study_NCT09000001_v1", "study_NCT09000002_v1"):
        registry.put(own_study(name))
    cli = cli_for()
    output = cli("preview", "--conditions", "renal cell carcinoma", "--terms", "CAR-T", "--terms", "CD70")
    lines = output.splitlines()
    assert lines[0].startswith("2 studies match: GET http://")
    assert "query.cond=%22renal+cell+carcinoma%22" in lines[0] and "pageSize=20" in lines[0]
    assert "countTotal=true" in lines[0] and "query.term=%28%22CAR-T%22+OR+%22CD70%22%29" in lines[0]
    assert lines[1].startswith("  NCT09000001  Recruiting · Phase 1 · A Study of FX-101")
    assert lines[2].startswith('      matched "renal cell carcinoma" in title')
    (request,) = studies_requests(registry)
    assert request["query.term"] == '("CAR-T" OR "CD70")'
    assert cli.changes() == [] and "never seen" in cli("history", "NCT09000001")
    assert "2 studies match" in cli("preview", "RCC bispecifics")
    assert "--nct-id: not an NCT id: NCT1" in cli("preview", "--nct-id", "NCT1", code=2)
    assert "give a watch name" in cli("preview", code=2)


def test_429_retry_after_is_honoured_and_retries_are_bounded(registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    slept: list[float] = []
    client = HttpClient(session=make_session(), timeout=5, attempts=3, backoff=0.01, sleep=slept.append)
    registry.fail_next(Fault.status(429, retry_after="7"))
    assert client.get_json(f"{registry.base_url}/version")["apiVersion"] == "2.0.5"
    assert len(slept) == 1 and slept[0] >= 7
    when = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    registry.fail_next(Fault.status(503, retry_after=when), Fault.status(500), Fault.status(500))
    with pytest.raises(SourceError, match=r"HTTP 500"):
        client.get_json(f"{registry.base_url}/version")
    assert 20 <= slept[1] <= 31 and slept[2] < 1 and len(slept) == 3  # 3 attempts: 2 waits
    assert client.requests_made == 5


def test_user_agent_is_honest(registry):
    session = make_session("trialwatch/0.1 (+mailto:admin@example.org)")
    assert session.get(f"{registry.base_url}/version", timeout=5).ok
    assert registry.server.log[-1][0].headers["User-Agent"] == "trialwatch/0.1 (+mailto:admin@example.org)"


def test_many_nct_ids_are_fetched_in_batches_of_one_hundred(cli_for, registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    ids = ", ".join(f'"NCT09{n:06d}"' for n in range(1, 151))
    cli = cli_for(watches=f'[[watch]]\nname = "ids"\nnct_ids = [{ids}]\nrecipients = ["onc@example.org"]\n')
    assert "ids: baseline: 1 studies stored" in cli("poll")
    batches = [params["filter.ids"].split(",") for params in studies_requests(registry)]
    assert [len(batch) for batch in batches] == [100, 50]
    assert batches[0][0] == "NCT09000001" and batches[1][-1] == "NCT09000150"


def test_requests_are_paced():
    slept: list[float] = []
    pacer = Pacer(2.0, sleep=slept.append)
    for _ in range(3):
        pacer.wait()
    # the sleeps are not real here, so the schedule shows: the second call waits 1/2 s, the third 1 s
    assert len(slept) == 2 and 0.4 < slept[0] <= 0.5 and 0.9 < slept[1] <= 1.0
    unpaced = Pacer(0, sleep=slept.append)
    unpaced.wait()
    assert len(slept) == 2


def test_connection_errors_are_retried_then_reported(registry):
    closed = f"http://127.0.0.1:{_closed_port()}/api/v2/version"
    slept: list[float] = []
    client = HttpClient(session=make_session(), timeout=2, attempts=3, backoff=0.01, sleep=slept.append)
    with pytest.raises(SourceError, match=r"cannot connect"):
        client.get_json(closed)
    assert client.requests_made == 3 and len(slept) == 2


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- pages parsed by their reader (registry.client: Page.later) ------------------------------------


def test_the_next_token_is_read_off_the_real_pages_bytes(real_fixtures_dir):
    for name in ("search_page_raw_v2_ild_pagesize5.json", "search_page_fields_subset_totalcount_2023.json"):
        raw = (real_fixtures_dir / "ctgov" / name).read_bytes()
        token = json.loads(raw)["nextPageToken"]
        assert next_token_unparsed(raw) == token, name
        assert next_token_unparsed(raw + b"\n  \n") == token, name
        compact = json.dumps(json.loads(raw), separators=(",", ":")).encode()
        assert next_token_unparsed(compact) == token, name


@pytest.mark.parametrize(
    "body",
    [
        b'{"studies":[]}',  # empty: parsed, to stop
        b'{"studies":[],"nextPageToken":"abc"}',  # empty with a token: parsed, to stop as before
        b'{"studies":[{"a":1}]}',  # the last page
        b'{"studies":[{"a":1}],"nextPageToken":"abc","totalCount":1}',  # another order: parsed
        b'{"studies":[{"a":1}],"nextPageToken":"a\\"bc"}',  # an escape in the token: parsed
        b'{"studies":[{"a":1,"nextPageToken":"abc"}]}',  # a study's own key, not the page's
        b'{"studies":[{"a":1}],"nextPageToken":"abc"}garbage',
        b'{"studies":[{"a":1}],"nextPageToken":"abc"',  # cut short
        b'[{"studies":[{"a":1}],"nextPageToken":"abc"}]',
    ],
)
def test_any_other_page_is_parsed_before_its_token_is_used(body):
    assert next_token_unparsed(body) is None


def two_a_page(registry: Any, own_study: Any, studies: int) -> CtgovClient:
    """`studies` copies of one of our records (NCT09000001…) in the registry; a client of pages of 2."""
    for n in range(1, studies + 1):
        record = own_study("study_NCT09000001_v1")
        record["protocolSection"]["identificationModule"]["nctId"] = f"NCT0900000{n}"
        registry.put(record)
    return CtgovClient(ClinicalTrialsConfig(base_url=registry.base_url, requests_per_second=0, page_size=2))


def test_a_page_that_does_not_parse_is_fetched_again_when_read(registry, own_study):
    client = two_a_page(registry, own_study, 5)
    registry.fail_next(Fault.none(), Fault.garbled())  # the second page: a byte broken in its middle
    pages = list(client.search_pages({"query.term": '"x"', "pageSize": "2", "format": "json"}))
    assert len(studies_requests(registry)) == 3  # every page asked for once, nothing parsed yet
    found = [record["protocolSection"]["identificationModule"]["nctId"] for page in pages for record in page.studies]
    assert found == [f"NCT0900000{n}" for n in range(1, 6)] and pages[0].total == 5
    requests = studies_requests(registry)
    assert len(requests) == 4 and requests[3] == requests[1]  # the broken page, once more


def test_a_page_read_again_that_leads_elsewhere_is_a_clear_error(registry, own_study):
    client = two_a_page(registry, own_study, 3)
    registry.fail_next(Fault.garbled(token="Zm9yZ2Vk"))  # broken, and pointing at another page
    first = next(client.search_pages({"query.term": '"x"', "pageSize": "2", "format": "json"}))
    with pytest.raises(SourceError, match="leads elsewhere than before; poll again"):
        _ = first.studies
