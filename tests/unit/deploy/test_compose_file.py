"""docker-compose.yml is valid Compose and runs the same commands as `make run`."""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailsync_devtools.stack import SERVICES
from tests.support.deploy_tools import configcheck

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


def compose_environment() -> dict[str, str]:
    """What the README's .env recipe makes, and nothing else from this machine."""
    required = set(re.findall(r"\$\{([A-Z_]+):\?", COMPOSE_FILE.read_text()))
    return {"PATH": "/usr/bin:/bin", **{name: f"{name.lower()}-value" for name in required}}


@pytest.fixture(scope="module")
def compose_config() -> dict[str, Any]:
    """`docker compose config`: the file as compose loads it (compose-go, the loader of
    `docker compose`), validated, interpolated and normalized."""
    result = configcheck("compose", str(COMPOSE_FILE), env=compose_environment())
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_compose_loads_each_service_with_the_local_command(
    compose_config: dict[str, Any], service: Any
) -> None:
    definition = compose_config["services"][service.name]
    assert definition["command"] == service.command
    assert definition["environment"]["MAILSYNC_HTTP_PORT"] == str(service.port)
    assert definition["environment"]["MAILSYNC_RABBITMQ_URL"] == (
        "amqp://rabbitmq_user-value:rabbitmq_password-value@rabbitmq:5672/"
    )


def test_compose_publishes_only_the_api(compose_config: dict[str, Any]) -> None:
    published = {
        name: [(port["published"], port.get("host_ip")) for port in definition["ports"]]
        for name, definition in compose_config["services"].items()
        if definition.get("ports")
    }
    assert published == {"api": [("8000", None)]}


def test_compose_publishes_the_demo_mail_server_on_loopback_only() -> None:
    result = configcheck(
        "compose", "--profile", "demo", str(COMPOSE_FILE), env=compose_environment()
    )
    assert result.returncode == 0, result.stderr
    ports = yaml.safe_load(result.stdout)["services"]["mailserver"]["ports"]
    assert {port["host_ip"] for port in ports} == {"127.0.0.1"}


@pytest.mark.parametrize(
    "missing", ["RABBITMQ_PASSWORD", "MONGODB_USER", "MAILSYNC_OPERATOR_TOKEN"]
)
def test_compose_refuses_to_load_without_a_required_value(missing: str) -> None:
    env = compose_environment()
    del env[missing]
    result = configcheck("compose", str(COMPOSE_FILE), env=env)
    assert result.returncode != 0
    assert f"required variable {missing} is missing a value" in result.stderr


def test_the_image_runs_python_from_the_services_environment() -> None:
    """Compose and Kubernetes run `python -m mailsync_<service>`: the image's PATH must find
    the Python of the service's virtual environment, not the bare system one."""
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert 'ENV PATH="/app/.venv/bin:$PATH"' in dockerfile


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
    secret = compose["services"]["api"]["environment"]["MAILSYNC_SECRET_KEYS"]
    assert secret.startswith("${MAILSYNC_SECRET_KEYS:?")


def test_ingest_can_run_as_several_replicas(compose: dict[str, Any]) -> None:
    ingest = compose["services"]["ingest"]
    assert ingest["deploy"]["replicas"] >= 2
    assert "ports" not in ingest, "published ports would stop replicas from sharing a host"


def test_demo_mail_server_is_behind_a_profile(compose: dict[str, Any]) -> None:
    assert compose["services"]["mailserver"]["profiles"] == ["demo"]


def test_only_the_api_is_published_beyond_the_host(compose: dict[str, Any]) -> None:
    published = {
        name: definition["ports"]
        for name, definition in compose["services"].items()
        if "ports" in definition and "demo" not in definition.get("profiles", [])
    }
    assert published == {"api": ["8000:8000"]}
    demo_ports = compose["services"]["mailserver"]["ports"]
    assert all(port.startswith("127.0.0.1:") for port in demo_ports)


def _required(value: str, variable: str) -> bool:
    return "${" + variable + ":?" in value


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_store_credentials_are_required_and_never_guest(
    compose: dict[str, Any], service: Any
) -> None:
    environment = compose["services"][service.name]["environment"]
    rabbitmq_url = environment["MAILSYNC_RABBITMQ_URL"]
    mongodb_url = environment["MAILSYNC_MONGODB_URL"]
    assert "guest" not in rabbitmq_url
    assert _required(rabbitmq_url, "RABBITMQ_USER")
    assert _required(rabbitmq_url, "RABBITMQ_PASSWORD")
    assert _required(mongodb_url, "MONGODB_USER")
    assert _required(mongodb_url, "MONGODB_PASSWORD")


def test_the_stores_are_created_with_the_same_credentials(compose: dict[str, Any]) -> None:
    rabbitmq = compose["services"]["rabbitmq"]["environment"]
    mongodb = compose["services"]["mongodb"]["environment"]
    assert _required(rabbitmq["RABBITMQ_DEFAULT_USER"], "RABBITMQ_USER")
    assert _required(rabbitmq["RABBITMQ_DEFAULT_PASS"], "RABBITMQ_PASSWORD")
    assert _required(mongodb["MONGO_INITDB_ROOT_USERNAME"], "MONGODB_USER")
    assert _required(mongodb["MONGO_INITDB_ROOT_PASSWORD"], "MONGODB_PASSWORD")


def test_operator_token_is_required(compose: dict[str, Any]) -> None:
    token = compose["services"]["api"]["environment"]["MAILSYNC_OPERATOR_TOKEN"]
    assert _required(token, "MAILSYNC_OPERATOR_TOKEN")


def test_the_readme_makes_every_variable_the_compose_file_requires() -> None:
    required = set(re.findall(r"\$\{([A-Z_]+):\?", COMPOSE_FILE.read_text()))
    readme = (REPO / "README.md").read_text()
    recipe = readme.split("cat > .env <<EOF\n", 1)[1].split("\nEOF\n", 1)[0]
    made = {line.split("=", 1)[0] for line in recipe.splitlines()}
    assert required == made
