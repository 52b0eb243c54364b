"""Logging one workspace's messages a batch at a time, and announcing each batch.

`BatchLogbook.log_batch` is the first stage of a two-stage batch (`mailsync_shared.batching`):
it reads what the batch's messages look up, logs each in order (`logbook.log_message`) and
writes the batch, then returns the batch's announcement, which publishes the events while the
workspace's next batch is already logged. One workspace's announcements follow each other in
batch order (`Announcements`); a copy of a message whose events an earlier batch is still
publishing only adds its mailbox, and should those events fail, the message's own delivery is
retried and announces it.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence, Set
from dataclasses import dataclass
from typing import Protocol

from pymongo.errors import DuplicateKeyError

from mailsync_associate.events import email_logged, thread_associated
from mailsync_associate.logbook import Dropped, Logged, Skipped
from mailsync_shared.contracts.envelope import Event
from mailsync_shared.contracts.mail import MailMessage
from mailsync_shared.event_privacy import event_level
from mailsync_shared.storage.documents import Visibility

logger = logging.getLogger(__name__)

# One per message of a batch, in order: None once its events are out, else its error.
Outcomes = list[BaseException | None]
Result = Logged | Skipped | Dropped | BaseException


@dataclass(frozen=True)
class ToLog:
    """A message to log; a message sent through Mailsync names the thread it replied on."""

    message: MailMessage
    replied_thread_id: str | None = None


class WorkspaceBatch(Protocol):
    """One batch's reads and writes of a workspace's store (`batch.BatchRepository`)."""

    async def load(self, messages: Sequence[MailMessage]) -> None:
        """Read at once what logging these messages will look up."""
        ...

    async def log(
        self, message: MailMessage, *, replied_thread_id: str | None = None
    ) -> Logged | Skipped | Dropped:
        """Log one message against what the batch read and changed so far."""
        ...

    async def flush(self) -> set[str]:
        """Write what the batch changed; the `Message-ID`s another writer stored first."""
        ...

    async def mailbox_visibility(self, mailbox_id: str) -> Visibility | None: ...

    async def mark_all_published(self, message_ids: Sequence[str]) -> None:
        """Record that the events of these logged messages were confirmed."""
        ...


class Batches(Protocol):
    def open(self, workspace_id: str, announcing: Set[str]) -> WorkspaceBatch:
        """A batch of the workspace; `announcing`: `Message-ID`s whose events are going out."""
        ...


class PublishEach(Protocol):
    """Publishes events in order, each cut to its level (`EventPublisher.publish_each`)."""

    async def __call__(self, events: Sequence[tuple[Event, Visibility | None]]) -> Outcomes: ...


class Announcements:
    """Per workspace: the `Message-ID`s whose events are going out, and the latest batch's
    announcement, which the workspace's next announcement waits for."""

    def __init__(self) -> None:
        self._announcing: dict[str, set[str]] = {}
        self._latest: dict[str, asyncio.Future[Outcomes]] = {}

    def announcing(self, workspace_id: str) -> frozenset[str]:
        return frozenset(self._announcing.get(workspace_id, ()))

    def start(
        self,
        workspace_id: str,
        publishing: Set[str],
        announce: Callable[[asyncio.Future[Outcomes] | None], Awaitable[Outcomes]],
    ) -> asyncio.Future[Outcomes]:
        """Run `announce(after)` for a batch publishing `publishing`, where `after` is the
        workspace's announcement still under way, if any."""
        self._announcing.setdefault(workspace_id, set()).update(publishing)
        announcement = asyncio.ensure_future(announce(self._latest.get(workspace_id)))
        self._latest[workspace_id] = announcement

        def forget(_: object) -> None:
            if self._latest.get(workspace_id) is announcement:
                del self._latest[workspace_id]

        announcement.add_done_callback(forget)
        return announcement

    def finish(self, workspace_id: str, publishing: Set[str]) -> None:
        """The batch's events are out or failed; called once it marked the published ones."""
        pending = self._announcing.get(workspace_id, set())
        pending -= publishing
        if not pending:
            self._announcing.pop(workspace_id, None)


class BatchLogbook:
    """Logs batches of one workspace's messages and publishes their events in order."""

    def __init__(self, batches: Batches, publish_each: PublishEach) -> None:
        self._batches = batches
        self._publish_each = publish_each
        self.announcements = Announcements()

    async def log_batch(
        self, workspace_id: str, items: Sequence[ToLog]
    ) -> asyncio.Future[Outcomes]:
        """Log a batch of one workspace's messages in order; returns their announcement."""
        started = time.perf_counter()
        batch = self._batches.open(workspace_id, self.announcements.announcing(workspace_id))
        await batch.load([item.message for item in items])
        loaded = time.perf_counter()
        results: list[Result] = []
        for item in items:
            try:
                results.append(
                    await batch.log(item.message, replied_thread_id=item.replied_thread_id)
                )
            except Exception as error:
                results.append(error)
        threaded = time.perf_counter()
        lost = await batch.flush()
        written = time.perf_counter()
        results = [
            DuplicateKeyError(f"message {result.stored.message_id} was stored by another writer")
            if isinstance(result, Logged) and result.stored.message_id in lost
            else result
            for result in results
        ]
        publishing = {r.stored.message_id for r in results if isinstance(r, Logged) and r.publish}
        timing = {
            "read": round(loaded - started, 3),
            "thread": round(threaded - loaded, 3),
            "write": round(written - threaded, 3),
        }
        return self.announcements.start(
            workspace_id,
            publishing,
            lambda after: self._announce_batch(
                workspace_id, results, batch, after, publishing, timing
            ),
        )

    async def _announce_batch(
        self,
        workspace_id: str,
        results: Sequence[Result],
        batch: WorkspaceBatch,
        after: asyncio.Future[Outcomes] | None,
        publishing: Set[str],
        timing: dict[str, float],
    ) -> Outcomes:
        """Publish the batch's events, after the previous batch's, and record them as out."""
        try:
            if after is not None:
                await asyncio.wait([after])  # its outcome is for its own batch
            started = time.perf_counter()
            logged = [result for result in results if isinstance(result, Logged)]
            outcomes = iter(await self._announce(workspace_id, logged, batch))
            final: Outcomes = []
            published: list[str] = []
            for result in results:
                if isinstance(result, BaseException):
                    final.append(result)
                elif isinstance(result, Skipped):
                    final.append(None)
                    _note(
                        workspace_id,
                        result.message,
                        "message outside the client-only scope counted",
                    )
                elif isinstance(result, Dropped):
                    final.append(None)
                    _note(
                        workspace_id,
                        result.message,
                        "message of a disconnected or erased mailbox dropped",
                    )
                else:
                    outcome = next(outcomes)
                    final.append(outcome)
                    if outcome is None and result.publish:
                        published.append(result.stored.message_id)
            await batch.mark_all_published(published)
        finally:
            # Marked first, then let go: a later batch either sees the mark or this set.
            self.announcements.finish(workspace_id, publishing)
        logger.info(
            "batch logged",
            extra={
                "workspace_id": workspace_id,
                "messages": len(results),
                "failed": sum(outcome is not None for outcome in final),
                "seconds": {**timing, "announce": round(time.perf_counter() - started, 3)},
            },
        )
        return final

    async def _announce(
        self, workspace_id: str, logged: Sequence[Logged], batch: WorkspaceBatch
    ) -> Outcomes:
        """Publish the events of the logged messages in one go, in order; one outcome per
        message: None once all its events are out (or it had none to publish)."""
        outcomes: Outcomes = [None] * len(logged)
        events: list[tuple[Event, Visibility | None]] = []
        owners: list[int] = []
        for index, each in enumerate(logged):
            if not each.publish:
                continue
            event = email_logged(workspace_id, each)
            try:
                visibility = await batch.mailbox_visibility(event.data.mailbox_id)
            except Exception as error:
                outcomes[index] = error
                continue
            level = event_level(visibility, private_thread=each.thread.private)
            events.append((event, level))
            owners.append(index)
            if each.links_changed:
                events.append((thread_associated(workspace_id, each), level))
                owners.append(index)
        published = await self._publish_each(events) if events else []
        for index, outcome in zip(owners, published, strict=True):
            if outcomes[index] is None:
                outcomes[index] = outcome
        for each, outcome in zip(logged, outcomes, strict=True):
            if outcome is None:
                _logged(workspace_id, each)
        return outcomes


def _logged(workspace_id: str, logged: Logged) -> None:
    logger.info(
        "message logged" if logged.publish else "message copy recorded",
        extra={
            "workspace_id": workspace_id,
            "mailbox_id": logged.message.mailbox_id,
            "message_id": logged.message.message_id,
            "thread_id": logged.thread.id,
            "thread_rule": logged.rule,
            "links_changed": logged.links_changed,
        },
    )


def _note(workspace_id: str, message: MailMessage, what: str) -> None:
    logger.info(
        what,
        extra={
            "workspace_id": workspace_id,
            "mailbox_id": message.mailbox_id,
            "message_id": message.message_id,
        },
    )
