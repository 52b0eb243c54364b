"""Mail servers on private networks are refused unless the operator allows them."""

import pytest

from mailsync_send.hosts import UnsafeHostError, check_public_host


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "192.168.0.5", "169.254.169.254", "::1"])
async def test_private_addresses_are_refused(host: str) -> None:
    with pytest.raises(UnsafeHostError):
        await check_public_host(host, 587, allow_private=False)


async def test_private_addresses_pass_when_allowed() -> None:
    await check_public_host("127.0.0.1", 587, allow_private=True)


async def test_a_public_address_passes() -> None:
    await check_public_host("192.0.43.10", 587, allow_private=False)
