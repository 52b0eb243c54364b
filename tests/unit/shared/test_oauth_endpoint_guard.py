"""The token endpoint is checked by the host guard on every refresh, and the request goes to
the address that was checked."""

import httpx
import pytest

from mailsync_shared.mail_servers.hosts import HostGuard
from mailsync_shared.oauth import OAuthError, OAuthGrant, refresh_access_token

GRANT = OAuthGrant(
    token_endpoint="https://auth.example.test/oauth2/token",
    client_id="client",
    refresh_token="refresh",
)


def resolving_to(address: str) -> HostGuard:
    async def resolver(host: str, port: int) -> list[str]:
        return [address]

    return HostGuard(allow_private=False, resolver=resolver)


async def test_the_refresh_goes_to_the_checked_address_with_the_name_in_host_and_tls() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "token", "expires_in": 600})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        token = await refresh_access_token(GRANT, client=client, guard=resolving_to("192.0.43.10"))

    assert token.value == "token"
    assert seen[0].url.host == "192.0.43.10"
    assert seen[0].url.path == "/oauth2/token"
    assert seen[0].headers["host"] == "auth.example.test"
    assert seen[0].extensions["sni_hostname"] == "auth.example.test"


@pytest.mark.parametrize("address", ["10.0.0.5", "169.254.169.254", "64:ff9b::a00:5"])
async def test_an_endpoint_that_now_resolves_to_a_private_address_is_not_asked(
    address: str,
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise AssertionError("the endpoint was asked")

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(OAuthError, match="non-public"):
            await refresh_access_token(GRANT, client=client, guard=resolving_to(address))


async def test_a_plain_http_endpoint_is_refused_for_good() -> None:
    grant = OAuthGrant(
        token_endpoint="http://auth.example.test/token", client_id="c", refresh_token="r"
    )
    with pytest.raises(OAuthError) as caught:
        await refresh_access_token(grant, guard=resolving_to("192.0.43.10"))
    assert caught.value.permanent
