"""The JSON API over HTTP, on both databases: watches (list, read, create, replace, delete), who
may change what, validation errors as {"errors": [{"field", "message"}]}, the registry preview,
and changes with keyset pagination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from tests.web_support import FILE_WATCH
from watcher.store import db
from watcher.store.models import ChangeRow, StudyRow, StudyVersion, WatchState, WatchStudy
from watcher.store.watches import audit_entries, get_watch_row

W_KEYS = {
    "name", "conditions", "terms", "exclude", "nct_ids", "recipients", "digest", "send_empty", "feeds",
    "source", "owner", "last_poll_at", "last_success_at", "failing_since", "last_error", "studies", "changes_7d",
}  # fmt: skip
# added beside them: the rules of a watch (#15) and its PubMed settings (#16), every WatchConfig field
W_KEYS |= {"alert_on", "min_slip_days", "min_enrollment_change_percent", "statuses", "phases", "countries", "states",
           "cities", "near", "pubmed", "pubmed_query", "notify", "crossref", "europepmc"}  # fmt: skip
W_KEYS |= {"upcoming"}  # the digest's "Coming up" section (#23)
NEW = {
    "name": "RCC bispecifics",
    "conditions": ["renal cell carcinoma"],
    "terms": ["bispecific"],
    "recipients": ["onc@example.org"],
    "digest": "weekly",
}


@pytest.fixture
def api(web_server):
    return web_server.api(web_server.token("member@example.org"))


def test_list_and_read_watches_with_their_health(web_server, api):
    now = web_server.clock.now()
    with db.transaction(web_server.engine) as session:
        session.add(
            WatchState(
                name=FILE_WATCH.name,
                last_poll_at=now,
                last_success_at=now - timedelta(hours=6),
                failing_since=now - timedelta(hours=1),
                last_error="registry answered 503",
            )
        )
        session.add(
            StudyRow(
                nct_id="NCT09000001", title="t", status="RECRUITING", fingerprint="f", first_seen_at=now, changed_at=now
            )
        )
        session.flush()
        version = StudyVersion(nct_id="NCT09000001", fingerprint="f", record=b"{}", seen_at=now)
        session.add(version)
        session.flush()
        session.add(WatchStudy(watch=FILE_WATCH.name, nct_id="NCT09000001", version_id=version.id or 0, matched_at=now))
        watch_id = get_watch_row(session=session, name=FILE_WATCH.name).id  # a change is its watch's (by id)
        for days in (1, 3, 9):  # two in the last 7 days
            session.add(change(FILE_WATCH.name, now - timedelta(days=days), watch_id=watch_id))
    listed = api.get("/api/v1/watches")
    assert listed.status_code == 200
    (watch,) = listed.json()["watches"]
    assert set(watch) == W_KEYS
    assert watch["name"] == FILE_WATCH.name and watch["source"] == "config" and watch["owner"] is None
    assert watch["conditions"] == ["renal cell carcinoma"] and watch["recipients"] == ["onc@example.org"]
    assert watch["studies"] == 1 and watch["changes_7d"] == 2
    assert watch["last_error"] == "registry answered 503"
    assert datetime.fromisoformat(watch["failing_since"]) == now - timedelta(hours=1)
    assert datetime.fromisoformat(watch["last_success_at"]) == now - timedelta(hours=6)
    one = api.get("/api/v1/watches/RCC%20file%20watch")
    assert one.status_code == 200 and one.json() == watch
    assert api.get("/api/v1/watches/nothing").status_code == 404


def change(
    watch: str, at: datetime, kind: str = "status", nct_id: str = "NCT09000001", watch_id: int | None = None
) -> ChangeRow:
    return ChangeRow(
        watch=watch, watch_id=watch_id, kind=kind, source="clinicaltrials", nct_id=nct_id, title="A study",
        summary=f"{kind} at {at:%d}", details={}, detected_at=at,
    )  # fmt: skip


def test_create_read_replace_delete_a_watch_and_its_audit(web_server, api):
    created = api.post("/api/v1/watches", json=NEW)
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == W_KEYS
    assert body["source"] == "web" and body["owner"] == "member@example.org" and body["digest"] == "weekly"
    assert body["exclude"] == [] and body["feeds"] is True and body["studies"] == 0
    assert api.get("/api/v1/watches/RCC%20bispecifics").json() == body
    replaced = api.put("/api/v1/watches/RCC%20bispecifics", json={**NEW, "terms": ["tobemstomig"], "digest": "daily"})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["terms"] == ["tobemstomig"] and replaced.json()["digest"] == "daily"
    round_trip = {**replaced.json(), "send_empty": True}  # a W read back, changed and sent again
    assert api.put("/api/v1/watches/RCC%20bispecifics", json=round_trip).json()["send_empty"] is True
    renamed = api.put("/api/v1/watches/RCC%20bispecifics", json={**NEW, "name": "RCC BsAb"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "RCC BsAb"
    assert api.get("/api/v1/watches/RCC%20bispecifics").status_code == 404
    assert api.delete("/api/v1/watches/RCC%20BsAb").status_code == 204
    assert api.get("/api/v1/watches/RCC%20BsAb").status_code == 404
    assert [w["name"] for w in api.get("/api/v1/watches").json()["watches"]] == [FILE_WATCH.name]
    with db.transaction(web_server.engine) as session:
        actions = [
            (e.action, e.actor) for e in reversed(audit_entries(session=session)) if e.actor != "trialwatch.toml"
        ]
        first = [e for e in audit_entries(session=session, watch="RCC bispecifics") if e.action == "update"][-1]
    assert actions == [("create", "member@example.org")] + [("update", "member@example.org")] * 3 + [
        ("archive", "member@example.org")
    ]
    assert first.changes["terms"] == [["bispecific"], ["tobemstomig"]]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({**NEW, "keywrds": ["x"]}, "keywrds", "unknown field 'keywrds'"),
        ({**NEW, "recipients": ["not an address"]}, "recipients", "not a valid mail address"),
        ({**NEW, "recipients": []}, "recipients", "at least 1"),
        ({**NEW, "conditions": [], "terms": []}, "conditions", "give at least one of conditions, terms or nct_ids"),
        ({**NEW, "digest": "hourly"}, "digest", "immediate"),
        ({**NEW, "nct_ids": ["NCT123"]}, "nct_ids", "not an NCT id: NCT123"),
        ({k: v for k, v in NEW.items() if k != "name"}, "name", "required"),
    ],
)
def test_an_invalid_watch_is_422_with_the_field_and_a_message(api, body, field, words):
    response = api.post("/api/v1/watches", json=body)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert any(e["field"] == field and words in e["message"] for e in errors), errors
    assert api.get("/api/v1/watches").json()["watches"][0]["name"] == FILE_WATCH.name
    assert len(api.get("/api/v1/watches").json()["watches"]) == 1


def test_a_body_that_is_not_a_json_object_is_422(api):
    response = api.post("/api/v1/watches", data="[1, 2]", headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "body"
    assert api.post("/api/v1/watches", data="{nope").status_code == 422


def test_a_name_in_use_is_409_whichever_kind_holds_it(api):
    assert api.post("/api/v1/watches", json=NEW).status_code == 201
    assert api.post("/api/v1/watches", json=NEW).status_code == 409
    taken = api.post("/api/v1/watches", json={**NEW, "name": FILE_WATCH.name})
    assert taken.status_code == 409 and taken.json()["errors"][0]["field"] == "name"


def test_a_config_watch_is_read_only_naming_the_file(web_server, api):
    for response in (
        api.put("/api/v1/watches/RCC%20file%20watch", json={**NEW, "name": FILE_WATCH.name}),
        api.delete("/api/v1/watches/RCC%20file%20watch"),
    ):
        assert response.status_code == 403
        assert "managed in config/trialwatch.toml" in response.json()["error"]
    admin = web_server.api(web_server.token("admin@example.org", role="admin"))
    assert admin.delete("/api/v1/watches/RCC%20file%20watch").status_code == 403
    assert api.get("/api/v1/watches/RCC%20file%20watch").status_code == 200


def test_a_member_cannot_change_another_members_watch_an_admin_can(web_server, api):
    assert api.post("/api/v1/watches", json=NEW).status_code == 201
    other = web_server.api(web_server.token("other@example.org"))
    assert other.get("/api/v1/watches/RCC%20bispecifics").status_code == 200  # members read everything
    put = other.put("/api/v1/watches/RCC%20bispecifics", json={**NEW, "digest": "daily"})
    assert put.status_code == 403 and "created by member@example.org" in put.json()["error"]
    assert other.delete("/api/v1/watches/RCC%20bispecifics").status_code == 403
    admin = web_server.api(web_server.token("admin@example.org", role="admin"))
    assert admin.put("/api/v1/watches/RCC%20bispecifics", json={**NEW, "digest": "daily"}).status_code == 200
    assert admin.delete("/api/v1/watches/RCC%20bispecifics").status_code == 204


def test_a_revoked_or_foreign_session_is_no_api_access(web_server):
    browser_like = web_server.signed_in("ann@example.org")
    assert browser_like.get("/api/v1/watches").status_code == 401  # a session cookie is not a token
    from watcher.store import people

    token = web_server.token("bob@example.org")
    assert web_server.api(token).get("/api/v1/watches").status_code == 200
    with db.transaction(web_server.engine) as session:
        (info,) = people.list_tokens(
            session=session, user_id=people.user_by_email(session=session, email="bob@example.org").id
        )
        assert people.revoke_token(session=session, token_id=info.id)
    assert web_server.api(token).get("/api/v1/watches").status_code == 401


def test_preview_asks_the_registry_now_and_stores_nothing(web_server, api, registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    registry.put(own_study("study_NCT09000002_v1"))
    before = registry.request_count("/studies")
    response = api.post("/api/v1/preview", json={"conditions": ["renal cell carcinoma"], "terms": ["bispecific"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 2 and len(body["studies"]) == 2
    first = body["studies"][0]
    assert set(first) == {"nct_id", "title", "status", "phase", "why"}
    assert first["nct_id"] == "NCT09000001" and first["status"] == "Recruiting"
    assert "bispecific" in first["why"].lower()
    assert registry.request_count("/studies") == before + 1
    with db.transaction(web_server.engine) as session:
        assert session.get(StudyRow, "NCT09000001") is None
    assert api.get("/api/v1/watches").json()["watches"][0]["name"] == FILE_WATCH.name


def test_preview_refuses_what_a_watch_would_refuse(api):
    response = api.post("/api/v1/preview", json={"conditions": [], "recipients": ["x@example.org"]})
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"recipients"}
    response = api.post("/api/v1/preview", json={"nct_ids": ["NCT1"]})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "nct_ids"


def test_changes_newest_first_filtered_and_paged_by_keyset(web_server, api):
    base = datetime(2026, 11, 20, 8, tzinfo=UTC)
    with db.transaction(web_server.engine) as session:
        for i in range(7):  # two share each moment: the id breaks the tie
            session.add(change("A", base + timedelta(hours=i // 2), kind="status" if i % 3 else "dates"))
        session.add(change("B", base, nct_id="NCT09000002"))
    everything = api.get("/api/v1/changes").json()
    assert everything["next_cursor"] is None and len(everything["changes"]) == 8
    keys = [(c["detected_at"], c["id"]) for c in everything["changes"]]
    assert keys == sorted(keys, reverse=True)
    assert set(everything["changes"][0]) >= {
        "id",
        "watch",
        "kind",
        "source",
        "nct_id",
        "title",
        "summary",
        "details",
        "detected_at",
    }
    seen, cursor = [], None
    while True:
        page = api.get(
            "/api/v1/changes", params={"watch": "A", "limit": 3, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [c["id"] for c in page["changes"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [c["id"] for c in everything["changes"] if c["watch"] == "A"]
    dates = api.get("/api/v1/changes", params={"kind": "dates"}).json()["changes"]
    assert dates and {c["kind"] for c in dates} == {"dates"}
    by_id = api.get("/api/v1/changes", params={"nct_id": "nct09000002"}).json()["changes"]
    assert [c["watch"] for c in by_id] == ["B"]
    window = api.get("/api/v1/changes", params={"since": "2026-11-20T09:00:00+00:00", "until": "2026-11-20T10:00:00Z"})
    assert {c["detected_at"] for c in window.json()["changes"]} == {"2026-11-20T09:00:00+00:00"}


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": "0"}, "limit"), ({"limit": "501"}, "limit"), ({"kind": "nope"}, "kind"),
     ({"since": "yesterday"}, "since"), ({"cursor": "garbage!"}, "cursor"), ({"nct_id": "NCT1"}, "nct_id")],
)  # fmt: skip
def test_bad_change_queries_are_422(api, params, field):
    response = api.get("/api/v1/changes", params=params)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


def test_preview_when_the_registry_fails_is_502(api, registry):
    from tests.servers import Fault

    registry.fail_next(Fault.status(500), Fault.status(500))
    response = api.post("/api/v1/preview", json={"terms": ["CAR-T"]})
    assert response.status_code == 502 and response.json()["error"].startswith("the registry could not be asked")


def test_a_name_with_a_slash_and_unicode_round_trips(api):
    name = "RCC / ccRCC – 2L"
    assert api.post("/api/v1/watches", json={**NEW, "name": name}).status_code == 201
    path = "/api/v1/watches/" + quote(name, safe="")
    assert api.get(path).json()["name"] == name
    assert api.put(path, json={**NEW, "name": name, "digest": "daily"}).json()["digest"] == "daily"
    assert api.delete(path).status_code == 204


def test_unknown_api_paths_and_methods_answer_json(api):
    missing = api.get("/api/v1/nothing")
    assert missing.status_code == 404 and "error" in missing.json()
    wrong = api.request("PATCH", "/api/v1/watches")
    assert wrong.status_code == 405 and "error" in wrong.json()
