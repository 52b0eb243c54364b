"""The permission table covers every route, and `docs/permissions.md` renders it and what each
caller is shown of mail."""

import itertools
from pathlib import Path

from cryptography.fernet import Fernet
from pydantic import SecretStr

from mailsync_api.app import create_app
from mailsync_api.permissions import PERMISSIONS, ROLE_SCOPES, ROLES
from mailsync_api.permissions_doc import permissions_markdown
from mailsync_api.route_table import api_routes
from mailsync_api.settings import Settings

DOC = Path(__file__).resolve().parents[3] / "docs" / "permissions.md"


def app_routes() -> set[tuple[str, str]]:
    settings = Settings(secret_key=SecretStr(Fernet.generate_key().decode()))
    return set(api_routes(create_app(settings)))


def test_every_route_has_exactly_one_rule() -> None:
    routes = app_routes()

    assert routes - set(PERMISSIONS) == set(), "routes without a permission rule"
    assert set(PERMISSIONS) - routes == set(), "rules for routes that do not exist"


def test_roles_only_ever_add_scopes() -> None:
    for lower, higher in itertools.pairwise(ROLES):
        assert ROLE_SCOPES[lower] <= ROLE_SCOPES[higher]


def test_permissions_document_matches_the_table() -> None:
    expected = permissions_markdown()
    current = DOC.read_text() if DOC.exists() else ""
    if current != expected:
        DOC.write_text(expected)
    assert current == expected, f"{DOC} was stale and has been regenerated; review and keep it"


def test_every_json_request_body_in_the_openapi_document_has_an_example() -> None:
    settings = Settings(secret_key=SecretStr(Fernet.generate_key().decode()))
    document = create_app(settings).openapi()
    schemas = document["components"]["schemas"]
    missing = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            media = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if media is None or "example" in media:
                continue
            name = media["schema"]["$ref"].rsplit("/", 1)[-1]
            if not schemas[name].get("examples"):
                missing.append((method, path, name))

    assert missing == []


def test_the_document_states_what_a_non_owner_is_shown_per_visibility() -> None:
    document = permissions_markdown()
    open_thread = document.split("### An open thread", 1)[1].split("###", 1)[0]
    assert "| admin | no | nothing | metadata | subject | everything |" in open_thread
    assert "| viewer | yes | everything, Bcc | everything, Bcc |" in open_thread
    private = document.split("### A thread made private", 1)[1]
    assert "| member | no | nothing | nothing | nothing | nothing |" in private
