"""Issue #25, vulnerability 3: a preview reads only what it shows (the words' first page and the
first batch of NCT ids), runs on its own small pool with a deadline, and each user (and everyone
together) has a limit of previews running at once, so the pages stay free. Against the local fake
registry, counting its requests, on both databases."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import requests

from tests.web_support import WebSite, csrf_of
from watcher.web.previews import IN_FLIGHT, PER_USER, PreviewRunner

WORDS = {"conditions": ["renal cell carcinoma"], "terms": ["bispecific"]}


def many_ids(count: int) -> list[str]:
    """The fixtures' two studies first, then ids the registry does not hold."""
    return ["NCT09000001", "NCT09000002", *(f"NCT1{n:07d}" for n in range(count - 2))]


def test_a_preview_of_a_thousand_nct_ids_asks_the_registry_once(web_server: WebSite, registry: Any, own_study: Any):
    registry.put(own_study("study_NCT09000001_v1"))
    registry.put(own_study("study_NCT09000002_v1"))
    api = web_server.api(web_server.token("m@example.org"))
    before = registry.request_count("/studies")
    answer = api.post("/api/v1/preview", json={"nct_ids": many_ids(1000)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert registry.request_count("/studies") == before + 1  # was 10: one per 100 ids
    assert body["count"] == 2 and body["complete"] is False and body["unchecked_ids"] == 900
    assert [study["nct_id"] for study in body["studies"]] == ["NCT09000001", "NCT09000002"]
    before = registry.request_count("/studies")
    huge = api.post("/api/v1/preview", json={"nct_ids": many_ids(100_000)})  # was 1,000 requests
    assert huge.status_code in (200, 422), huge.text  # 422 once watches are limited to 1,000 ids
    assert registry.request_count("/studies") <= before + 1


def test_the_form_preview_of_words_and_ids_asks_twice_and_says_what_it_did_not_read(
    web_server: WebSite, registry: Any, own_study: Any
):
    registry.put(own_study("study_NCT09000001_v1"))
    client = web_server.signed_in("ann@example.org")
    token = csrf_of(client.get("/watches/new").text)
    before = registry.request_count("/studies")
    form = {"csrf_token": token, "action": "preview", "name": "x", "conditions": "renal cell carcinoma",
            "nct_ids": "\n".join(many_ids(450)), "recipients": "a@example.org"}  # fmt: skip
    page = client.post("/watches/new", data=form)
    assert page.status_code == 200, page.text
    assert registry.request_count("/studies") == before + 2  # the words, the first 100 ids
    assert "At least" in page.text and "350 more were not looked up" in page.text


def _preview(api: Any) -> requests.Response:
    return api.post("/api/v1/preview", json=WORDS)


def _until_running(site: WebSite, count: int) -> None:
    runner: PreviewRunner = site.app.state.previews
    admitted = threading.Event()
    for _ in range(3000):  # at most 30 s
        if runner.running() >= count:
            return
        admitted.wait(0.01)
    raise AssertionError(f"{count} previews never ran at once")


def test_previews_past_a_users_limit_are_429_and_the_pages_stay_free(web_server: WebSite, registry: Any):
    members = [web_server.api(web_server.token(f"m{n}@example.org")) for n in range(IN_FLIGHT)]
    reader = web_server.signed_in("reader@example.org")
    registry.hold()
    try:
        with ThreadPoolExecutor(max_workers=IN_FLIGHT * PER_USER + 4) as pool:
            asked = [pool.submit(_preview, members[0]) for _ in range(PER_USER)]
            _until_running(web_server, PER_USER)
            mine = _preview(members[0])
            assert mine.status_code == 429 and f"you have {PER_USER} previews running" in mine.json()["error"]
            others = [pool.submit(_preview, api) for api in members[1:] for _ in range(PER_USER)]
            refused = []
            for done in as_completed(others, timeout=60):  # each past the limit comes back at once
                refused.append(done.result())
                if len(refused) == len(others) - (IN_FLIGHT - PER_USER):
                    break
            assert {answer.status_code for answer in refused} == {429}
            assert "too many previews are running" in refused[0].json()["error"]
            assert reader.get("/").status_code == 200  # the pages' thread pool is not the previews'
            registry.release()
            statuses = sorted(future.result(timeout=60).status_code for future in asked + others)
        assert statuses == [200] * IN_FLIGHT + [429] * (len(statuses) - IN_FLIGHT)
        assert _preview(members[0]).status_code == 200  # its limit is free again
    finally:
        registry.release()


def test_a_preview_past_its_deadline_says_so(web_server: WebSite, registry: Any):
    api = web_server.api(web_server.token("m@example.org"))
    web_server.app.state.previews = PreviewRunner(deadline=0.5)
    registry.hold()
    try:
        answer = _preview(api)
    finally:
        registry.release()
    assert answer.status_code == 502
    assert answer.json() == {"error": "the registry could not be asked: no answer within 0.5 s: try again later"}


def test_once_the_server_stops_a_preview_says_so(web_server: WebSite, registry: Any):
    api = web_server.api(web_server.token("m@example.org"))
    web_server.app.state.previews.shutdown()  # what the app's lifespan does when uvicorn stops
    answer = _preview(api)
    assert answer.status_code == 502
    assert answer.json() == {"error": "the registry could not be asked: the server is stopping: try again in a minute"}
    assert registry.request_count("/studies") == 0


def test_in_the_browser_a_preview_of_many_ids_says_what_it_did_not_look_up(
    signed_in_browser: Any, registry: Any, own_study: Any
):
    registry.put(own_study("study_NCT09000001_v1"))
    browser = signed_in_browser
    browser.open("/watches/new")
    browser.fill({"name": "Many ids", "nct_ids": "\n".join(many_ids(1000)), "recipients": "onc@example.org"})
    before = registry.request_count("/studies")
    browser.find("#preview-button").click()
    note = browser.wait_for(lambda driver: browser.find_all("#preview .unchecked"))
    assert "900 more were not looked up" in note[0].text
    assert browser.find("#preview .count").text.startswith("At least 1 study matches")
    assert registry.request_count("/studies") == before + 1
    browser.screenshot("preview-many-ids")
