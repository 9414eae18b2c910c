"""deploy/: the systemd unit, the Dockerfile, the compose file and its config agree with each other and the code."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from watcher.config import load_config
from watcher.daemon.health import HealthServer, HealthStatus, Metrics, parse_listen

DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "systemd" / "trialwatch.service"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
COMPOSE = DEPLOY / "docker" / "compose.yml"
COMPOSE_CONFIG = DEPLOY / "docker" / "trialwatch.toml"
EXEC_START = "/opt/trialwatch/.venv/bin/trialwatch --config /etc/trialwatch/trialwatch.toml run"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, arguments = line.strip().partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def instruction(name: str) -> list[str]:
    return [arguments for found, arguments in dockerfile_instructions() if found == name]


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def healthcheck_code() -> str:
    """The Python one-liner of the Dockerfile HEALTHCHECK."""
    (healthcheck,) = instruction("HEALTHCHECK")
    command = json.loads(healthcheck.partition(" CMD ")[2])
    assert command[:2] == ["python", "-c"]
    return str(command[2])


# --- systemd ----------------------------------------------------------------------------------------


def test_unit_has_the_required_settings():
    service = unit()["Service"]
    expected = {
        "Type": "simple",
        "ExecStart": EXEC_START,
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "Restart": "on-failure",
        "User": "trialwatch",
        "Group": "trialwatch",
        "EnvironmentFile": "-/etc/trialwatch/env",
        "ProtectSystem": "strict",
        "ReadWritePaths": "/var/lib/trialwatch",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "StateDirectory": "trialwatch",
        "TimeoutStopSec": "30",
    }
    assert {key: service.get(key) for key in expected} == expected
    assert service.get("RestartSec")
    assert "MemoryDenyWriteExecute" not in service, "W^X memory breaks ctypes/cffi callbacks in Python"
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_unit_has_no_inline_comments():
    """systemd takes '#' only at the start of a line; anywhere else it becomes part of the value."""
    for number, line in enumerate(UNIT.read_text(encoding="utf-8").splitlines(), start=1):
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            assert "#" not in line.partition("=")[2], f"line {number}: {line}"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed here")
def test_systemd_analyze_verify_finds_nothing(tmp_path: Path):
    """Verify a copy whose ExecStart is /bin/true (the venv is not installed here); any warning fails."""
    copy = tmp_path / "trialwatch.service"
    copy.write_text(UNIT.read_text(encoding="utf-8").replace(EXEC_START.split()[0], "/bin/true"), encoding="utf-8")
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr.strip(), result.stdout.strip()) == (0, "", "")


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed here")
def test_systemd_analyze_on_the_real_unit_only_misses_the_venv():
    result = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in result.stderr.splitlines() if line.strip()]
    if Path(EXEC_START.split()[0]).exists():
        assert complaints == []
    else:
        assert complaints and all(EXEC_START.split()[0] in line for line in complaints), complaints


def test_install_guide_uses_the_paths_of_the_unit():
    guide = (DEPLOY / "systemd" / "INSTALL.md").read_text(encoding="utf-8")
    for needle in (
        "/opt/trialwatch/.venv",
        "/etc/trialwatch/trialwatch.toml",
        "/etc/trialwatch/env",
        "-m 600",
        "systemctl enable --now trialwatch",
        "journalctl -u trialwatch -f",
        "systemctl reload trialwatch",
        "useradd --system",
    ):
        assert needle in guide, needle


# --- Docker -----------------------------------------------------------------------------------------


def test_dockerfile_runs_as_a_non_root_user_with_a_healthcheck():
    froms = instruction("FROM")
    assert froms and all(line.startswith("python:3.11-slim") for line in froms)
    users = instruction("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "/healthz" in healthcheck_code()
    assert instruction("ENTRYPOINT") == ['["trialwatch"]']
    assert instruction("CMD")[-1] == '["--config", "/config/trialwatch.toml", "run"]'
    assert instruction("VOLUME") == ["/data"]


def test_dockerfile_copies_what_exists_in_the_build_context():
    """The build context is the repository root; everything the build copies must be there."""
    for arguments in instruction("COPY"):
        if arguments.startswith("--from"):
            continue
        *sources, _target = arguments.split()
        for source in sources:
            assert (REPO / source).exists(), source


def test_the_healthcheck_command_passes_on_200_and_fails_on_503():
    status = {"healthy": True}
    with HealthServer(
        listen="127.0.0.1:0", metrics=Metrics(), health=lambda: HealthStatus(healthy=status["healthy"])
    ) as server:
        code = healthcheck_code().replace(":8080/", f":{server.port}/")
        assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode == 0
        status["healthy"] = False
        assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode != 0


def test_compose_names_the_three_services():
    services = compose()["services"]
    assert set(services) == {"trialwatch", "postgres", "mailpit"}
    app = services["trialwatch"]
    assert (COMPOSE.parent / app["build"]["context"]).resolve() == REPO
    assert (REPO / app["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert app["environment"]["TRIALWATCH_DATABASE_URL"] == (
        "postgresql+psycopg://trialwatch:trialwatch@postgres:5432/trialwatch"
    )
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "mailpit" in app["depends_on"]
    assert "/healthz" in " ".join(app["healthcheck"]["test"]) or "/healthz" in healthcheck_code()
    assert services["postgres"]["image"] == "postgres:16"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    ports = " ".join(services["mailpit"]["ports"])
    assert ":8025:8025" in ports and ":1025:1025" in ports


def test_compose_mounts_the_config_the_image_reads():
    app = compose()["services"]["trialwatch"]
    mounts = {target: source for source, target, *_ in (volume.split(":") for volume in app["volumes"])}
    assert (COMPOSE.parent / mounts["/config/trialwatch.toml"]).resolve() == COMPOSE_CONFIG
    assert "/data" in mounts


def test_health_port_agrees_across_config_dockerfile_and_compose():
    raw = tomllib.loads(COMPOSE_CONFIG.read_text(encoding="utf-8"))
    host, port = parse_listen(raw["server"]["listen"])
    assert host == "0.0.0.0", "inside a container the health server must listen beyond loopback"
    assert f"127.0.0.1:{port}/healthz" in healthcheck_code()
    assert instruction("EXPOSE") == [str(port)]
    assert f"127.0.0.1:{port}:{port}" in compose()["services"]["trialwatch"]["ports"]


def test_compose_config_without_server_section_loads(tmp_path: Path):
    text = COMPOSE_CONFIG.read_text(encoding="utf-8")
    start = text.index("[server]")
    end = text.index("\n[", start + 1)
    trimmed = tmp_path / "trialwatch.toml"
    trimmed.write_text(text[:start] + text[end + 1 :], encoding="utf-8")
    config = load_config(trimmed)
    assert (config.email.smtp_host, config.email.smtp_port, config.email.security) == ("mailpit", 1025, "none")
    example = load_config(REPO / "config" / "trialwatch.toml")
    assert [w.name for w in config.watch] == [w.name for w in example.watch]


def test_compose_config_loads_with_its_server_section():
    config = load_config(COMPOSE_CONFIG)
    assert config.server.listen == "0.0.0.0:8080"
    assert [feed.name for feed in config.feed] == [
        feed.name for feed in load_config(REPO / "config" / "trialwatch.toml").feed
    ]


def test_docker_compose_accepts_the_file():
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode:
        pytest.skip("the docker compose plugin is not installed here")
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
