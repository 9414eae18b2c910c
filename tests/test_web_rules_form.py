"""The rules section of the watch form over HTTP (no JavaScript), on both databases: its Preview
applies the join rules as `trialwatch preview` does (the registry's filters and the local
geography), the read-only page of a config watch shows its rules in words, and the inputs read
place names and numbers as a person types them."""

from __future__ import annotations

import re

from markupsafe import escape

from tests.web_support import FILE_WATCH
from watcher.rules import describe_rules
from watcher.watch import WatchConfig
from watcher.web.rules_form import number_or_text, split_places

FORM = {"name": "RCC", "conditions": "renal cell carcinoma", "recipients": "onc@example.org", "digest": "daily"}


def preview(client, **rules):
    return client.submit("/watches/new", {**FORM, **rules, "action": "preview"})


def count_of(page: str) -> int:
    match = re.search(r'<p class="count"><strong>(\d+)</strong>', page)
    assert match, "no count in the preview"
    return int(match.group(1))


def test_the_preview_applies_statuses_phases_and_geography(web_server, registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))  # recruiting, phase 1: Villejuif, Seoul, Houston
    registry.put(own_study("study_NCT09000002_v1"))  # recruiting, phase 1: New York
    client = web_server.signed_in("ann@example.org")
    assert count_of(preview(client).text) == 2
    page = preview(client, countries="France").text  # checked locally, as a poll checks it
    assert count_of(page) == 1 and "NCT09000001" in page and "NCT09000002" not in page
    assert "The watch's rules leave out 1 by geography of what the registry returned." in page
    assert count_of(preview(client, statuses="COMPLETED").text) == 0  # the registry's filter.overallStatus
    assert count_of(preview(client, phases=["PHASE1", "PHASE2"], statuses="RECRUITING").text) == 2
    before = registry.request_count("/studies")
    houston = preview(client, near_lat="29.76", near_lon="-95.37", near_radius_km="50").text
    assert count_of(houston) == 1 and "NCT09000001" in houston
    assert registry.request_count("/studies") == before + 1  # one page, filter.geo sent
    _path, sent = registry.requests_log[-1]
    assert sent["filter.geo"] == "distance(29.76,-95.37,31.38mi)" and "countTotal" in sent
    bad = preview(client, near_lat="29.76", near_lon="-95.37", near_radius_km="0")
    assert bad.status_code == 422
    assert 'id="near_radius_km-error">near.radius_km must be a number above 0, not 0</p>' in bad.text


def test_a_config_watch_shows_its_rules_in_words(web_server):
    ruled = WatchConfig(
        name="Dallas coordinator", conditions=["renal cell carcinoma"], recipients=["site@example.org"],
        alert_on=["new_study", "sites", "status"], min_slip_days=30, statuses=["RECRUITING"], states=["Texas"],
        pubmed=False,
    )  # fmt: skip
    web_server.provision(FILE_WATCH, ruled)
    client = web_server.signed_in("ann@example.org")
    page = client.get("/watches/Dallas%20coordinator").text
    words = describe_rules(ruled)
    assert words == (
        "mails: new study, sites, status; dates only when they move 30 days or more, or become actual; "
        "studies recruiting; sites in Texas"
    )
    assert f'<dt>Rules</dt><dd class="rules-words">{escape(words)}</dd>' in page
    assert "<dt>PubMed</dt><dd>not searched</dd>" in page
    assert 'name="min_slip_days"' not in page  # read-only: no form
    dashboard = client.get("/").text
    assert str(escape(words)) in dashboard and "mails: every kind of change" in dashboard  # the file watch


def test_editing_keeps_the_rules_and_an_empty_section_means_no_rule(web_server):
    client = web_server.signed_in("ann@example.org")
    rules = {"alert_on": ["status", "dates"], "min_slip_days": "14", "cities": "Dallas, Fort Worth",
             "pubmed": "on", "pubmed_query": "renal cell carcinoma[tiab]"}  # fmt: skip
    assert client.submit("/watches/new", {**FORM, **rules, "action": "save"}).status_code == 303
    page = client.get("/watches/RCC").text
    assert '<textarea id="cities" name="cities" rows="2" aria-describedby="cities-hint">Dallas\nFort Worth<' in page
    assert 'value="status" checked' in page and 'value="sites">' in page
    assert 'value="renal cell carcinoma[tiab]"' in page
    saved = client.submit("/watches/RCC", {**FORM, "pubmed": "on", "action": "save"})  # every rule input empty
    assert saved.status_code == 303
    page = client.get("/watches/RCC").text
    assert '<details class="rules" id="rules">' in page  # closed: nothing set
    assert '<dt>Rules</dt><dd class="rules-words">mails: every kind of change</dd>' in page
    assert "<dt>PubMed</dt>" not in page  # searched, with the query built from the words
    assert client.submit("/watches/RCC", {**FORM, "action": "save"}).status_code == 303  # the box unticked
    page = client.get("/watches/RCC").text
    assert '<details class="rules" id="rules" open>' in page and "<dt>PubMed</dt><dd>not searched</dd>" in page


def test_place_names_one_a_line_or_separated_by_commas():
    assert split_places("United States\nGermany") == ["United States", "Germany"]
    assert split_places(" Texas, Oklahoma ;Louisiana\n\n") == ["Texas", "Oklahoma", "Louisiana"]
    assert split_places("Korea, Republic of, Germany") == ["Korea, Republic of", "Germany"]
    assert split_places("Congo, The Democratic Republic of the\nIran, Islamic Republic of") == [
        "Congo, The Democratic Republic of the", "Iran, Islamic Republic of",
    ]  # fmt: skip
    assert split_places("") == []


def test_numbers_as_typed():
    assert number_or_text(" 30 ") == 30 and isinstance(number_or_text("30"), int)
    assert number_or_text("-96.80") == -96.8 and number_or_text("2.5") == 2.5
    assert number_or_text("") is None and number_or_text("  ") is None
    assert number_or_text("thirty") == "thirty"  # WatchConfig names it: "not 'thirty'"


def test_the_api_preview_takes_the_join_rules_too(web_server, registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    registry.put(own_study("study_NCT09000002_v1"))
    api = web_server.api(web_server.token("member@example.org"))
    asked = {"conditions": ["renal cell carcinoma"], "countries": ["United States"], "states": ["New York"]}
    response = api.post("/api/v1/preview", json=asked)
    assert response.status_code == 200, response.text
    body = response.json()  # NCT09000001's sites are in Texas, France and Korea: left out by geography
    assert body["count"] == 1 and [study["nct_id"] for study in body["studies"]] == ["NCT09000002"]
    refused = api.post("/api/v1/preview", json={"conditions": ["x"], "near": {"lat": 1, "lon": 2, "radius_km": 0}})
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {"field": "near.radius_km", "message": "near.radius_km must be a number above 0, not 0"}
    ]
    refused = api.post("/api/v1/preview", json={"conditions": ["x"], "min_slip_days": 30})  # not a join rule
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "min_slip_days"
