"""Which mail server addresses a user may point Mailsync at, as the api answers them."""

import ipaddress

import pytest

from mailsync_api.mail_servers import check_login
from mailsync_api.problems import ProblemError
from mailsync_shared.mail_servers.accounts import Login
from mailsync_shared.mail_servers.hosts import HostGuard, refusal


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104  (an address to refuse, not one to bind)
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
        "64:ff9b::808:808",
    ],
)
def test_private_loopback_link_local_multicast_and_nat64_addresses_are_refused(
    address: str,
) -> None:
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8"])
def test_global_addresses_are_public(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "10.9.8.7", "224.0.0.1"])
async def test_literal_private_hosts_are_an_invalid_host_field(host: str) -> None:
    with pytest.raises(ProblemError) as caught:
        await check_login(
            "smtp",
            host,
            587,
            "starttls",
            Login("owner@acme.test", password="secret"),
            guard=HostGuard(allow_private=False),
            timeout=5,
        )

    assert caught.value.status == 422
    assert caught.value.extensions["invalid_params"][0]["name"] == "body.smtp.host"
    assert "non-public" in caught.value.detail
