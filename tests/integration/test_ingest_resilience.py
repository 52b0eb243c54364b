"""Ingest on Dovecot when things go wrong: a changed UIDVALIDITY, the IMAP server dropping the
connection mid-fetch, an IDLE connection that silently dies. Nothing lost, nothing twice."""

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mailsync_api.mailboxes import request_reconcile
from mailsync_shared.storage.documents import MailboxDocument, MessageDocument
from tests.integration.conftest_ingest import (  # noqa: F401  (fixtures register by name)
    FetchedSpy,
    FreezingProxy,
    IngestCase,
    doveadm,
    folder_status,
    ingest_fixture,
    unique_published,
)
from tests.support.mail import build_message, create_account, deliver
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

CLIENT = "carol@client.test"


async def test_a_changed_uidvalidity_resyncs_the_folder_once(ingest: IngestCase) -> None:
    seeded = await ingest.seeded_mailbox(5, CLIENT)
    owner, mailbox = seeded.owner, seeded.mailbox

    async with ingest.watched_worker() as spy:
        await eventually(
            lambda: ingest.caught_up(mailbox.id, spy, 5), what="first sync", timeout=60
        )
        before = folder_status(ingest.infra, owner)["uidvalidity"]
        doveadm(
            ingest.infra,
            "mailbox",
            "update",
            "-u",
            owner.address,
            "--uid-validity",
            str(before + 7),
            "INBOX",
        )

        async def resynced() -> bool:
            inbox = (await ingest.state(mailbox.id)).folders["INBOX"]
            return inbox.uidvalidity == before + 7 and inbox.backfill_floor is None

        await eventually(resynced, what="INBOX resynced under the new UIDVALIDITY", timeout=60)
        await eventually(lambda: spy.at_least(10), what="every message once more", timeout=30)

    by_validity = Counter(
        event.data.source.uidvalidity for event in spy.events if event.data.source
    )
    assert by_validity == {before: 5, before + 7: 5}
    new_copies = [e for e in spy.events if e.data.source and e.data.source.uidvalidity != before]
    assert sorted(e.data.message_id for e in new_copies) == sorted(seeded.sent_ids)
    assert len(unique_published(spy)) == len(spy.events)


async def test_the_server_dropping_the_connection_mid_fetch_loses_and_repeats_nothing(
    ingest: IngestCase,
) -> None:
    seeded = await ingest.seeded_mailbox(600, CLIENT)

    async with ingest.watched_worker(fetch_batch=10) as spy:
        await eventually(lambda: spy.at_least(50), what="the backfill under way", timeout=60)
        kicked_at = len(spy.events)
        doveadm(ingest.infra, "kick", seeded.owner.address)
        await eventually(
            lambda: ingest.caught_up(seeded.mailbox.id, spy, 600),
            what="the backfill completed after the kick",
            timeout=120,
        )

    assert kicked_at < 600
    assert sorted(spy.message_ids()) == sorted(seeded.sent_ids)
    assert len(unique_published(spy)) == 600


async def test_a_silently_dead_idle_connection_is_replaced_within_twice_the_keepalive(
    ingest: IngestCase,
) -> None:
    infra = ingest.infra
    owner = create_account(infra, "acme.test", "owner")
    async with FreezingProxy(infra.imap_host, infra.imap_port) as proxy:
        mailbox = await ingest.add_mailbox(ingest.mailbox(owner, imap_port=proxy.port))
        keepalive = 2.0
        async with ingest.watched_worker(idle_refresh_seconds=keepalive) as spy:

            async def live() -> bool:
                return (await ingest.state(mailbox.id)).status.state == "live"

            await eventually(live, what="mailbox live and idling", timeout=60)
            first = build_message(sender=CLIENT, to=[owner.address], subject="One", body="1")
            deliver(infra, first, [owner.address])
            await eventually(lambda: spy.at_least(1), what="first message", timeout=10)

            proxy.freeze()
            frozen_at = time.monotonic()
            connections = proxy.connections
            second = build_message(sender=CLIENT, to=[owner.address], subject="Two", body="2")
            deliver(infra, second, [owner.address])

            async def reconnected() -> bool:
                return proxy.connections > connections

            await eventually(reconnected, what="a new connection", timeout=3 * keepalive + 5)
            detected_after = time.monotonic() - frozen_at
            await eventually(lambda: spy.at_least(2), what="mail after the dead IDLE", timeout=15)

    assert detected_after <= 2 * keepalive + 1.5
    assert spy.message_ids() == [first["Message-ID"], second["Message-ID"]]


async def test_reconciliation_reports_server_mail_that_was_not_logged(ingest: IngestCase) -> None:
    mailbox = (await ingest.seeded_mailbox(4, CLIENT)).mailbox

    async with ingest.watched_worker(
        reconcile_interval_seconds=0.5, poll_interval_seconds=0.2
    ) as spy:
        await eventually(lambda: spy.at_least(4), what="backfill", timeout=60)
        # Log three of the four as associate would; the fourth stays missing.
        await _log_as_associate_would(ingest, mailbox.id, spy.events[:3])

        async def one_gap() -> list[tuple[str, int, int, int]] | None:
            status = (await ingest.state(mailbox.id)).status
            found = [(g.folder, g.server, g.logged, g.missing) for g in status.gaps]
            return found if found == [("INBOX", 4, 3, 1)] else None

        await eventually(one_gap, what="the unlogged message reported", timeout=30)


async def _log_as_associate_would(ingest: IngestCase, mailbox_id: str, events: list[Any]) -> None:
    for event in events:
        message = event.data
        assert message.source is not None
        await ingest.store.messages.insert_one(
            MessageDocument(
                workspace_id=ingest.workspace_id,
                message_id=message.message_id,
                thread_id="t",
                mailbox_ids=[mailbox_id],
                sources=[message.source],
                direction=message.direction,
                raw_id=message.raw_id,
            ).to_document()
        )


async def test_reconciliation_runs_when_the_backfill_has_settled_and_when_asked(
    ingest: IngestCase,
) -> None:
    async with _backfilled(ingest, settle_seconds=1) as (mailbox, spy):

        async def reconciled() -> MailboxDocument | None:
            state = await ingest.state(mailbox.id)
            return state if state.status.reconciled_at is not None else None

        # Nothing logged yet (no associate here): the comparison a settle time after the
        # backfill finds all three missing, without waiting for the hour-long interval.
        first = await eventually(reconciled, what="reconciliation after the backfill")
        assert [(g.folder, g.server, g.logged, g.missing) for g in first.status.gaps] == [
            ("INBOX", 3, 0, 3)
        ]
        await _log_as_associate_would(ingest, mailbox.id, spy.events)
        await request_reconcile(ingest.store, mailbox.id)

        async def answered() -> MailboxDocument | None:
            state = await ingest.state(mailbox.id)
            done = state.reconcile_requested_at is None and not state.status.gaps
            return state if done else None

        second = await eventually(answered, what="the requested reconciliation", timeout=30)
        earlier = first.status.reconciled_at
        assert earlier is not None
        assert second.status.reconciled_at is not None
        assert second.status.reconciled_at > earlier


async def test_no_reconciliation_reports_mail_still_on_its_way_right_after_the_backfill(
    ingest: IngestCase,
) -> None:
    """The mail a backfill just published is compared only once associate had time to log it
    (`reconcile_settle_seconds`), so no gap shows for mail that is merely in flight."""
    async with _backfilled(ingest, settle_seconds=30) as (mailbox, _):
        await eventually(
            lambda: _live(ingest, mailbox.id), what="the mailbox live after its backfill"
        )
        await asyncio.sleep(3)  # several rounds of the live loop
        state = await ingest.state(mailbox.id)
        assert state.status.reconciled_at is None
        assert state.status.gaps == []


@contextlib.asynccontextmanager
async def _backfilled(
    ingest: IngestCase, *, settle_seconds: float
) -> AsyncIterator[tuple[MailboxDocument, FetchedSpy]]:
    """A worker (reconciling hourly, and `settle_seconds` after a backfill) that has
    backfilled a mailbox of three messages, and the spy on what it published."""
    mailbox = (await ingest.seeded_mailbox(3, CLIENT)).mailbox
    async with ingest.watched_worker(
        reconcile_interval_seconds=3600,
        reconcile_settle_seconds=settle_seconds,
        poll_interval_seconds=0.2,
        use_idle=False,
    ) as spy:
        await eventually(lambda: ingest.caught_up(mailbox.id, spy, 3), what="backfill")
        yield mailbox, spy


async def _live(ingest: IngestCase, mailbox_id: str) -> MailboxDocument | None:
    state = await ingest.state(mailbox_id)
    return state if state.status.state == "live" else None
