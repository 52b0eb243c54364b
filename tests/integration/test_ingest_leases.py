"""Leases on the real MongoDB-wire server: one holder per mailbox, even under contention."""

import asyncio

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_ingest.leasing import LeaseBook
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MailboxDocument, ServerAccount
from mailsync_shared.storage.scoped import SystemCollections

pytestmark = pytest.mark.integration


def book(db: AsyncDatabase[Document], worker: str, workspace: str, seconds: float) -> LeaseBook:
    system = SystemCollections(db)
    return LeaseBook(
        system.mailboxes,
        system.mailbox_lease_terms,
        worker_id=worker,
        lease_seconds=seconds,
        workspaces=[workspace],
    )


async def insert_mailbox(db: AsyncDatabase[Document], workspace: str) -> str:
    account = ServerAccount(host="127.0.0.1", port=10143, security="none", username="u@x.test")
    mailbox = MailboxDocument(
        workspace_id=workspace, address="u@x.test", imap=account, smtp=account
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
        assert sum(1 for kept in renewed if kept == {mailbox_id}) == 1
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
    assert await first.renew([mailbox_id]) == set()
    assert await second.renew([mailbox_id]) == {mailbox_id}
