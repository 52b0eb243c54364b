"""A real HTTP receiver of webhooks on loopback: verifies every request with the reference
Standard Webhooks library, records it, and answers as told (accept, fail, hang, or be gone)."""

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Literal

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.ports import free_port

Mode = Literal["accept", "fail", "hang"]


@dataclass(frozen=True)
class Received:
    webhook_id: str
    event: dict[str, object]
    verified: bool
    answered: int | None


@dataclass
class WebhookReceiver:
    """Listens on a fixed loopback port; `stop()` closes it (connections refused) and `start()`
    opens it again on the same port."""

    secrets: list[str] = field(default_factory=list)
    mode: Mode = "accept"
    port: int = 0
    received: list[Received] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> None:
        if self.port == 0:
            self.port = free_port()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in self._handlers:
                task.cancel()
            await self._server.wait_closed()
            self._server = None

    def delivered_ids(self) -> list[str]:
        """Ids of the events this receiver accepted, in the order it accepted them."""
        return [item.webhook_id for item in self.received if item.answered == 200]

    def _verified(self, body: bytes, headers: dict[str, str]) -> bool:
        for secret in self.secrets:
            with contextlib.suppress(WebhookVerificationError):
                Webhook(secret).verify(body, headers)
                return True
        return False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            request_line = await reader.readline()
            if not request_line:
                return
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            mode = self.mode
            if mode == "hang":
                await asyncio.sleep(3600)
            status = 200 if mode == "accept" else 500
            verified = self._verified(body, headers)
            if not verified:
                status = 401
            self.received.append(
                Received(headers.get("webhook-id", ""), json.loads(body), verified, status)
            )
            writer.write(
                f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
