"""What associate is given to log: captured messages and mail sent through Mailsync.

Each delivery hands its messages to the workspace's batch (`mailsync_shared.batching`) and
waits for their outcomes, so the broker's ack still follows the messages' writes and events.
Deliveries hand their messages over in the order they arrived (`mailsync_shared.delivery_order`).
One workspace's batches are logged one at a time, in delivery order, each while the events of
the one before go out (`batch_logbook`); workspaces run in parallel.
"""

from collections.abc import Awaitable, Callable, Sequence

from mailsync_associate.batch_logbook import BatchLogbook, ToLog
from mailsync_shared.batching import Batcher
from mailsync_shared.contracts.envelope import Event
from mailsync_shared.contracts.mail import MailMessage, MessageCaptured
from mailsync_shared.contracts.outbound import EmailSent
from mailsync_shared.delivery_order import in_turn
from mailsync_shared.work_batches import submit_delivery

# The sent message whole again, from what `email.sent` published: (workspace, message, request).
CompleteSent = Callable[[str, MailMessage, str], Awaitable[MailMessage]]


class Intake:
    def __init__(
        self,
        logbook: BatchLogbook,
        complete_sent: CompleteSent,
        retry_alone: Callable[[Event], Awaitable[None]],
        *,
        batch_size: int = 200,
    ) -> None:
        """`retry_alone` publishes again, as a delivery of its own, an event that failed in a
        delivery whose other events succeeded (`mailsync_shared.work_batches`)."""
        self._complete_sent = complete_sent
        self._retry_alone = retry_alone
        self._batcher: Batcher[ToLog, None] = Batcher.in_two_stages(
            logbook.log_batch, max_size=batch_size
        )

    async def log_captured(self, events: Sequence[MessageCaptured]) -> None:
        """Log captured messages on their threads and link the threads to records."""
        await submit_delivery(
            self._batcher, events, lambda event: ToLog(event.data.message), self._retry_alone
        )

    async def log_sent(self, event: EmailSent) -> None:
        """Log a message sent through Mailsync at once, on the thread it replies on."""
        published = event.data.message.model_copy(
            update={"direction": "sent", "send_request_id": event.data.send_request_id}
        )
        message = await self._complete_sent(
            event.workspaceid, published, event.data.send_request_id
        )
        async with in_turn():
            logged = self._batcher.put(event.workspaceid, ToLog(message, event.data.thread_id))
        await logged
