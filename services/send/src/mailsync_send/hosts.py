"""Refusing mail servers on private networks unless the operator allows them.

A user-supplied host must not turn the send service into a probe of the deployment's own
network. The name is resolved when connecting, so a DNS answer that changed since the mailbox
was connected is caught too.
"""

import asyncio
import ipaddress
import socket


class UnsafeHostError(ValueError):
    """The server's address is private, loopback, link-local or otherwise not public."""


async def check_public_host(host: str, port: int, *, allow_private: bool) -> None:
    if allow_private:
        return
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise OSError(f"cannot resolve {host}: {error}") from error
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise UnsafeHostError(f"{host} resolves to a non-public address ({address})")
