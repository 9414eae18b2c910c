"""Issue #25, W8: malformed input answers 4xx, never 500. The inputs that gave a traceback, each
checked over HTTP; then a property test throws arbitrary strings (and the known nasty ones) at
every path and query parameter of every route the app has, signed in and with a token, on both
databases, and no answer may be a 5xx."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from tests.web_support import WebSite, csrf_of


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


CURSORS = [
    b64('["2026-11-01T00:00:00+00:00", Infinity]'),
    b64('["2026-11-01T00:00:00+00:00", 1e400]'),
    b64('["2026-11-01T00:00:00+00:00", 123456789012345678901234567890]'),
    b64('["9999-12-31T23:59:59-12:00", 1]'),
    b64('["2026-11-01T00:00:00+00:00", true]'),
    b64("[" * 5000 + "]" * 5000),
    b64("20261101T000000.000000|123456789012345678901234567890"),
    b64("99991231T235959.999999|1"),
    b64("20261101T000000.000000|²"),
]
NASTY = [
    "²", "٣", "１２", "Infinity", "-Infinity", "NaN", "1e400", "9" * 30, "[" * 5000, "9999-12-31", "0001-01-01",
    "2026-02-30", "-1", "0", "", " ", "\x00", "%", "%00", "../", "\n", "9999-12-31T23:59:59-23:59", *CURSORS,
]  # fmt: skip
QUERY_NAMES = (
    "watch", "kind", "nct_id", "since", "until", "q", "cursor", "held_back", "limit", "from", "to", "next",
    "done", "deleted", "saved", "token", "ignore",
)  # fmt: skip
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
VALUES = st.one_of(st.sampled_from(NASTY), TEXT)


def get_routes(site: WebSite) -> list[Route]:
    """Every GET route of the app (the static files are Starlette's)."""
    return [route for route in site.app.routes if isinstance(route, Route) and "GET" in (route.methods or ())]


def fill(route: Route, values: dict[str, str]) -> str:
    path = route.path
    for name, convertor in route.param_convertors.items():
        typed = "{" + name + (":path" if type(convertor).__name__ == "PathConvertor" else "") + "}"
        path = path.replace(typed, quote(values.get(name, "x") or "x", safe="/" if ":path" in typed else ""))
    return path


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/changes?until=9999-12-31", 400),
        ("/changes?since=0001-01-01", 400),
        ("/changes?cursor=" + CURSORS[6], 400),
        ("/articles?cursor=" + CURSORS[7], 400),
        ("/studies/NCT09000001/diff?from=²", 400),
        ("/studies/NCT09000001/diff?to=" + "9" * 30, 400),
        ("/api/v1/changes?limit=²", 422),
        ("/api/v1/changes?until=9999-12-31T23:59:59-23:59", 422),
        *[("/api/v1/changes?cursor=" + cursor, 422) for cursor in CURSORS],
    ],
)
def test_the_inputs_that_gave_a_traceback_are_4xx(web_server: WebSite, path: str, status: int):
    client = web_server.signed_in("admin@example.org", role="admin")
    client.session.headers["Authorization"] = f"Bearer {web_server.token('api@example.org')}"
    answer = client.get(path)
    assert answer.status_code == status, answer.text[:500]


def test_a_token_id_that_is_not_ascii_digits_is_400(web_server: WebSite):
    client = web_server.signed_in("ann@example.org")
    token = csrf_of(client.get("/account").text)
    for token_id in ("²", "9" * 30, "-1"):
        answer = client.post("/account/tokens/revoke", data={"csrf_token": token, "token_id": token_id})
        assert answer.status_code == 400, answer.text[:300]
    nested = client.session.post(
        f"{web_server.url}/api/v1/watches", data="[" * 5000, timeout=30,
        headers={"Authorization": f"Bearer {web_server.token('api@example.org')}"},
    )  # fmt: skip
    assert nested.status_code == 422 and nested.json()["errors"][0]["field"] == "body"


def _client(site: WebSite) -> Any:
    client = site.signed_in("admin@example.org", role="admin")
    client.session.headers["Authorization"] = f"Bearer {site.token('api@example.org')}"
    return client


SWEPT = ["²", "9" * 30, "9999-12-31", CURSORS[0], CURSORS[6]]
PARSED = ("since", "until", "cursor", "limit", "from", "to")  # the names read as numbers, days or cursors


def test_every_parameter_of_every_route_takes_the_known_nasty_values_without_a_5xx(web_server: WebSite):
    """Each path parameter, all query parameters at once, and each parsed one alone."""
    client, routes = _client(web_server), get_routes(web_server)
    assert len(routes) >= 20, "the app's routes were not found"
    failures = []
    for route in routes:
        for value in SWEPT:
            asked = [(fill(route, dict.fromkeys(route.param_convertors, value)), {})]
            asked += [(fill(route, {}), dict.fromkeys(QUERY_NAMES, value))]
            asked += [(fill(route, {}), {name: value}) for name in PARSED]
            for path, query in asked:
                answer = client.get(path, params=query)
                if answer.status_code >= 500:
                    failures.append(f"{path} {query!r}: {answer.status_code}")
    assert not failures, "\n".join(failures[:20])


def test_no_parameter_of_any_route_gives_a_5xx(web_server: WebSite):
    client, routes = _client(web_server), get_routes(web_server)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.sampled_from(routes), st.dictionaries(st.sampled_from(QUERY_NAMES), VALUES, max_size=4), st.data())
    def check(route: Route, query: dict[str, str], data: Any) -> None:
        values = {name: data.draw(VALUES, label=name) for name in route.param_convertors}
        path = fill(route, values)
        answer = client.get(path, params=query)
        assert answer.status_code < 500, f"{path} {query!r}: {answer.status_code} {answer.text[:300]}"

    check()
