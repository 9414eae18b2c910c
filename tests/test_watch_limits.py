"""#25, W12/W17: limits on one watch (a name of at most 100 characters, at most 50 words a list,
1,000 NCT ids and 100 recipients), the same in the TOML file, the form and the API, each refused
with one clear line. Both databases."""

from __future__ import annotations

import pytest

from tests.web_support import FILE_WATCH

NEW = {"name": "RCC big", "conditions": ["renal cell carcinoma"], "recipients": ["onc@example.org"]}
IDS = [f"NCT{n:08d}" for n in range(1, 1002)]
PEOPLE = [f"p{n}@example.org" for n in range(101)]
WORDS = [f"word {n}" for n in range(51)]
OVER = {
    "nct_ids": (IDS, "1,001 NCT ids; at most 1,000"),
    "recipients": (PEOPLE, "101 recipients; at most 100"),
    "conditions": (WORDS, "51 words in the list; at most 50"),
    "terms": (WORDS, "51 words in the list; at most 50"),
    "exclude": (WORDS, "51 words in the list; at most 50"),
    "countries": (WORDS, "51 words in the list; at most 50"),
}


@pytest.mark.parametrize("field", OVER)
def test_the_api_refuses_a_list_over_its_limit(web_server, field):
    api = web_server.api(web_server.token("member@example.org"))
    values, message = OVER[field]
    response = api.post("/api/v1/watches", json={**NEW, field: values})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": field, "message": message}]
    at_limit = {**NEW, field: values[:-1]}
    assert api.post("/api/v1/watches", json=at_limit).status_code == 201, "the limit itself is allowed"
    assert api.put("/api/v1/watches/RCC%20big", json={**NEW, field: values}).status_code == 422
    assert len(api.get("/api/v1/watches/RCC%20big").json()[field]) == len(values) - 1


def test_a_word_longer_than_200_characters_is_refused(web_server):
    api = web_server.api(web_server.token("member@example.org"))
    response = api.post("/api/v1/watches", json={**NEW, "terms": ["x" * 201]})
    assert response.json()["errors"] == [{"field": "terms", "message": "a word of 201 characters; at most 200"}]


def test_the_form_refuses_them_next_to_their_field(web_server):
    client = web_server.signed_in("ann@example.org")
    form = {"name": "RCC big", "conditions": "\n".join(WORDS), "nct_ids": "\n".join(IDS),
            "recipients": ", ".join(PEOPLE), "digest": "daily", "action": "save"}  # fmt: skip
    response = client.submit("/watches/new", form)
    assert response.status_code == 422
    for field in ("conditions", "nct_ids", "recipients"):
        assert f'id="{field}-error">{OVER[field][1]}' in response.text
    listed = client.get("/").text
    assert "RCC big" not in listed and FILE_WATCH.name in listed


@pytest.mark.parametrize("field", ["nct_ids", "recipients", "terms"])
def test_the_config_file_refuses_them_in_one_line(cli_for, field):
    cli = cli_for()
    values, message = OVER[field]
    listed = ", ".join(f'"{value}"' for value in values)
    recipients = "" if field == "recipients" else 'recipients = ["a@example.org"]\n'
    cli.config.write_text(
        cli.config.read_text() + f'\n[[watch]]\nname = "RCC big"\nconditions = ["kidney cancer"]\n{recipients}'
        f"{field} = [{listed}]\n"
    )
    assert cli("check", code=2).strip() == f"error: {cli.config}: watch 'RCC big': key '{field}': {message}"
