"""config.py: the shipped config is valid; every mistake is one line naming file, place and key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from watcher.config import load_config, parse_interval
from watcher.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent

VALID = """
[database]
url = "sqlite:///var/tw.db"

[clinicaltrials]
poll_interval = "30m"

[email]
outbox_dir = "out"

[[watch]]
name = "RCC CAR-T"
conditions = ["renal cell carcinoma"]
terms = ["CAR-T"]
recipients = ["onc@example.org"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trialwatch.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = info.value.one_line()
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


def test_shipped_config_is_valid_with_three_real_watches():
    config = load_config(REPO / "config" / "trialwatch.toml")
    names = [watch.name for watch in config.watch]
    assert names == ["RCC bispecifics", "RCC CAR-T and cell therapy", "RCC checkpoint-inhibitor resistance"]
    bispecifics = config.watch_named("RCC bispecifics")
    assert "NCT03530397" in bispecifics.nct_ids
    assert {"MEDI5752", "volrustomig", "bispecific"} <= set(bispecifics.terms)
    assert config.email.smtp_host == ""
    assert config.clinicaltrials.poll_interval == timedelta(hours=6)


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    config = load_config(write(tmp_path, VALID))
    assert config.database.url == f"sqlite:///{tmp_path}/var/tw.db"
    assert config.email.outbox_dir == tmp_path / "out"
    assert config.clinicaltrials.poll_interval == timedelta(minutes=30)


def test_database_url_from_environment_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIALWATCH_DATABASE_URL", "postgresql+psycopg://u@db.example.org/tw")
    assert load_config(write(tmp_path, VALID)).database.url == "postgresql+psycopg://u@db.example.org/tw"


def test_config_path_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIALWATCH_CONFIG", str(write(tmp_path, VALID)))
    assert load_config().watch[0].name == "RCC CAR-T"


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_toml_syntax_error_names_line(tmp_path):
    message = error_of(tmp_path, VALID + "\n[[watch]\nname = 'x'\n")
    assert "TOML syntax error" in message and "line" in message


def test_unknown_key_in_watch_names_watch_and_key(tmp_path):
    message = error_of(tmp_path, VALID.replace('terms = ["CAR-T"]', 'keywrds = ["CAR-T"]'))
    assert message.endswith("watch 'RCC CAR-T': unknown key 'keywrds'")


def test_unknown_section_key(tmp_path):
    assert error_of(tmp_path, VALID.replace("[email]", "[email]\npassword = 'x'")).endswith(
        "[email]: unknown key 'password'"
    )


def test_bad_interval(tmp_path):
    message = error_of(tmp_path, VALID.replace('"30m"', '"soon"'))
    assert "[clinicaltrials]: key 'poll_interval': bad interval 'soon'" in message


def test_invalid_recipient(tmp_path):
    message = error_of(tmp_path, VALID.replace("onc@example.org", "onc-at-example"))
    assert "watch 'RCC CAR-T': key 'recipients.0'" in message and "not a valid mail address" in message


def test_bad_nct_id_and_bad_digest(tmp_path):
    bad_id = VALID.replace('terms = ["CAR-T"]', 'terms = ["CAR-T"]\nnct_ids = ["NCT123"]')
    assert "not an NCT id: NCT123" in error_of(tmp_path, bad_id)
    bad_digest = VALID.replace('terms = ["CAR-T"]', 'terms = ["CAR-T"]\ndigest = "hourly"')
    assert "key 'digest'" in error_of(tmp_path, bad_digest)


def test_watch_needs_something_to_watch_and_unique_names(tmp_path):
    empty = VALID.replace('conditions = ["renal cell carcinoma"]\nterms = ["CAR-T"]\n', "")
    assert "give at least one of conditions, terms or nct_ids" in error_of(tmp_path, empty)
    twice = VALID + VALID[VALID.index("[[watch]]") :]
    assert "two watches are named 'RCC CAR-T'" in error_of(tmp_path, twice)


def test_bad_timezone_and_security(tmp_path):
    assert "unknown timezone 'Mars/Olympus'" in error_of(tmp_path, VALID + '\n[digest]\ntimezone = "Mars/Olympus"\n')
    assert "key 'security'" in error_of(tmp_path, VALID.replace("[email]", '[email]\nsecurity = "tls"'))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("1m", timedelta(minutes=1)),
        ("6h", timedelta(hours=6)),
        ("1w", timedelta(weeks=1)),
    ],
)
def test_parse_interval(text, expected):
    assert parse_interval(text) == expected


@pytest.mark.parametrize("text", ["30s", "6", "h", "-1h", "1.5h"])
def test_parse_interval_refuses(text):
    with pytest.raises(ValueError):
        parse_interval(text)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://tw:s3cret@127.0.0.1:54x2/tw", "[database] url: not a database URL (ValueError): "
         "postgresql+psycopg://tw:***@127.0.0.1:54x2/tw"),
        ("mysql://tw:s3cret@db/tw", "[database] url: 'mysql' databases are not supported"),
    ],
)  # fmt: skip
def test_unusable_database_url_is_one_line_without_the_password(tmp_path, url, expected):
    message = error_of(tmp_path, VALID.replace('url = "sqlite:///var/tw.db"', f'url = "{url}"'))
    assert expected in message and "s3cret" not in message


def test_unusable_database_url_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIALWATCH_DATABASE_URL", "postgresql+psycopg://tw:s3cret@db:port/tw")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, VALID))
    assert info.value.one_line().startswith("TRIALWATCH_DATABASE_URL: not a database URL") and "s3cret" not in str(
        info.value
    )


def test_feed_errors_name_the_feed(tmp_path):
    feed = '\n[[feed]]\nname = "European Urology"\nurl = "ftp://example.org/feed"\n'
    assert error_of(tmp_path, VALID + feed).endswith("feed 'European Urology': key 'url': not an http(s) URL: "
                                                     "'ftp://example.org/feed'")  # fmt: skip
    unknown = '\n[[feed]]\nname = "European Urology"\nurl = "https://example.org/feed"\npol_interval = "3h"\n'
    assert error_of(tmp_path, VALID + unknown).endswith("feed 'European Urology': unknown key 'pol_interval'")
    assert error_of(tmp_path, VALID + "\n[sever]\nlisten = '1'\n").endswith("unknown section")


def test_public_url_defaults_to_the_listen_address_and_must_be_http():
    from watcher.config import ServerConfig

    assert ServerConfig(listen="127.0.0.1:8080").public_url == "http://127.0.0.1:8080"
    assert ServerConfig().public_url is None
    secure = ServerConfig(listen="0.0.0.0:8080", public_url="https://trials.example.org/")
    assert secure.public_url == "https://trials.example.org" and secure.secure_cookies
    assert not ServerConfig(listen="127.0.0.1:8080").secure_cookies
    with pytest.raises(ValueError, match="must start with http:// or https://"):
        ServerConfig(public_url="ftp://trials.example.org")
