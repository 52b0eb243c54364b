"""Capturing a batch of one workspace's fetched messages: rules applied, contacts created,
decisions recorded, the messages passed on.

`BatchCapture.capture` decides the batch's messages in order (`capture_contacts` over one
`CaptureBatch`, so the batch's reads happen once), writes the decisions together, then
announces: every new contact's `contact.captured`, then the messages' `message.captured`
events together, in order. Messages of a mailbox disconnected or erased since they were
fetched are dropped instead, with their raw bytes unless a stored message names them.

Each message gets an outcome: None when it is done, or the exception its delivery should
raise. It knows nothing of the broker; `handlers` feeds it deliveries.
"""

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from pymongo.asynchronous.database import AsyncDatabase

from mailsync_capture.events import contact_captured, message_captured
from mailsync_shared.association.scope import mailbox_flags, stopped
from mailsync_shared.capture_policy.batch import CaptureBatch
from mailsync_shared.capture_policy.capturing import CaptureResult, CaptureSource, capture_contacts
from mailsync_shared.capture_policy.repository import CaptureRepository
from mailsync_shared.contracts.envelope import Event
from mailsync_shared.contracts.mail import MessageFetched
from mailsync_shared.event_privacy import event_level, visibility_of
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import Visibility
from mailsync_shared.storage.raw_messages import delete_unused_raw
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore

logger = logging.getLogger(__name__)

Outcome = BaseException | None


class CaptureWorkspace(Protocol):
    """The stored data of one workspace, as capturing a batch reads and writes it."""

    async def mailbox_flags(self, mailbox_ids: Iterable[str]) -> Mapping[str, Document]:
        """The named mailboxes' visibility and stopped flags, read now, by mailbox id."""
        ...

    async def drop_raw(self, raw_ids: Sequence[str]) -> None:
        """Delete these raw messages' bytes unless a stored message names them."""
        ...

    def capture_source(self) -> CaptureSource: ...


class CapturePublisher(Protocol):
    """What capture publishes through (`EventPublisher`)."""

    async def publish(self, event: Event, *, level: Visibility | None = None) -> None: ...

    async def publish_together(self, events: Sequence[Event]) -> None: ...


class StoredWorkspace:
    """`CaptureWorkspace` in the store."""

    def __init__(self, db: AsyncDatabase[Document], workspace_id: str) -> None:
        self._store = WorkspaceStore(db, workspace_id)
        self._system = SystemCollections(db)

    async def mailbox_flags(self, mailbox_ids: Iterable[str]) -> Mapping[str, Document]:
        return await mailbox_flags(self._store, mailbox_ids)

    async def drop_raw(self, raw_ids: Sequence[str]) -> None:
        await delete_unused_raw(self._store, raw_ids)

    def capture_source(self) -> CaptureSource:
        return CaptureRepository(self._store, self._system)


def stored_workspaces(db: AsyncDatabase[Document]) -> Callable[[str], CaptureWorkspace]:
    return lambda workspace_id: StoredWorkspace(db, workspace_id)


class BatchCapture:
    """Captures batches of fetched messages, one workspace's batch at a time."""

    def __init__(
        self,
        workspaces: Callable[[str], CaptureWorkspace],
        publisher: CapturePublisher,
        free_mail_domains: frozenset[str],
    ) -> None:
        self._workspaces = workspaces
        self._publisher = publisher
        self._free_mail_domains = free_mail_domains

    async def capture(self, workspace_id: str, events: Sequence[MessageFetched]) -> list[Outcome]:
        """Decide a batch of one workspace's messages in order, write, then announce them."""
        workspace = self._workspaces(workspace_id)
        flags = await workspace.mailbox_flags(event.data.mailbox_id for event in events)
        stopped_mailboxes = {mailbox_id for mailbox_id, doc in flags.items() if stopped(doc)}
        levels = {mailbox_id: visibility_of(doc) for mailbox_id, doc in flags.items()}
        dropped = [event for event in events if event.data.mailbox_id in stopped_mailboxes]
        if dropped:
            await self._drop(workspace, dropped)
        wanted = [event for event in events if event.data.mailbox_id not in stopped_mailboxes]
        batch = CaptureBatch(workspace.capture_source())
        await batch.load([event.data for event in wanted])
        results: list[CaptureResult | BaseException] = []
        for event in wanted:
            try:
                results.append(await capture_contacts(batch, event.data, self._free_mail_domains))
            except Exception as error:
                results.append(error)
        await batch.write_decisions()
        outcomes = iter(await self._announce(wanted, results, levels))
        return [
            None if event.data.mailbox_id in stopped_mailboxes else next(outcomes)
            for event in events
        ]

    async def _drop(self, workspace: CaptureWorkspace, dropped: Sequence[MessageFetched]) -> None:
        """Messages of a mailbox disconnected or erased since they were fetched: not captured
        and not passed on; their raw bytes go unless a stored message names them."""
        await workspace.drop_raw([event.data.raw_id for event in dropped])
        for event in dropped:
            logger.info(
                "message of a disconnected or erased mailbox dropped",
                extra={
                    "workspace_id": event.workspaceid,
                    "mailbox_id": event.data.mailbox_id,
                    "message_id": event.data.message_id,
                },
            )

    async def _announce(
        self,
        events: Sequence[MessageFetched],
        results: Sequence[CaptureResult | BaseException],
        levels: Mapping[str, Visibility],
    ) -> list[Outcome]:
        """The new contacts' events all at once, then each message's event in order."""
        outcomes: list[Outcome] = [
            result if isinstance(result, BaseException) else None for result in results
        ]
        contact_events = [
            (index, contact_captured(events[index], new))
            for index, result in enumerate(results)
            if isinstance(result, CaptureResult)
            for new in result.new_contacts
        ]
        published = await asyncio.gather(
            *(
                self._publisher.publish(event, level=event_level(levels.get(event.data.mailbox_id)))
                for _, event in contact_events
            ),
            return_exceptions=True,
        )
        for (index, _), failure in zip(contact_events, published, strict=True):
            if isinstance(failure, BaseException) and outcomes[index] is None:
                outcomes[index] = failure
        captured = [
            (index, event, result)
            for index, (event, result) in enumerate(zip(events, results, strict=True))
            if outcomes[index] is None and isinstance(result, CaptureResult)
        ]
        try:
            await self._publisher.publish_together(
                [message_captured(event, result) for _, event, result in captured]
            )
        except Exception as error:
            for index, _, _ in captured:
                outcomes[index] = error
            return outcomes
        for _, event, result in captured:
            logger.info(
                "message captured",
                extra={
                    "workspace_id": event.workspaceid,
                    "mailbox_id": event.data.mailbox_id,
                    "message_id": event.data.message_id,
                    "contacts_created": len(result.new_contacts),
                },
            )
        return outcomes
