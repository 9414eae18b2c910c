"""The pages over HTTP (no JavaScript), on both databases: the watch form with its preview, errors
next to their field, saving, editing, deleting, who may change what, the dashboard, the account
page; everything from the registry or a user escaped."""

from __future__ import annotations

import re

from tests.web_support import PASSWORD, csrf_of
from watcher.store import db
from watcher.store.watches import get_watch_row

FORM = {
    "name": "RCC bispecifics",
    "conditions": "renal cell carcinoma\nkidney cancer",
    "terms": "bispecific",
    "exclude": "",
    "nct_ids": "nct09000002",
    "recipients": "onc@example.org, coordinator@example.org",
    "digest": "weekly",
    "feeds": "on",
}


def create(client, **changes: str):
    return client.submit("/watches/new", {**FORM, **changes, "action": "save"})


def test_creating_a_watch_in_the_form_stores_it_and_shows_it(web_server):
    client = web_server.signed_in("ann@example.org")
    response = create(client)
    assert response.status_code == 303
    assert response.headers["location"] == "/watches/RCC%20bispecifics?saved=1"
    page = client.get(response.headers["location"])
    assert page.status_code == 200 and "Saved." in page.text
    with db.transaction(web_server.engine) as session:
        row = get_watch_row(session=session, name="RCC bispecifics")
    assert row is not None and row.source == "web" and row.owner == "ann@example.org"
    assert row.definition["conditions"] == ["renal cell carcinoma", "kidney cancer"]
    assert row.definition["nct_ids"] == ["NCT09000002"] and row.definition["digest"] == "weekly"
    assert row.definition["recipients"] == ["onc@example.org", "coordinator@example.org"]
    assert row.definition["send_empty"] is False and row.definition["feeds"] is True
    assert "ann@example.org" in page.text and "create" in page.text  # the history
    dashboard = client.get("/").text
    assert "RCC bispecifics" in dashboard and "kidney cancer" in dashboard and "coordinator@example.org" in dashboard
    assert "weekly on Monday at 07:00 (UTC)" in dashboard and "daily at 07:00 (UTC)" in dashboard
    assert "RCC file watch" in dashboard and "managed in trialwatch.toml" in dashboard


def test_errors_are_shown_next_to_their_field_and_nothing_is_stored(web_server):
    client = web_server.signed_in("ann@example.org")
    response = create(client, recipients="not-an-address", digest="hourly")
    assert response.status_code == 422
    assert re.search(r'id="recipients-error">[^<]*not a valid mail address', response.text)
    assert re.search(r'id="digest-error">[^<]*immediate', response.text)
    assert 'value="RCC bispecifics"' in response.text and "kidney cancer" in response.text  # what was typed is kept
    response = create(client, conditions="", terms="", nct_ids="")
    assert response.status_code == 422
    assert re.search(r'id="conditions-error">give at least one of conditions, terms or nct_ids', response.text)
    with db.transaction(web_server.engine) as session:
        assert get_watch_row(session=session, name="RCC bispecifics") is None


def test_a_name_in_use_is_an_error_on_the_name(web_server):
    client = web_server.signed_in("ann@example.org")
    response = create(client, name="RCC file watch")
    assert response.status_code == 409
    assert re.search(r'id="name-error">[^<]*exists already', response.text)


def test_preview_without_javascript_shows_the_registry_answer_and_stores_nothing(web_server, registry, own_study):
    record = own_study("study_NCT09000001_v1")
    record["protocolSection"]["identificationModule"]["briefTitle"] = "FX-101 <script>alert('x')</script> in RCC"
    registry.put(record)
    registry.put(own_study("study_NCT09000002_v1"))
    client = web_server.signed_in("ann@example.org")
    response = client.submit("/watches/new", {**FORM, "action": "preview"})
    assert response.status_code == 200
    assert "<strong>2</strong> studies match now" in response.text
    assert "NCT09000001" in response.text and "Recruiting" in response.text and "matched " in response.text
    assert "<script>alert" not in response.text
    assert "FX-101 &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; in RCC" in response.text
    assert 'value="RCC bispecifics"' in response.text
    with db.transaction(web_server.engine) as session:
        assert get_watch_row(session=session, name="RCC bispecifics") is None


def test_preview_fragment_for_the_script(web_server, registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    client = web_server.signed_in("ann@example.org")
    token = csrf_of(client.get("/watches/new").text)
    response = client.post(
        "/watches/new",
        data={**FORM, "action": "preview", "csrf_token": token},
        headers={"X-Requested-With": "preview"},
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section class="card preview" id="preview"')
    assert "<strong>1</strong> study matches now" in response.text


def test_preview_when_the_registry_fails_says_so(web_server, registry):
    from tests.servers import Fault

    registry.fail_next(Fault.status(500), Fault.status(500))
    client = web_server.signed_in("ann@example.org")
    response = client.submit("/watches/new", {**FORM, "action": "preview"})
    assert response.status_code == 200
    assert "The registry could not be asked" in response.text


def test_editing_and_deleting_a_watch(web_server):
    client = web_server.signed_in("ann@example.org")
    create(client)
    page = client.get("/watches/RCC%20bispecifics")
    response = client.post(
        "/watches/RCC%20bispecifics",
        data={**FORM, "terms": "bispecific\ntobemstomig", "action": "save", "csrf_token": csrf_of(page.text)},
    )
    assert response.status_code == 303
    page = client.get("/watches/RCC%20bispecifics")
    assert "tobemstomig" in page.text and "update" in page.text
    response = client.post("/watches/RCC%20bispecifics", data={"action": "delete", "csrf_token": csrf_of(page.text)})
    assert response.status_code == 303 and response.headers["location"] == "/?deleted=RCC%20bispecifics"
    dashboard = client.get(response.headers["location"]).text
    assert "was deleted" in dashboard and 'href="/watches/RCC%20bispecifics"' not in dashboard
    gone = client.get("/watches/RCC%20bispecifics")
    assert gone.status_code == 404 and "There is no watch named &#39;RCC bispecifics&#39;." in gone.text
    assert "Sign out" in gone.text  # the signed-in header
    nowhere = client.get("/no/such/page")
    assert nowhere.status_code == 404 and "There is no page here." in nowhere.text and "Sign out" in nowhere.text


def test_a_member_cannot_edit_another_members_watch_an_admin_can(web_server):
    ann = web_server.signed_in("ann@example.org")
    create(ann)
    bob = web_server.signed_in("bob@example.org")
    page = bob.get("/watches/RCC%20bispecifics")
    assert page.status_code == 200 and "Only ann@example.org or an admin may change this watch." in page.text
    assert 'name="conditions"' not in page.text
    response = bob.post("/watches/RCC%20bispecifics", data={**FORM, "action": "save", "csrf_token": csrf_of(page.text)})
    assert response.status_code == 403
    response = bob.post("/watches/RCC%20bispecifics", data={"action": "delete", "csrf_token": csrf_of(page.text)})
    assert response.status_code == 403
    admin = web_server.signed_in("root@example.org", role="admin")
    page = admin.get("/watches/RCC%20bispecifics")
    assert 'name="conditions"' in page.text
    response = admin.post(
        "/watches/RCC%20bispecifics",
        data={**FORM, "digest": "daily", "action": "save", "csrf_token": csrf_of(page.text)},
    )
    assert response.status_code == 303


def test_a_config_watch_is_read_only_in_the_browser(web_server):
    admin = web_server.signed_in("root@example.org", role="admin")
    page = admin.get("/watches/RCC%20file%20watch")
    assert page.status_code == 200
    assert "managed in <code>config/trialwatch.toml</code>" in page.text and 'name="conditions"' not in page.text
    response = admin.post(
        "/watches/RCC%20file%20watch", data={**FORM, "action": "save", "csrf_token": csrf_of(page.text)}
    )
    assert response.status_code == 403 and "managed in config/trialwatch.toml" in response.text


def test_watch_forms_need_the_csrf_token(web_server):
    client = web_server.signed_in("ann@example.org")
    assert client.post("/watches/new", data={**FORM, "action": "save"}).status_code == 403
    create(client)
    assert client.post("/watches/RCC%20bispecifics", data={"action": "delete"}).status_code == 403
    assert client.post("/account/tokens", data={"name": "x"}).status_code == 403
    assert client.post("/account/password", data={"current_password": PASSWORD}).status_code == 403


def test_a_users_words_are_escaped_on_every_page(web_server):
    client = web_server.signed_in("ann@example.org")
    evil = "<img src=x onerror=alert(1)>"
    assert create(client, name=f"RCC {evil}", terms=evil).status_code == 303
    for path in ("/", "/watches/" + "RCC%20%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert evil not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text


def test_account_password_change_and_tokens_shown_once(web_server):
    client = web_server.signed_in("ann@example.org")
    other_browser = web_server.client()
    other_browser.sign_in("ann@example.org")
    wrong = client.submit(
        "/account",
        {"current_password": "nope", "new_password": "x" * 12, "new_password_again": "x" * 12},
        action="/account/password",
    )
    assert wrong.status_code == 422 and "This is not your current password." in wrong.text
    short = client.submit(
        "/account",
        {"current_password": PASSWORD, "new_password": "short", "new_password_again": "short"},
        action="/account/password",
    )
    assert short.status_code == 422 and "at least 10 characters" in short.text
    done = client.submit(
        "/account",
        {
            "current_password": PASSWORD,
            "new_password": "a new long password",
            "new_password_again": "a new long password",
        },
        action="/account/password",
    )
    assert done.status_code == 303
    assert "Your password was changed." in client.get(done.headers["location"]).text  # this browser stays signed in
    assert other_browser.get("/").status_code == 303  # the other one is signed out
    created = client.submit("/account", {"name": "notebook"}, action="/account/tokens")
    token = re.search(r'id="new-token">([^<]+)<', created.text).group(1)
    assert web_server.api(token).get("/api/v1/watches").status_code == 200
    assert token not in client.get("/account").text
    token_id = re.search(r'name="token_id" value="(\d+)"', client.get("/account").text).group(1)
    revoked = client.submit("/account", {"token_id": token_id}, action="/account/tokens/revoke")
    assert revoked.status_code == 303
    assert web_server.api(token).get("/api/v1/watches").status_code == 401


def test_a_member_cannot_revoke_another_members_token(web_server):
    token = web_server.token("bob@example.org")
    client = web_server.signed_in("ann@example.org")
    client.submit("/account", {"token_id": "1"}, action="/account/tokens/revoke")
    assert web_server.api(token).get("/api/v1/watches").status_code == 200
