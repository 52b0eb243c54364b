"""The ingest worker: leases mailboxes and runs one sync task per leased mailbox."""

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_ingest.byte_budget import ByteBudget
from mailsync_ingest.lease_loop import LeaseLoop
from mailsync_ingest.leasing import LeaseBook, PoolRoster, fair_share, in_pool
from mailsync_ingest.limits import Limits
from mailsync_ingest.mailbox_metrics import SyncLag
from mailsync_ingest.mailbox_record import MailboxRecord
from mailsync_ingest.messages import MessagePipeline
from mailsync_ingest.settings import Settings
from mailsync_ingest.sync_loop import MailboxSync
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.mail_servers.accounts import Credentials
from mailsync_shared.mail_servers.hosts import HostGuard
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.oauth import TokenCache
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MailboxDocument
from mailsync_shared.storage.mailbox_changes import change_counts
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore

logger = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 10.0
CONNECTED_COUNT_LEASES = 2


@dataclass
class Running:
    sync: MailboxSync
    task: asyncio.Task[None]
    workspace_id: str
    mailbox_id: str
    handing_over: bool = False


class IngestWorker:
    def __init__(
        self,
        settings: Settings,
        db: AsyncDatabase[Document],
        publisher: EventPublisher,
        lag: SyncLag | None = None,
    ) -> None:
        self._settings = settings
        self._lag = lag or SyncLag(CollectorRegistry())
        self._db = db
        self._publisher = publisher
        self._cipher = CredentialCipher(settings.secret_key)
        system = SystemCollections(db)
        self._mailboxes = system.mailboxes
        self._leases = LeaseBook(
            self._mailboxes,
            system.mailbox_lease_terms,
            db["ingest_workers"],
            worker_id=settings.worker_id,
            lease_seconds=settings.lease_seconds,
            workspaces=settings.workspaces,
            exclude_workspaces=settings.exclude_workspaces,
        )
        self._limits = Limits(
            max_bytes=settings.max_message_bytes,
            max_header_bytes=settings.max_header_bytes,
            max_parts=settings.max_mime_parts,
            max_depth=settings.max_mime_depth,
            max_addresses=settings.max_addresses_per_header,
        )
        self._roster = PoolRoster(
            db["ingest_workers"],
            worker_id=settings.worker_id,
            pool=self._leases.scope,
            ttl_seconds=settings.lease_seconds,
        )
        self._share = settings.max_mailboxes
        self._connected: tuple[int, float] | None = None  # count, and when to count again
        self._workers = 1  # live workers of the pool, as last counted
        self._controls_seen: dict[str, int] = {}
        self._check_all_at = 0.0
        self._guard = HostGuard(allow_private=settings.allow_private_hosts)
        self._credentials = Credentials(
            self._cipher, TokenCache(timeout=settings.oauth_timeout_seconds, guard=self._guard)
        )
        self.budget = ByteBudget(settings.max_bytes_in_flight)
        self._starting = asyncio.Semaphore(settings.connect_concurrency)
        self._running: dict[str, Running] = {}
        self._lease_loop = LeaseLoop(
            reap=self._reap_finished,
            renew=self._renew,
            claim=self._claim,
            renew_every=settings.lease_seconds / 3,
            claim_every=settings.claim_interval_seconds,
            wake_gap=settings.wake_gap_seconds,
        )
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def mailbox_ids(self) -> set[str]:
        return set(self._running)

    def states(self) -> dict[str, int]:
        """This worker's mailboxes by the sync state each last recorded."""
        return dict(Counter(running.sync.state for running in self._running.values()))

    def alive(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    async def start(self) -> None:
        """Start leasing mailboxes in the background."""
        self._loop_task = asyncio.create_task(self._lease_loop.run(), name="ingest-lease-loop")
        logger.info(
            "ingest worker started",
            extra={
                "worker_id": self._settings.worker_id,
                "workspaces": self._settings.workspaces,
                "exclude_workspaces": self._settings.exclude_workspaces,
            },
        )

    async def stop(self) -> None:
        """Let every sync finish its batch, then release the leases."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        for running in self._running.values():
            running.sync.request_stop()
        tasks = [running.task for running in self._running.values()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for mailbox_id in list(self._running):
            await self._drop(mailbox_id)
        with contextlib.suppress(Exception):
            await self._roster.leave()
        logger.info("ingest worker stopped", extra={"worker_id": self._settings.worker_id})

    def wake(self, workspace_id: str, mailbox_id: str, *, added: bool) -> None:
        """A mailbox became claimable (`MailboxClaimable`): claim at once, or, when this worker
        still runs its sync (a resync handed the lease back), renew at once, which lets it go
        and claims it afresh. An `added` mailbox (connected, approved) counts in the pool's
        fair share at once, not at the next count of the connected mailboxes."""
        if not in_pool(workspace_id, self._settings.workspaces, self._settings.exclude_workspaces):
            return
        if mailbox_id in self._running:
            self._lease_loop.wake_renewal()
            return
        if added and self._connected is not None:
            count, recount_at = self._connected
            self._connected = (count + 1, recount_at)
            self._share = fair_share(count + 1, self._workers)
        self._lease_loop.wake_claim()

    async def _claim(self) -> None:
        room = min(self._settings.max_mailboxes, self._share) - len(self._running)
        for mailbox in await self._leases.claim_many(self.mailbox_ids, room):
            self._start_sync(mailbox)

    async def _rebalance(self) -> None:
        """Take this worker's fair share of the pool's mailboxes; hand back any excess.

        The live workers are counted every round (a replica added or lost changes the share at
        once); the pool's connected mailboxes, a scan of every mailbox document, every
        `CONNECTED_COUNT_LEASES` lease lengths."""
        await self._roster.heartbeat()
        now = asyncio.get_running_loop().time()
        if self._connected is None or now >= self._connected[1]:
            every = self._settings.lease_seconds * CONNECTED_COUNT_LEASES
            self._connected = (await self._leases.connected(), now + every)
        self._workers = await self._roster.alive()
        self._share = fair_share(self._connected[0], self._workers)
        active = [item for item in self._running.values() if not item.handing_over]
        for running in active[self._share :]:
            running.handing_over = True
            running.sync.request_stop()
            logger.info(
                "mailbox handed back for another worker",
                extra={"mailbox_id": running.mailbox_id, "workspace_id": running.workspace_id},
            )

    async def _renew(self) -> None:
        await self._rebalance()
        held = self.mailbox_ids
        still_ours = await self._leases.renew(held, documents_of=await self._to_check(held))
        for mailbox_id, requested in still_ours.items():
            if requested is not None and mailbox_id in self._running:
                self._running[mailbox_id].sync.ask_to_reconcile(requested)
        lost = held - set(still_ours)
        for mailbox_id in lost:
            running = self._running.pop(mailbox_id)
            running.task.cancel()
            logger.warning(
                "lease lost; sync cancelled",
                extra={"mailbox_id": mailbox_id, "workspace_id": running.workspace_id},
            )
            await asyncio.gather(running.task, return_exceptions=True)
        if lost:
            # A resync hands the lease back while the term stays this worker's: claim it
            # afresh now rather than at the next periodic claim.
            self._lease_loop.wake_claim()

    async def _to_check(self, held: set[str]) -> set[str] | None:
        """The held mailboxes whose documents the renewal reads: those of workspaces where the
        api counted a resync, reconciliation, disconnect or approval since the last look, and
        all of them (None) every `CONNECTED_COUNT_LEASES` lease lengths, for changes made
        around the api."""
        workspaces = {self._running[m].workspace_id for m in held if m in self._running}
        counts = await change_counts(self._db, workspaces, "controls")
        now = asyncio.get_running_loop().time()
        if now >= self._check_all_at:
            self._check_all_at = now + self._settings.lease_seconds * CONNECTED_COUNT_LEASES
            self._controls_seen = counts
            return None
        moved = {w for w, count in counts.items() if self._controls_seen.get(w) != count}
        self._controls_seen = counts
        return {m for m in held if m in self._running and self._running[m].workspace_id in moved}

    async def _reap_finished(self) -> None:
        for mailbox_id, running in list(self._running.items()):
            if running.task.done():
                crashed = not running.task.cancelled() and running.task.exception() is not None
                if crashed:
                    logger.error(
                        "mailbox sync crashed",
                        extra={"mailbox_id": mailbox_id, "workspace_id": running.workspace_id},
                        exc_info=running.task.exception(),
                    )
                await self._drop(mailbox_id)
                if not crashed and not running.handing_over:
                    # The sync stopped on its own (its lease was handed back by a resync,
                    # or it was disconnected): released, it may be claimable at once. A crashed
                    # sync waits for the periodic claim, so a crash cannot loop fast.
                    self._lease_loop.wake_claim()

    async def _drop(self, mailbox_id: str) -> None:
        self._running.pop(mailbox_id, None)
        with contextlib.suppress(Exception):
            await self._leases.release(mailbox_id)

    def _start_sync(self, mailbox: MailboxDocument) -> None:
        store = WorkspaceStore(self._db, mailbox.workspace_id)
        sync = MailboxSync(
            mailbox,
            settings=self._settings,
            record=MailboxRecord(
                self._mailboxes,
                workspace_id=mailbox.workspace_id,
                mailbox_id=mailbox.id,
                worker_id=self._settings.worker_id,
            ),
            pipeline=MessagePipeline(
                store=store,
                publisher=self._publisher,
                limits=self._limits,
                mailbox_id=mailbox.id,
                owner_address=mailbox.address,
            ),
            credentials=self._credentials,
            guard=self._guard,
            budget=self.budget,
            lag=self._lag,
            starting=self._starting,
        )
        task = asyncio.create_task(sync.run(), name=f"sync-{mailbox.id}")
        self._running[mailbox.id] = Running(sync, task, mailbox.workspace_id, mailbox.id)
        logger.info(
            "mailbox leased",
            extra={"mailbox_id": mailbox.id, "workspace_id": mailbox.workspace_id},
        )
