"""The rule keys of a watch (watcher.watch): from a TOML file and from a JSON body (as the API
validates it) they give the same watch, the same errors naming the key and the bad value, and the
same verdicts on the real version pairs; the registry query carries what the registry can filter;
the signature (a new baseline) moves with the join rules only; the shipped config's examples work."""

from __future__ import annotations

import hashlib
import json
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape
from pydantic import ValidationError

from tests.test_rules import DALLAS, E0205, E0210, R0212, R0216, verdicts, watch
from watcher.config import load_config
from watcher.errors import ConfigError
from watcher.registry.client import query_signature, updated_since, watch_queries, with_advanced
from watcher.rules import describe_rules, registry_geo_filter
from watcher.store import db
from watcher.store.watches import get_watch_row, watch_of, watch_rows
from watcher.watch import WatchConfig

# --- the registry query ------------------------------------------------------------------------


def test_the_registry_query_carries_statuses_phases_and_near():
    rules = watch(statuses=["RECRUITING", "NOT_YET_RECRUITING"], phases=["PHASE1", "PHASE2"], near=DALLAS)
    (scoped,) = watch_queries(rules)
    assert scoped["filter.overallStatus"] == "RECRUITING,NOT_YET_RECRUITING"
    assert scoped["filter.advanced"] == "AREA[Phase](PHASE1 OR PHASE2)"
    assert scoped["filter.geo"] == "distance(32.78,-96.8,62.76mi)"  # 100 km = 62.14 mi, 1 % wider
    assert registry_geo_filter(watch()) is None
    (plain,) = watch_queries(rules, scoped=False)
    assert not {"filter.overallStatus", "filter.advanced", "filter.geo"} & set(plain)
    since = with_advanced(scoped, updated_since(date(2026, 11, 1)))
    assert since["filter.advanced"] == "AREA[Phase](PHASE1 OR PHASE2) AND AREA[LastUpdatePostDate]RANGE[2026-11-01,MAX]"
    (one_phase,) = watch_queries(watch(phases=["PHASE3"]))
    assert one_phase["filter.advanced"] == "AREA[Phase]PHASE3"
    (with_ids,) = watch_queries(watch(nct_ids=["NCT05805501"], statuses=["RECRUITING"]))[1:]
    assert with_ids["filter.ids"] == "NCT05805501" and "filter.overallStatus" not in with_ids  # ids ignore filters


def test_join_rules_change_the_signature_alert_rules_do_not():
    plain = watch()
    before_rules = hashlib.sha256(json.dumps(watch_queries(plain), sort_keys=True).encode()).hexdigest()[:16]
    assert query_signature(plain) == before_rules  # a watch without rules keeps its baseline
    for alerting in ({"alert_on": ["status"]}, {"min_slip_days": 30}, {"min_enrollment_change_percent": 10}):
        assert query_signature(watch(**alerting)) == query_signature(plain)
    joining = [{"statuses": ["RECRUITING"]}, {"phases": ["PHASE2"]}, {"near": DALLAS}, {"countries": ["Germany"]},
               {"states": ["Texas"]}, {"cities": ["Dallas"]}]  # fmt: skip
    signatures = {query_signature(watch(**keys)) for keys in joining}
    assert len(signatures) == len(joining) and query_signature(plain) not in signatures


# --- one definition: the TOML file and the API's JSON body ----------------------------------------

RULES_TOML = """
alert_on = ["status", "results_posted", "new_study", "dates", "sites"]
min_slip_days = 30
min_enrollment_change_percent = 10
statuses = ["RECRUITING", "ACTIVE_NOT_RECRUITING"]
phases = ["PHASE1", "PHASE2"]
countries = ["United States"]
near = { lat = 32.78, lon = -96.80, radius_km = 100 }
"""
RULES_JSON = {
    "alert_on": ["status", "results_posted", "new_study", "dates", "sites"],
    "min_slip_days": 30,
    "min_enrollment_change_percent": 10,
    "statuses": ["RECRUITING", "ACTIVE_NOT_RECRUITING"],
    "phases": ["PHASE1", "PHASE2"],
    "countries": ["United States"],
    "near": {"lat": 32.78, "lon": -96.80, "radius_km": 100},
}
WATCH_HEAD = '[[watch]]\nname = "w"\nterms = ["RCC"]\nrecipients = ["a@example.org"]\n'


def from_toml(tmp_path: Path, body: str) -> WatchConfig:
    path = tmp_path / "trialwatch.toml"
    path.write_text(WATCH_HEAD + body)
    return load_config(path).watch[0]


def from_json(body: dict[str, Any]) -> WatchConfig:
    """As the API validates its body: JSON text -> WatchConfig.model_validate."""
    return WatchConfig.model_validate(json.loads(json.dumps({"name": "w", "terms": ["RCC"],
                                                             "recipients": ["a@example.org"], **body})))  # fmt: skip


def test_toml_and_json_give_the_same_watch_and_the_same_verdicts(tmp_path, real_study):
    toml_watch, json_watch = from_toml(tmp_path, RULES_TOML), from_json(RULES_JSON)
    assert toml_watch == json_watch
    assert tomllib.loads(RULES_TOML) == RULES_JSON
    for old, new in ((R0212, R0216), (E0205, E0210)):
        assert verdicts(toml_watch, real_study(old), real_study(new)) == verdicts(
            json_watch, real_study(old), real_study(new)
        )
    assert verdicts(toml_watch, real_study(R0212), real_study(R0216)) == {"dates": None, "sites": "geography"}
    assert verdicts(toml_watch, real_study(E0205), real_study(E0210)) == {"dates": None, "enrollment": "alert_on"}


BAD_RULES = [  # the TOML line; its JSON twin is the same table as the API's body
    ('alert_on = ["status", "recruitment"]', "alert_on", "'recruitment'"),
    ("alert_on = []", "alert_on", "alert_on is empty"),
    ("min_slip_days = 0", "min_slip_days", "not 0"),
    ("min_slip_days = -3", "min_slip_days", "not -3"),
    ('min_slip_days = "30"', "min_slip_days", "not '30'"),
    ("min_slip_days = 2.5", "min_slip_days", "not 2.5"),
    ("min_enrollment_change_percent = 0", "min_enrollment_change_percent", "not 0"),
    ('statuses = ["RECRUITING", "OPEN"]', "statuses", "'OPEN'"),
    ('phases = ["PHASE5"]', "phases", "'PHASE5'"),
    ('countries = ["Texas", ""]', "countries", "['Texas', '']"),
    ("near = { lat = 95, lon = 0, radius_km = 10 }", "near.lat", "not 95"),
    ("near = { lat = 1, lon = 2, radius_km = -5 }", "near.radius_km", "not -5"),
    ('near = "Dallas"', "near", "not 'Dallas'"),
]


@pytest.mark.parametrize(("toml_text", "key", "bad"), BAD_RULES)
def test_a_bad_rule_gives_the_same_error_from_toml_and_json(tmp_path, toml_text, key, bad):
    with pytest.raises(ValidationError) as api_error:
        from_json(tomllib.loads(toml_text))
    (error,) = api_error.value.errors()
    message = str(error["msg"]).removeprefix("Value error, ")
    assert ".".join(map(str, error["loc"])) == key
    assert key.split(".")[-1] in message and bad in message  # the key and the bad value, for the API alone
    with pytest.raises(ConfigError) as config_error:
        from_toml(tmp_path, toml_text + "\n")
    assert config_error.value.one_line().endswith(f"watch 'w': key '{key}': {message}")


def test_the_shipped_config_shows_one_working_example_of_each_rule(tmp_path):
    path = Path(__file__).resolve().parent.parent / "config" / "trialwatch.toml"
    shipped = path.read_text()
    examples = [line.removeprefix("#").strip() for line in shipped.splitlines() if line.startswith("#   ")]
    examples = [line.split("  #")[0] for line in examples if " = " in line]
    keys = [line.split(" = ")[0] for line in examples]
    rule_keys = ["alert_on", "min_slip_days", "min_enrollment_change_percent", "statuses", "phases",
                 "countries", "states", "cities", "near"]  # fmt: skip
    assert keys == rule_keys
    watches = load_config(path).watch  # the three shipped watches stay unfiltered
    assert len(watches) == 3 and all(describe_rules(w) == "mails: every kind of change" for w in watches)
    uncommented = from_toml(tmp_path, "\n".join(examples) + "\n")
    assert describe_rules(uncommented).startswith("mails: status, results posted, new study, dates; dates only")


# --- the same rules through the web app: the JSON API and the watch form, over HTTP -------------

HEAD_JSON = {"name": "w", "terms": ["RCC"], "recipients": ["a@example.org"]}
HEAD_FORM = {"name": "w", "terms": "RCC", "recipients": "a@example.org", "digest": "daily", "feeds": "on"}
HEAD_FORM |= {"pubmed": "on"}  # a browser sends a ticked box as "on"
RULES_FORM = {  # RULES_TOML as a person fills the form's rules section
    "alert_on": ["status", "results_posted", "new_study", "dates", "sites"],
    "min_slip_days": "30",
    "min_enrollment_change_percent": "10",
    "statuses": ["RECRUITING", "ACTIVE_NOT_RECRUITING"],
    "phases": ["PHASE1", "PHASE2"],
    "countries": "United States",
    "near_lat": "32.78",
    "near_lon": "-96.80",
    "near_radius_km": "100",
}
FORM_TWIN = {  # the form's inputs for a BAD_RULES line; None: the form cannot say it (no such input)
    'alert_on = ["status", "recruitment"]': {"alert_on": ["status", "recruitment"]},
    "alert_on = []": None,  # nothing ticked is every kind
    "min_slip_days = 0": {"min_slip_days": "0"},
    "min_slip_days = -3": {"min_slip_days": "-3"},
    'min_slip_days = "30"': None,  # a number input reads 30 as the number
    "min_slip_days = 2.5": {"min_slip_days": "2.5"},
    "min_enrollment_change_percent = 0": {"min_enrollment_change_percent": "0"},
    'statuses = ["RECRUITING", "OPEN"]': {"statuses": ["RECRUITING", "OPEN"]},
    'phases = ["PHASE5"]': {"phases": ["PHASE5"]},
    'countries = ["Texas", ""]': None,  # blank lines are skipped
    "near = { lat = 95, lon = 0, radius_km = 10 }": {"near_lat": "95", "near_lon": "0", "near_radius_km": "10"},
    "near = { lat = 1, lon = 2, radius_km = -5 }": {"near_lat": "1", "near_lon": "2", "near_radius_km": "-5"},
    'near = "Dallas"': None,
}


def stored_watch(web_server, name: str) -> WatchConfig:
    with db.transaction(web_server.engine) as session:
        row = get_watch_row(session=session, name=name)
        assert row is not None
        return watch_of(row)


def test_toml_the_api_and_the_form_store_the_same_watch(tmp_path, web_server):
    toml_watch = from_toml(tmp_path, RULES_TOML)
    api = web_server.api(web_server.token("member@example.org"))
    created = api.post("/api/v1/watches", json={**HEAD_JSON, **RULES_JSON})
    assert created.status_code == 201, created.text
    read = api.get("/api/v1/watches/w").json()
    assert WatchConfig.model_validate({k: v for k, v in read.items() if k in WatchConfig.model_fields}) == toml_watch
    assert stored_watch(web_server, "w") == toml_watch
    form = web_server.signed_in("ann@example.org")
    saved = form.submit("/watches/new", {**HEAD_FORM, **RULES_FORM, "name": "w in the form", "action": "save"})
    assert saved.status_code == 303, saved.text
    assert stored_watch(web_server, "w in the form") == toml_watch.model_copy(update={"name": "w in the form"})
    page = form.get("/watches/w%20in%20the%20form").text  # the form again, its rules section filled and open
    assert '<details class="rules" id="rules" open>' in page
    assert 'name="min_slip_days" type="number" min="1" step="1" inputmode="numeric" value="30"' in page
    assert 'value="ACTIVE_NOT_RECRUITING" checked' in page and 'value="PHASE3">' in page
    assert '<textarea id="countries" name="countries" rows="2" aria-describedby="countries-hint">United States<' in page
    assert escape(describe_rules(toml_watch)) in page  # in words, under "Now"


def test_a_bad_rule_gives_the_same_message_from_toml_the_api_and_the_form(tmp_path, web_server):
    api = web_server.api(web_server.token("member@example.org"))
    form = web_server.signed_in("ann@example.org")
    rows = [(toml_text, key) for toml_text, key, _bad in BAD_RULES]
    rows.append(("near = { lat = 1, lon = 2 }", "near.radius_km"))  # one of the three left empty
    twins = {**FORM_TWIN, "near = { lat = 1, lon = 2 }": {"near_lat": "1", "near_lon": "2"}}
    for toml_text, key in rows:
        with pytest.raises(ConfigError) as config_error:
            from_toml(tmp_path, toml_text + "\n")
        in_toml = config_error.value.one_line().split("watch 'w': ", 1)[1]
        message = in_toml.removeprefix(f"key '{key}': ")
        response = api.post("/api/v1/watches", json={**HEAD_JSON, **tomllib.loads(toml_text)})
        assert response.status_code == 422, toml_text
        assert response.json()["errors"] == [{"field": key, "message": message}], toml_text
        if twins[toml_text] is None:
            continue
        page = form.submit("/watches/new", {**HEAD_FORM, **twins[toml_text], "action": "save"})
        assert page.status_code == 422, toml_text
        shown = f'<p class="field-error" id="{key.replace(".", "_")}-error">{escape(message)}</p>'
        assert shown in page.text, toml_text
        assert "Please correct the fields marked below." in page.text  # not listed at the top instead
    with db.transaction(web_server.engine) as session:
        assert [row.name for row in watch_rows(session=session)] == ["RCC file watch"]
