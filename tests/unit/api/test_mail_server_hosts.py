"""Which mail server addresses a user may point Mailsync at."""

import pytest

from mailsync_api.mail_servers import HostNotAllowedError, is_public_address, require_public_host


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
    ],
)
def test_private_loopback_link_local_and_reserved_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8"])
def test_global_addresses_are_public(address: str) -> None:
    assert is_public_address(address)


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "10.9.8.7"])
async def test_literal_private_hosts_are_refused(host: str) -> None:
    with pytest.raises(HostNotAllowedError):
        await require_public_host(host, 993)


async def test_a_public_literal_host_is_accepted() -> None:
    await require_public_host("8.8.8.8", 993)
