"""Ingest against real Dovecot, FerretDB and RabbitMQ: backfill, live mail, read-only proof."""

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.conftest_ingest import (  # noqa: F401  (fixtures register by name)
    IngestCase,
    append,
    ingest_fixture,
    snapshot,
)
from tests.support.infra import Infra
from tests.support.mail import MailAccount, build_message, create_account, deliver, imap_login
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

CLIENT = "ann@client.test"


async def test_backfill_then_live_mail_is_published_once_and_the_mailbox_is_untouched(
    ingest: IngestCase,
) -> None:
    infra, store = ingest.infra, ingest.store
    owner = create_account(infra, "acme.test", "owner")
    inbox = [
        build_message(sender=CLIENT, to=[owner.address], subject=f"Hello {n}", body=f"body {n}")
        for n in range(3)
    ]
    for message in inbox:
        deliver(infra, message, [owner.address])
    too_old = build_message(
        sender=CLIENT,
        to=[owner.address],
        subject="Old news",
        body="outside the window",
        date=datetime.now(UTC) - timedelta(days=60),
    )
    append(infra, owner, "INBOX", too_old, when=datetime.now(UTC) - timedelta(days=60))
    sent = build_message(sender=owner.address, to=[CLIENT], subject="Re: Hello 0", body="hi")
    append(infra, owner, "Sent", sent, flags="\\Seen")
    junk = build_message(sender="spam@spam.test", to=[owner.address], subject="Win", body="$")
    append(infra, owner, "Junk", junk)
    before = {folder: snapshot(infra, owner, folder) for folder in ("INBOX", "Sent")}
    assert all("\\Seen" not in flags for flags, _ in before["INBOX"].values())

    mailbox = await ingest.add_mailbox(ingest.mailbox(owner))
    refused = await ingest.add_mailbox(ingest.mailbox(owner, password="wrong"))

    async with ingest.watched_worker() as spy:
        await eventually(
            lambda: ingest.caught_up(mailbox.id, spy, 4),
            what="backfill of INBOX and Sent",
            timeout=60,
        )

        async def refused_recorded() -> str | None:
            state = await ingest.state(refused.id)
            return state.status.reason if state.status.state == "error" else None

        reason = await eventually(refused_recorded, what="auth failure on the status")
        assert reason.startswith("authentication failed")

        live = build_message(sender=CLIENT, to=[owner.address], subject="Live", body="now")
        deliver(infra, live, [owner.address])
        await eventually(lambda: spy.at_least(5), what="live message", timeout=30)

    expected = {m["Message-ID"] for m in [*inbox, sent, live]}
    assert sorted(spy.message_ids()) == sorted(expected)
    by_id = {event.data.message_id: event.data for event in spy.events}
    assert by_id[sent["Message-ID"]].direction == "sent"
    assert by_id[sent["Message-ID"]].source is not None
    assert by_id[sent["Message-ID"]].source.folder_role == "sent"  # type: ignore[union-attr]
    assert by_id[live["Message-ID"]].direction == "received"
    assert by_id[live["Message-ID"]].subject == "Live"
    assert by_id[live["Message-ID"]].from_ is not None
    assert all(event.workspaceid == ingest.workspace_id for event in spy.events)
    for event in spy.events:
        raw = await store.raw_messages.find_one({"_id": event.data.raw_id})
        assert raw is not None

    state = await ingest.state(mailbox.id)
    inbox_checkpoint = state.folders["INBOX"]
    assert inbox_checkpoint.last_uid == max(snapshot(infra, owner, "INBOX"))
    assert inbox_checkpoint.backfill_floor is None
    assert (inbox_checkpoint.total, inbox_checkpoint.done) == (4, 4), "live mail counts too"
    assert state.folders["Sent"].last_uid == 1
    assert set(state.folders) == {"INBOX", "Sent"}
    assert state.status.last_synced_at is not None
    assert state.lease is None

    after = {folder: snapshot(infra, owner, folder) for folder in ("INBOX", "Sent")}
    assert after["Sent"] == before["Sent"]
    live_uid = max(after["INBOX"])
    assert {uid: item for uid, item in after["INBOX"].items() if uid != live_uid} == before["INBOX"]
    assert "\\Seen" not in after["INBOX"][live_uid][0]


def highest_modseq(infra: Infra, account: MailAccount, folder: str) -> int:
    """The folder's HIGHESTMODSEQ as the server reports it (STATUS, which changes nothing)."""
    client = imap_login(infra, account)
    try:
        _, answer = client.status(folder, "(HIGHESTMODSEQ)")
        match = re.search(rb"HIGHESTMODSEQ (\d+)", answer[0] or b"")
        assert match is not None, answer
        return int(match.group(1))
    finally:
        client.logout()


def flag_first_message(infra: Infra, account: MailAccount, folder: str) -> None:
    """What the user's own mail client does when they star a message."""
    client = imap_login(infra, account)
    try:
        client.select(folder)
        client.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
    finally:
        client.logout()


async def test_condstore_records_the_modseq_and_a_flag_change_publishes_nothing(
    ingest: IngestCase,
) -> None:
    seeded = await ingest.seeded_mailbox(2, CLIENT)
    owner, mailbox = seeded.owner, seeded.mailbox

    async def inbox_modseq() -> int | None:
        return (await ingest.state(mailbox.id)).folders["INBOX"].highest_modseq

    async with ingest.watched_worker(idle_refresh_seconds=1.0) as spy:
        await eventually(lambda: ingest.caught_up(mailbox.id, spy, 2), what="backfill")
        before = highest_modseq(ingest.infra, owner, "INBOX")
        assert await eventually(inbox_modseq, what="modseq checkpoint") == before

        flag_first_message(ingest.infra, owner, "INBOX")
        after = highest_modseq(ingest.infra, owner, "INBOX")
        assert after > before

        async def moved() -> bool:
            return await inbox_modseq() == after

        await eventually(moved, what="the checkpoint follows the flag change", timeout=30)
        assert len(spy.events) == 2, "a flag change is not new mail"

        live = build_message(sender=CLIENT, to=[owner.address], subject="Later", body="new")
        deliver(ingest.infra, live, [owner.address])
        await eventually(lambda: spy.at_least(3), what="new mail after the flag change")

    assert sorted(spy.message_ids()) == sorted([*seeded.sent_ids, live["Message-ID"]])


async def test_mail_arriving_after_a_disconnect_is_not_published(ingest: IngestCase) -> None:
    seeded = await ingest.seeded_mailbox(1, CLIENT)
    owner, mailbox = seeded.owner, seeded.mailbox

    # Leases renewed every 20 s: only the check before publishing can notice the disconnect.
    async with ingest.watched_worker(lease_seconds=60) as spy:
        await eventually(lambda: ingest.caught_up(mailbox.id, spy, 1), what="backfill")
        await ingest.store.mailboxes.update_one(  # what `POST .../disconnect` writes
            {"_id": mailbox.id}, {"$set": {"status.state": "disconnected", "lease": None}}
        )
        late = build_message(sender=CLIENT, to=[owner.address], subject="Late", body="after")
        deliver(ingest.infra, late, [owner.address])
        # IDLE reports new mail within about half a second; a live mailbox fetches it at once.
        await asyncio.sleep(4)

    assert spy.message_ids() == seeded.sent_ids
    state = await ingest.state(mailbox.id)
    assert state.status.state == "disconnected"
    assert state.folders["INBOX"].last_uid == 1, "the checkpoint did not move past the late mail"


async def test_a_mailbox_on_a_private_host_is_refused_unless_the_operator_allows_it(
    ingest: IngestCase,
) -> None:
    owner = create_account(ingest.infra, "acme.test", "owner")
    deliver(
        ingest.infra,
        build_message(sender=CLIENT, to=[owner.address], subject="Private", body="hi"),
        [owner.address],
    )
    mailbox = await ingest.add_mailbox(ingest.mailbox(owner))  # the loopback Dovecot

    async with ingest.spy() as spy, ingest.worker(ingest.settings(allow_private_hosts=False)):

        async def refused_recorded() -> str | None:
            state = await ingest.state(mailbox.id)
            return state.status.reason if state.status.state == "error" else None

        reason = await eventually(refused_recorded, what="the host refused on the status")

    assert reason.startswith("mail server address not allowed")
    assert "loopback" in reason
    assert spy.events == []
    assert (await ingest.state(mailbox.id)).folders == {}
