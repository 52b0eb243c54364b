"""Pure rules of principals, import parsing and export cells."""

import pytest

from mailsync_api.exports import _cell
from mailsync_api.imports import UnsupportedMediaError, parse_rows
from mailsync_api.permissions import ADMIN, EXPORT, OPERATOR, PUBLIC, READ, SEND, WRITE
from mailsync_api.principal import Principal
from mailsync_api.problems import ProblemError


def person(role: str) -> Principal:
    from mailsync_api.permissions import ROLE_SCOPES

    return Principal("ws", "key", "user", role, ROLE_SCOPES[role])  # type: ignore[arg-type,index]


def system(*scopes: str) -> Principal:
    return Principal("ws", "key", None, None, frozenset(scopes))  # type: ignore[arg-type]


def test_roles_pass_rules_at_or_below_them() -> None:
    assert person("viewer").allows(READ)
    assert not person("viewer").allows(WRITE)
    assert person("member").allows(SEND)
    assert not person("member").allows(EXPORT)
    assert person("admin").allows(ADMIN)
    assert person("owner").allows(ADMIN)


def test_system_keys_pass_only_with_the_scope() -> None:
    assert system("read").allows(READ)
    assert not system("read").allows(WRITE)
    assert system("export").allows(EXPORT)
    assert not system("write", "send").allows(ADMIN)
    assert system("admin").is_admin
    assert not system("write").is_admin


def test_public_routes_pass_everyone_and_operator_routes_no_workspace_key() -> None:
    assert system().allows(PUBLIC)
    assert not person("owner").allows(OPERATOR)


def test_csv_rows_split_list_cells_and_drop_empty_ones() -> None:
    body = b"\xef\xbb\xbfexternal_id,name,emails,company_id\nc-1, Ann ,a@x.test; b@x.test,\n"

    rows = parse_rows(body, "text/csv; charset=utf-8", 10)

    assert rows == [{"external_id": "c-1", "name": "Ann", "emails": ["a@x.test", "b@x.test"]}]


def test_cells_beyond_the_header_are_kept_so_the_row_is_refused() -> None:
    rows = parse_rows(b"name,emails\nAnn,a@x.test,surplus\n", "text/csv", 10)

    assert rows[0]["_extra_cells"] == ["surplus"]


@pytest.mark.parametrize(
    ("body", "media"),
    [(b'{"name": "x"}', "application/json"), (b"[1,", "application/json"), (b"\xff", "text/csv")],
)
def test_bodies_that_are_not_rows_are_a_problem_about_the_body(body: bytes, media: str) -> None:
    with pytest.raises(ProblemError) as raised:
        parse_rows(body, media, 10)

    assert raised.value.status == 422
    assert raised.value.extensions["invalid_params"][0]["name"] == "body"


def test_too_many_rows_and_other_media_are_refused() -> None:
    with pytest.raises(ProblemError):
        parse_rows(b"[{}, {}, {}]", "application/json", 2)
    with pytest.raises(UnsupportedMediaError):
        parse_rows(b"<x/>", "application/xml", 2)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=SUM(A1)", "'=SUM(A1)"),
        ("+1", "'+1"),
        ("@cmd", "'@cmd"),
        ("plain", "plain"),
        (-3.5, "-3.5"),
        (None, ""),
        (True, "true"),
        (["a", "=b"], "a; '=b"),
        ({"address": "a@x.test", "name": "Ann"}, "Ann <a@x.test>"),
    ],
)
def test_export_cells_never_start_a_spreadsheet_formula(value: object, cell: str) -> None:
    assert _cell(value) == cell
