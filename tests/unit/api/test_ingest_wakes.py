"""The api's wake of ingest is a hint: a failed publish never fails the request."""

import asyncio
import logging
from typing import Any

import pytest

from mailsync_api.ingest_wakes import wake_ingest
from mailsync_shared.contracts.envelope import Event
from mailsync_shared.contracts.mailboxes import MailboxClaimable
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.storage.documents import MailboxDocument, ServerAccount

ACCOUNT = ServerAccount(host="imap.acme.test", port=993, username="olga@acme.test")


class Publisher:
    """Records what it publishes, or fails as told."""

    def __init__(self, failure: BaseException | None = None, delay: float = 0.0) -> None:
        self.published: list[Event] = []
        self._failure = failure
        self._delay = delay

    async def publish(self, event: Event, **_: Any) -> None:
        await asyncio.sleep(self._delay)
        if self._failure is not None:
            raise self._failure
        self.published.append(event)


def mailbox() -> MailboxDocument:
    return MailboxDocument(workspace_id="ws1", address="olga@acme.test", imap=ACCOUNT, smtp=ACCOUNT)


def as_publisher(fake: Publisher) -> EventPublisher:
    published: Any = fake
    return published  # type: ignore[no-any-return]


async def test_the_wake_names_the_mailbox_and_its_workspace() -> None:
    fake = Publisher()
    connected = mailbox()
    await wake_ingest(as_publisher(fake), connected, "connected")
    [event] = fake.published
    assert isinstance(event, MailboxClaimable)
    assert (event.workspaceid, event.data.mailbox_id) == ("ws1", connected.id)
    assert event.data.because == "connected"


async def test_a_failed_publish_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    fake = Publisher(failure=ConnectionError("broker gone"))
    with caplog.at_level(logging.WARNING, logger="mailsync_api.ingest_wakes"):
        await wake_ingest(as_publisher(fake), mailbox(), "resync")
    assert "ingest not woken" in caplog.text
    assert [r.__dict__.get("error") for r in caplog.records] == ["ConnectionError"]


async def test_a_publish_that_hangs_is_given_up(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mailsync_api.ingest_wakes.WAKE_TIMEOUT_SECONDS", 0.05)
    fake = Publisher(delay=30.0)
    with caplog.at_level(logging.WARNING, logger="mailsync_api.ingest_wakes"):
        await asyncio.wait_for(wake_ingest(as_publisher(fake), mailbox(), "approved"), 5)
    assert fake.published == []
    assert [r.__dict__.get("error") for r in caplog.records] == ["TimeoutError"]
