"""The host guard: resolve once, refuse non-public addresses, connect to the checked one."""

import asyncio
import ipaddress
import ssl
from typing import Any

import pytest

from mailsync_shared.mail_servers.errors import HostRefusedError, UnreachableError
from mailsync_shared.mail_servers.hosts import HostGuard, open_stream, refusal


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.5",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address under test, not a bind
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "64:ff9b::c000:22b",
        "64:ff9b:1::a00:1",
        "2002:0a00:0001::1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is not None


def test_multicast_is_refused_although_python_calls_it_global() -> None:
    address = ipaddress.ip_address("224.0.0.1")
    assert refusal(address) == "a multicast address"


def test_nat64_is_refused_even_for_a_public_ipv4_inside() -> None:
    # 64:ff9b::192.0.43.10 reaches a public IPv4 address, but through the local NAT64 gateway.
    assert refusal(ipaddress.ip_address("64:ff9b::c000:2b0a")) == "a NAT64 address"


@pytest.mark.parametrize("address", ["192.0.43.10", "2001:500:88:200::10"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


async def test_a_name_with_any_private_answer_is_refused() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["192.0.43.10", "10.0.0.7"]

    with pytest.raises(HostRefusedError, match=r"10\.0\.0\.7"):
        await HostGuard(allow_private=False, resolver=resolver).check("mail.example.test", 993)


async def test_private_addresses_pass_when_the_operator_allows_them() -> None:
    checked = await HostGuard(allow_private=True).check("127.0.0.1", 10143)
    assert checked.addresses == ("127.0.0.1",)


async def test_an_unresolvable_name_is_unreachable() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(UnreachableError):
        await HostGuard(allow_private=False, resolver=resolver).check("nowhere.test", 993)


async def test_the_connection_goes_to_the_address_checked_not_a_new_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = iter([["192.0.43.10"], ["127.0.0.1"]])  # public when checked, private later

    async def rebinding_resolver(host: str, port: int) -> list[str]:
        return next(answers)

    connected: list[dict[str, Any]] = []

    async def fake_open_connection(host: str, port: int, **options: Any) -> Any:
        connected.append({"host": host, "port": port, **options})
        return asyncio.StreamReader(), None

    monkeypatch.setattr(asyncio, "open_connection", fake_open_connection)
    guard = HostGuard(allow_private=False, resolver=rebinding_resolver)

    checked = await guard.check("mail.example.test", 993)
    await open_stream(checked, tls=None, timeout=5)

    assert [call["host"] for call in connected] == ["192.0.43.10"]
    assert next(answers) == ["127.0.0.1"]  # the second answer was never asked for


async def test_tls_verifies_the_name_while_connecting_to_the_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connected: list[dict[str, Any]] = []

    async def fake_open_connection(host: str, port: int, **options: Any) -> Any:
        connected.append({"host": host, **options})
        return asyncio.StreamReader(), None

    async def resolver(host: str, port: int) -> list[str]:
        return ["192.0.43.10"]

    monkeypatch.setattr(asyncio, "open_connection", fake_open_connection)
    guard = HostGuard(allow_private=False, resolver=resolver)
    checked = await guard.check("imap.example.test", 993)
    await open_stream(checked, tls=ssl.create_default_context(), timeout=5)

    assert connected[0]["host"] == "192.0.43.10"
    assert connected[0]["server_hostname"] == "imap.example.test"
