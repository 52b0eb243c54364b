"""The console's sign-in and its guards, over HTTP against the api on the real database (the
pages themselves are driven in a browser by tests/e2e/test_console.py)."""

from urllib.parse import urlencode

import httpx
import pytest

from mailsync_api.console.session import COOKIE
from tests.integration.conftest_api import (  # noqa: F401  (fixtures register by name)
    ApiWorkspace,
    api_db_fixture,
    api_fixture,
    bearer,
    invite,
    other_ws_fixture,
    ready_account,
    system_key,
    ws_fixture,
)
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

HTMX = {"HX-Request": "true"}


async def signed_in(api: httpx.AsyncClient, token: str) -> dict[str, str]:
    """The console's cookie after a sign-in with `token`, as a header (the shared client keeps
    no cookies between tests)."""
    response = await api.post("/console/sign-in", content=f"token={token}")
    api.cookies.clear()
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/mailboxes"
    set_cookie = response.headers["set-cookie"]
    assert "HttpOnly" in set_cookie
    assert "SameSite=strict" in set_cookie
    assert "Path=/console" in set_cookie
    return {"Cookie": f"{COOKIE}={token}"}


async def test_pages_need_a_sign_in_with_a_personal_token(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    page = await api.get("/console/mailboxes")
    assert page.status_code == 303
    assert page.headers["location"] == "/console"
    assert (await api.get("/console")).status_code == 200

    wrong = await api.post("/console/sign-in", content="token=msk_not-a-token")
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    system = await system_key(api, ws, ["read"])
    refused = await api.post("/console/sign-in", content=f"token={system}")
    assert refused.status_code == 401
    assert "personal token" in refused.text

    cookies = await signed_in(api, ws.api_key)
    page = await api.get("/console/mailboxes", headers=cookies)
    assert page.status_code == 200
    assert "Connect a mailbox" in page.text


async def test_a_role_below_the_rule_gets_a_page_saying_so(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    viewer = await invite(api, ws, "viewer")
    cookies = await signed_in(api, viewer["token"])

    assert (await api.get("/console/contacts", headers=cookies)).status_code == 200
    connect = await api.get("/console/mailboxes/new", headers=cookies)
    assert connect.status_code == 403
    assert "needs the role member" in connect.text
    preview = await api.post("/console/capture-rules/preview", headers=cookies | HTMX)
    assert preview.status_code == 403


async def test_changes_from_the_cookie_need_the_consoles_own_request_header(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    cookies = await signed_in(api, ws.api_key)
    form = "policy=none"

    forged = await api.post("/console/capture-rules", headers=cookies, content=form)
    assert forged.status_code == 403
    rules = await api.get("/v1/capture-rules", headers=ws.auth)
    assert rules.json()["policy"] == "sent"

    preview = await api.post("/console/capture-rules/preview", headers=cookies | HTMX, content=form)
    assert preview.status_code == 200
    assert "Would become contacts" in preview.text


async def test_another_workspaces_records_are_not_found_through_the_console(
    api: httpx.AsyncClient, ws: ApiWorkspace, other_ws: ApiWorkspace
) -> None:
    contact = await api.post(
        "/v1/contacts", json={"name": "Sam Secret", "emails": ["sam@secret.test"]}, headers=ws.auth
    )
    cookies = await signed_in(api, other_ws.api_key)

    page = await api.get(f"/console/contacts/{contact.json()['id']}", headers=cookies)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "contact not found" in page.text
    assert "Sam Secret" not in page.text
    listed = await api.get("/console/contacts", headers=cookies)
    assert "Sam Secret" not in listed.text


async def test_htmx_and_the_stylesheet_are_served_by_the_api(api: httpx.AsyncClient) -> None:
    script = await api.get("/console/static/htmx.min.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "htmx" in script.text[:200]
    assert (await api.get("/console/static/console.css")).status_code == 200
    assert (await api.get("/console/static/..%2Fpages.py")).status_code == 404
    assert (await api.get("/console/static/pages.py")).status_code == 404
    page = await api.get("/console")
    assert "https://" not in page.text, "nothing is loaded from another site"
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy


async def test_a_refused_login_is_shown_in_words_and_nothing_is_saved(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra
) -> None:
    account = await ready_account(infra, "acme.test", "wrongpass")
    cookies = await signed_in(api, ws.api_key)
    form = urlencode(
        {
            "address": account.address,
            "imap_password": "not-the-password",
            "imap_host": infra.imap_host,
            "imap_port": infra.imap_port,
            "imap_security": "none",
            "smtp_host": infra.smtp_host,
            "smtp_port": infra.smtp_port,
            "smtp_security": "none",
            "backfill_days": "",
            "visibility": "private",
        }
    )

    review = await api.post("/console/mailboxes/review", headers=cookies | HTMX, content=form)
    assert review.status_code == 200
    assert "older mail is not imported" in review.text
    assert "not-the-password" not in review.text
    connect = await api.post("/console/mailboxes", headers=cookies | HTMX, content=form)
    assert connect.status_code in (400, 422), connect.text
    assert "That did not work" in connect.text
    assert "imap" in connect.text.lower()
    assert "not-the-password" not in connect.text
    listed = await api.get("/v1/mailboxes", headers=ws.auth)
    assert account.address not in listed.text
