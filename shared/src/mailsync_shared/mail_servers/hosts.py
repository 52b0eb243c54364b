"""The host guard: a user-given mail server name is resolved once, checked, and connected to
at exactly the checked address.

A user-supplied host must not turn a service into a probe of the deployment's own network.
Private, loopback, link-local, multicast, reserved, unspecified and shared (CGNAT) addresses
are refused, and so are addresses that carry one of those inside them (IPv4-mapped, 6to4,
Teredo) and NAT64 prefixes, which reach IPv4 space through a gateway. Checking a name and
then connecting by name again would let a DNS answer that changed in between reach a private
address, so the connection goes to the address that was checked; TLS still verifies the
certificate against the name. `allow_private` (MAILSYNC_ALLOW_PRIVATE_HOSTS) lifts the check
for local development and tests, never the resolve-once rule.
"""

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mailsync_shared.mail_servers.errors import (
    HostRefusedError,
    ServerTimeoutError,
    TlsError,
    UnreachableError,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")


def refusal(address: IPAddress) -> str | None:
    """Why the address may not be connected to, or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in network for network in _NAT64):
            return "a NAT64 address"
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None:
            return refusal(embedded)
    checks = (
        ("multicast", address.is_multicast),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("shared (CGNAT)", isinstance(address, ipaddress.IPv4Address) and address in _SHARED),
        ("not public", not address.is_global),
    )
    return next((f"a {label} address" for label, refused in checks if refused), None)


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class CheckedHost:
    """A server name with the addresses it resolved to when it was checked."""

    name: str
    port: int
    addresses: tuple[str, ...]


class HostGuard:
    def __init__(self, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
        self.allow_private = allow_private
        self._resolve = resolver

    async def check(self, host: str, port: int) -> CheckedHost:
        """Resolve once; refuse when any address is not public (unless allowed)."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await self._resolve(host, port)
            except (OSError, UnicodeError) as error:
                raise UnreachableError(f"cannot resolve {host}: {error}") from None
        if not addresses:
            raise UnreachableError(f"{host} has no address")
        if not self.allow_private:
            for text in addresses:
                reason = refusal(ipaddress.ip_address(text))
                if reason is not None:
                    raise HostRefusedError(
                        f"{host} resolves to a non-public address: {reason} ({text})"
                    )
        return CheckedHost(host, port, tuple(addresses))


async def open_stream(
    host: CheckedHost,
    *,
    tls: ssl.SSLContext | None,
    timeout: float,  # noqa: ASYNC109 - a connect timeout, applied per address
    limit: int = 2**16,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the first checked address that answers (TLS verifies the name)."""
    failure: Exception | None = None
    for address in host.addresses:
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.open_connection(
                    address,
                    host.port,
                    ssl=tls,
                    server_hostname=host.name if tls is not None else None,
                    limit=limit,
                )
        except ssl.SSLError as error:
            raise TlsError(f"{host.name}: {error}") from None
        except TimeoutError:
            failure = ServerTimeoutError(f"connecting to {host.name} ({address}) timed out")
        except OSError as error:
            failure = UnreachableError(f"{host.name} ({address}): {error.strerror or error}")
    assert failure is not None
    raise failure


async def open_socket(
    host: CheckedHost,
    *,
    timeout: float,  # noqa: ASYNC109 - a connect timeout, applied per address
) -> socket.socket:
    """A connected socket to the first checked address that answers, for clients that take
    one (the SMTP client); TLS on it must verify `host.name`."""
    loop = asyncio.get_running_loop()
    failure: Exception | None = None
    for address in host.addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, (address, host.port))
        except TimeoutError:
            sock.close()
            failure = ServerTimeoutError(f"connecting to {host.name} ({address}) timed out")
        except OSError as error:
            sock.close()
            failure = UnreachableError(f"{host.name} ({address}): {error.strerror or error}")
        except BaseException:
            sock.close()
            raise
        else:
            return sock
    assert failure is not None
    raise failure
