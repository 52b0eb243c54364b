"""Ingest on Dovecot when things go wrong: a changed UIDVALIDITY, the IMAP server dropping the
connection mid-fetch, an IDLE connection that silently dies. Nothing lost, nothing twice."""

import time
from collections import Counter

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MessageDocument
from mailsync_shared.storage.scoped import WorkspaceStore
from tests.integration.conftest_ingest import (
    FetchedSpy,
    FreezingProxy,
    doveadm,
    fetched_spy,
    fill_inbox,
    folder_status,
    mailbox_document,
    mailbox_state,
    running_worker,
    unique_published,
    worker_settings,
)
from tests.support.infra import Infra
from tests.support.mail import build_message, create_account, deliver
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

CLIENT = "carol@client.test"


async def test_a_changed_uidvalidity_resyncs_the_folder_once(
    infra: Infra,
    secret_key: str,
    mongo: AsyncDatabase[Document],
    store: WorkspaceStore,
    workspace_id: str,
) -> None:
    owner = create_account(infra, "acme.test", "owner")
    sent_ids = fill_inbox(infra, owner, 5, CLIENT)
    mailbox = mailbox_document(infra, secret_key, workspace_id, owner, backfill_days=30)
    await store.mailboxes.insert_one(mailbox.to_document())
    settings = worker_settings(infra, secret_key, workspace_id)

    async with fetched_spy(infra, workspace_id) as spy, running_worker(settings, mongo):

        async def backfilled() -> bool:
            state = await mailbox_state(store, mailbox.id)
            return len(spy.events) >= 5 and state.status.state == "live"

        await eventually(backfilled, what="first sync", timeout=60)
        before = folder_status(infra, owner)["uidvalidity"]
        doveadm(
            infra,
            "mailbox",
            "update",
            "-u",
            owner.address,
            "--uid-validity",
            str(before + 7),
            "INBOX",
        )

        async def resynced() -> bool:
            state = await mailbox_state(store, mailbox.id)
            inbox = state.folders["INBOX"]
            return inbox.uidvalidity == before + 7 and inbox.backfill_floor is None

        await eventually(resynced, what="INBOX resynced under the new UIDVALIDITY", timeout=60)

        async def republished() -> bool:
            return len(spy.events) >= 10

        await eventually(republished, what="every message once more", timeout=30)

    by_validity = Counter(
        event.data.source.uidvalidity for event in spy.events if event.data.source
    )
    assert by_validity == {before: 5, before + 7: 5}
    new_copies = [e for e in spy.events if e.data.source and e.data.source.uidvalidity != before]
    assert sorted(e.data.message_id for e in new_copies) == sorted(sent_ids)
    assert len(unique_published(spy)) == len(spy.events)


async def test_the_server_dropping_the_connection_mid_fetch_loses_and_repeats_nothing(
    infra: Infra,
    secret_key: str,
    mongo: AsyncDatabase[Document],
    store: WorkspaceStore,
    workspace_id: str,
) -> None:
    owner = create_account(infra, "acme.test", "owner")
    sent_ids = fill_inbox(infra, owner, 600, CLIENT)
    mailbox = mailbox_document(infra, secret_key, workspace_id, owner, backfill_days=30)
    await store.mailboxes.insert_one(mailbox.to_document())
    settings = worker_settings(infra, secret_key, workspace_id, fetch_batch=10)

    async with fetched_spy(infra, workspace_id) as spy, running_worker(settings, mongo):

        async def started() -> bool:
            return len(spy.events) >= 50

        await eventually(started, what="the backfill under way", timeout=60)
        kicked_at = len(spy.events)
        doveadm(infra, "kick", owner.address)

        async def complete() -> bool:
            state = await mailbox_state(store, mailbox.id)
            return state.status.state == "live" and len(spy.events) >= 600

        await eventually(complete, what="the backfill completed after the kick", timeout=120)

    assert kicked_at < 600
    assert sorted(spy.message_ids()) == sorted(sent_ids)
    assert len(unique_published(spy)) == 600


async def test_a_silently_dead_idle_connection_is_replaced_within_twice_the_keepalive(
    infra: Infra,
    secret_key: str,
    mongo: AsyncDatabase[Document],
    store: WorkspaceStore,
    workspace_id: str,
) -> None:
    owner = create_account(infra, "acme.test", "owner")
    async with FreezingProxy(infra.imap_host, infra.imap_port) as proxy:
        direct = mailbox_document(infra, secret_key, workspace_id, owner, backfill_days=30)
        mailbox = direct.model_copy(
            update={"imap": direct.imap.model_copy(update={"port": proxy.port})}
        )
        await store.mailboxes.insert_one(mailbox.to_document())
        keepalive = 2.0
        settings = worker_settings(infra, secret_key, workspace_id, idle_refresh_seconds=keepalive)
        async with fetched_spy(infra, workspace_id) as spy, running_worker(settings, mongo):

            async def live() -> bool:
                return (await mailbox_state(store, mailbox.id)).status.state == "live"

            await eventually(live, what="mailbox live and idling", timeout=60)
            first = build_message(sender=CLIENT, to=[owner.address], subject="One", body="1")
            deliver(infra, first, [owner.address])
            await eventually(lambda: _count(spy, 1), what="first message", timeout=10)

            proxy.freeze()
            frozen_at = time.monotonic()
            connections = proxy.connections
            second = build_message(sender=CLIENT, to=[owner.address], subject="Two", body="2")
            deliver(infra, second, [owner.address])

            async def reconnected() -> bool:
                return proxy.connections > connections

            await eventually(reconnected, what="a new connection", timeout=3 * keepalive + 5)
            detected_after = time.monotonic() - frozen_at
            await eventually(lambda: _count(spy, 2), what="mail after the dead IDLE", timeout=15)

    assert detected_after <= 2 * keepalive + 1.5
    assert spy.message_ids() == [first["Message-ID"], second["Message-ID"]]


async def _count(spy: FetchedSpy, wanted: int) -> bool:
    return len(spy.events) >= wanted


async def test_reconciliation_reports_server_mail_that_was_not_logged(
    infra: Infra,
    secret_key: str,
    mongo: AsyncDatabase[Document],
    store: WorkspaceStore,
    workspace_id: str,
) -> None:
    owner = create_account(infra, "acme.test", "owner")
    fill_inbox(infra, owner, 4, CLIENT)
    mailbox = mailbox_document(infra, secret_key, workspace_id, owner, backfill_days=30)
    await store.mailboxes.insert_one(mailbox.to_document())
    settings = worker_settings(
        infra, secret_key, workspace_id, reconcile_interval_seconds=0.5, poll_interval_seconds=0.2
    )

    async with fetched_spy(infra, workspace_id) as spy, running_worker(settings, mongo):

        async def published() -> bool:
            return len(spy.events) >= 4

        await eventually(published, what="backfill", timeout=60)
        # Log three of the four as associate would; the fourth stays missing.
        for event in spy.events[:3]:
            message = event.data
            assert message.source is not None
            await store.messages.insert_one(
                MessageDocument(
                    workspace_id=workspace_id,
                    message_id=message.message_id,
                    thread_id="t",
                    mailbox_ids=[mailbox.id],
                    sources=[message.source],
                    direction=message.direction,
                    raw_id=message.raw_id,
                ).to_document()
            )

        async def one_gap() -> list[tuple[str, int, int, int]] | None:
            status = (await mailbox_state(store, mailbox.id)).status
            found = [(g.folder, g.server, g.logged, g.missing) for g in status.gaps]
            return found if found == [("INBOX", 4, 3, 1)] else None

        await eventually(one_gap, what="the unlogged message reported", timeout=30)
