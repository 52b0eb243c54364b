"""Wake-ups: the api's `MailboxClaimable` hints make the worker claim at once."""

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker

from mailsync_ingest.settings import Settings
from mailsync_ingest.worker import IngestWorker
from mailsync_shared.contracts.mailboxes import MailboxClaimable
from mailsync_shared.topology import IngestWakes, ingest_wakes


def subscribe_wakes(broker: RabbitBroker, worker: IngestWorker, settings: Settings) -> IngestWakes:
    """Consume the worker's own wake queue; bind it (`IngestWakes.bind`) once the broker is
    connected. A lost wake costs only time: the periodic claim finds the mailbox."""
    wakes = ingest_wakes(settings.worker_id, settings.workspaces, settings.exclude_workspaces)

    @broker.subscriber(wakes.queue, ack_policy=AckPolicy.ACK_FIRST, title="ingest wake-ups")
    async def mailbox_claimable(event: MailboxClaimable) -> None:
        """A mailbox of the pool became claimable: claim (or re-check it) at once."""
        added = event.data.because != "resync"
        worker.wake(event.workspaceid, event.data.mailbox_id, added=added)

    return wakes
