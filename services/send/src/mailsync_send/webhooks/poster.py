"""One signed webhook request, to a receiver the host guard allows, within a deadline.

The receiver's name is resolved once and checked (no private addresses unless the operator
allows them); the request goes to the checked address with the name in `Host` and in TLS
(SNI and certificate check). Redirects are not followed: a redirect could lead past the guard.
The response body is never read.
"""

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from mailsync_shared.mail_servers.errors import MailServerError
from mailsync_shared.mail_servers.hosts import HostGuard
from mailsync_shared.webhooks import signing

USER_AGENT = "Mailsync-Webhooks/1"
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class PostOutcome:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookPoster:
    def __init__(self, guard: HostGuard, *, timeout: float) -> None:
        self._guard = guard
        self._timeout = timeout
        self._client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
        )

    async def post(
        self, url: str, message_id: str, body: bytes, secrets: Sequence[str]
    ) -> PostOutcome:
        started = time.monotonic()
        status, error = await self._post(httpx.URL(url), message_id, body, secrets)
        return PostOutcome(status, error, int((time.monotonic() - started) * 1000))

    async def _post(
        self, url: httpx.URL, message_id: str, body: bytes, secrets: Sequence[str]
    ) -> tuple[int | None, str | None]:
        try:
            async with asyncio.timeout(self._timeout):
                checked = await self._guard.check(url.host, url.port or DEFAULT_PORTS[url.scheme])
                headers = {
                    **signing.headers(secrets, message_id, int(time.time()), body),
                    "content-type": "application/json",
                    "user-agent": USER_AGENT,
                    "host": url.netloc.decode("ascii"),
                }
                failure = "no address"
                for address in checked.addresses:
                    try:
                        async with self._client.stream(
                            "POST",
                            url.copy_with(host=address),
                            content=body,
                            headers=headers,
                            extensions={"sni_hostname": url.host},
                        ) as response:
                            return response.status_code, None
                    except httpx.ConnectError as error:
                        failure = f"cannot connect to {url.host} ({address}): {error}"
                return None, failure
        except TimeoutError:
            return None, f"no answer within {self._timeout:g} s"
        except MailServerError as error:
            return None, str(error)
        except httpx.HTTPError as error:
            return None, f"{type(error).__name__}: {error}"

    async def close(self) -> None:
        await self._client.aclose()
