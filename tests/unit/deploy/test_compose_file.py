"""docker-compose.yml is valid Compose and runs the same commands as `make run`."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailsync_devtools.stack import SERVICES

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def test_compose_file_matches_the_compose_specification() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE_FILE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_each_service_runs_the_local_command_with_a_health_check(
    compose: dict[str, Any], service: Any
) -> None:
    definition = compose["services"][service.name]
    assert definition["command"] == service.command
    assert definition["environment"]["MAILSYNC_HTTP_PORT"] == str(service.port)
    assert "healthcheck" in definition
    assert definition["depends_on"]["rabbitmq"]["condition"] == "service_healthy"


def test_secret_key_is_required_not_defaulted(compose: dict[str, Any]) -> None:
    secret = compose["services"]["api"]["environment"]["MAILSYNC_SECRET_KEY"]
    assert secret.startswith("${MAILSYNC_SECRET_KEY:?")


def test_ingest_can_run_as_several_replicas(compose: dict[str, Any]) -> None:
    ingest = compose["services"]["ingest"]
    assert ingest["deploy"]["replicas"] >= 2
    assert "ports" not in ingest, "published ports would stop replicas from sharing a host"


def test_demo_mail_server_is_behind_a_profile(compose: dict[str, Any]) -> None:
    assert compose["services"]["mailserver"]["profiles"] == ["demo"]
