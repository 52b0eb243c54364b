"""Leases on the real MongoDB-wire server: one holder per mailbox, even under contention."""

import asyncio
from datetime import UTC, datetime

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_api.mailboxes import request_resync
from mailsync_ingest.leasing import LeaseBook
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MailboxDocument, MailboxStatus, ServerAccount
from mailsync_shared.storage.scoped import SystemCollections
from tests.integration.conftest_ingest import (  # noqa: F401  (fixtures register by name)
    IngestCase,
    ingest_fixture,
    unique_published,
)
from tests.support.mail import build_message, create_accounts, deliver
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

CLIENT = "erin@client.test"


def book(db: AsyncDatabase[Document], worker: str, workspace: str, seconds: float) -> LeaseBook:
    system = SystemCollections(db)
    return LeaseBook(
        system.mailboxes,
        system.mailbox_lease_terms,
        db["ingest_workers"],
        worker_id=worker,
        lease_seconds=seconds,
        workspaces=[workspace],
    )


async def insert_mailbox(
    db: AsyncDatabase[Document], workspace: str, status: MailboxStatus | None = None
) -> str:
    account = ServerAccount(host="127.0.0.1", port=10143, security="none", username="u@x.test")
    mailbox = MailboxDocument(
        workspace_id=workspace,
        address="u@x.test",
        imap=account,
        smtp=account,
        status=status or MailboxStatus(),
    )
    await db["mailboxes"].insert_one(mailbox.to_document())
    return mailbox.id


async def test_concurrent_claims_give_a_mailbox_to_exactly_one_worker(
    mongo: AsyncDatabase[Document], workspace_id: str
) -> None:
    for _ in range(5):
        mailbox_id = await insert_mailbox(mongo, workspace_id)
        books = [book(mongo, f"worker-{i}", workspace_id, 30) for i in range(8)]
        claims = await asyncio.gather(*(b.claim(held=()) for b in books))
        winners = [b.worker_id for b, claim in zip(books, claims, strict=True) if claim]
        assert len(winners) == 1, winners
        renewed = await asyncio.gather(*(b.renew([mailbox_id]) for b in books))
        assert sum(1 for kept in renewed if kept.keys() == {mailbox_id}) == 1
        await books[int(winners[0].split("-")[1])].release(mailbox_id)
        await mongo["mailboxes"].delete_one({"_id": mailbox_id})


async def test_an_expired_lease_is_taken_over_and_the_old_holder_learns_it(
    mongo: AsyncDatabase[Document], workspace_id: str
) -> None:
    mailbox_id = await insert_mailbox(mongo, workspace_id)
    first = book(mongo, "stalled", workspace_id, 0.5)
    second = book(mongo, "healthy", workspace_id, 30)
    assert (await first.claim(held=())) is not None
    assert await second.claim(held=()) is None, "a live lease is not taken"
    await asyncio.sleep(0.8)
    taken = await second.claim(held=())
    assert taken is not None
    assert taken.lease is not None
    assert taken.lease.owner == "healthy"
    assert await first.renew([mailbox_id]) == {}
    assert await second.renew([mailbox_id]) == {mailbox_id: None}


async def test_renewal_reports_a_reconciliation_the_api_asked_for(
    mongo: AsyncDatabase[Document], workspace_id: str
) -> None:
    asked_at = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    quiet = await insert_mailbox(mongo, workspace_id)
    asked = await insert_mailbox(mongo, workspace_id)
    holder = book(mongo, "holder", workspace_id, 30)
    assert len(await holder.claim_many(held=(), limit=2)) == 2

    assert await holder.renew([quiet, asked]) == {quiet: None, asked: None}
    await mongo["mailboxes"].update_one(
        {"_id": asked}, {"$set": {"reconcile_requested_at": asked_at}}
    )
    renewed = await holder.renew([quiet, asked])

    requested = renewed[asked]
    assert renewed[quiet] is None
    assert requested is not None
    assert requested.replace(tzinfo=UTC) == asked_at


async def test_renewal_reads_only_the_documents_it_is_told_to(
    mongo: AsyncDatabase[Document], workspace_id: str
) -> None:
    stopped = await insert_mailbox(mongo, workspace_id)
    holder = book(mongo, "holder", workspace_id, 30)
    assert len(await holder.claim_many(held=(), limit=1)) == 1
    await mongo["mailboxes"].update_one(
        {"_id": stopped}, {"$set": {"status.state": "disconnected", "lease": None}}
    )

    kept_on_terms = await holder.renew([stopped], documents_of=set())
    read = await holder.renew([stopped], documents_of={stopped})

    assert kept_on_terms == {stopped: None}  # a change the api did not count waits its turn
    assert read == {}


async def test_a_resync_of_one_mailbox_leaves_the_leases_and_live_state_of_fifty_others(
    ingest: IngestCase,
) -> None:
    owners = create_accounts(ingest.infra, "acme.test", 50, "lease")
    mailboxes = [
        await ingest.add_mailbox(ingest.mailbox(owner, backfill_days=None)) for owner in owners
    ]
    resynced, others = mailboxes[0], mailboxes[1:]
    # Short leases: the observation below spans several renewal rounds.
    settings = ingest.settings(lease_seconds=3.0, max_mailboxes=100)

    async def states() -> dict[str, MailboxDocument]:
        documents = await ingest.store.mailboxes.find({})
        return {str(d["_id"]): MailboxDocument.from_document(d) for d in documents}

    def undisturbed(now: dict[str, MailboxDocument], held: set[str]) -> list[str]:
        """The other mailboxes that are not live, or not leased to this worker, right now."""
        return [
            m.id
            for m in others
            if m.id not in held
            or now[m.id].status.state != "live"
            or now[m.id].lease is None
            or now[m.id].lease.owner != settings.worker_id  # type: ignore[union-attr]
        ]

    async with ingest.spy() as spy, ingest.worker(settings) as worker:

        async def all_live() -> bool:
            now = await states()
            return not undisturbed(now, worker.mailbox_ids) and resynced.id in worker.mailbox_ids

        await eventually(all_live, what="50 mailboxes live on the worker", timeout=90)
        before = await states()

        await request_resync(ingest.store, resynced.id)
        for owner in owners:
            deliver(
                ingest.infra,
                build_message(sender=CLIENT, to=[owner.address], subject="After", body="Hi\n"),
                [owner.address],
            )
        deadline = asyncio.get_running_loop().time() + 3 * settings.lease_seconds
        while asyncio.get_running_loop().time() < deadline:
            assert undisturbed(await states(), worker.mailbox_ids) == []
            await asyncio.sleep(0.2)

        async def resynced_again() -> bool:
            now = (await states())[resynced.id]
            inbox = now.folders.get("INBOX")
            return now.status.state == "live" and inbox is not None and inbox.last_uid >= 1

        await eventually(resynced_again, what="the resynced mailbox live again", timeout=30)
        await eventually(lambda: spy.at_least(50), what="one message per mailbox", timeout=30)
        after = await states()

    for mailbox in others:
        assert after[mailbox.id].lease == before[mailbox.id].lease, "the lease term changed"
        assert after[mailbox.id].folders["INBOX"].last_uid == 1, "a checkpoint was lost"
    assert after[resynced.id].lease is not None
    assert sorted(e.data.mailbox_id for e in unique_published(spy).values()) == sorted(
        m.id for m in mailboxes
    )


async def test_mailboxes_disconnected_or_awaiting_approval_of_their_address_are_not_claimed(
    mongo: AsyncDatabase[Document], workspace_id: str
) -> None:
    for state in ("awaiting_approval", "disconnected"):
        await insert_mailbox(mongo, workspace_id, MailboxStatus(state=state))
    worker = book(mongo, "worker", workspace_id, 30)

    assert await worker.claim(held=()) is None
    connecting = await insert_mailbox(mongo, workspace_id)
    claimed = await worker.claim(held=())
    assert claimed is not None
    assert claimed.id == connecting
