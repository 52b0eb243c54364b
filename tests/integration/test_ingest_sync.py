"""Ingest against real Dovecot, FerretDB and RabbitMQ: backfill, live mail, read-only proof."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import WorkspaceStore
from tests.integration.conftest_ingest import (
    append,
    fetched_spy,
    mailbox_document,
    mailbox_state,
    running_worker,
    snapshot,
    worker_settings,
)
from tests.support.infra import Infra
from tests.support.mail import build_message, create_account, deliver
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

CLIENT = "ann@client.test"


async def test_backfill_then_live_mail_is_published_once_and_the_mailbox_is_untouched(
    infra: Infra,
    secret_key: str,
    mongo: AsyncDatabase[Document],
    store: WorkspaceStore,
    workspace_id: str,
) -> None:
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

    mailbox = mailbox_document(infra, secret_key, workspace_id, owner, backfill_days=30)
    await store.mailboxes.insert_one(mailbox.to_document())
    refused = mailbox_document(
        infra, secret_key, workspace_id, owner, backfill_days=30, password="wrong"
    )
    await store.mailboxes.insert_one(refused.to_document())
    settings = worker_settings(infra, secret_key, workspace_id)

    async with fetched_spy(infra, workspace_id) as spy, running_worker(settings, mongo):

        async def backfilled() -> bool:
            state = await mailbox_state(store, mailbox.id)
            return len(spy.events) >= 4 and state.status.state == "live"

        await eventually(backfilled, what="backfill of INBOX and Sent", timeout=60)

        async def refused_recorded() -> str | None:
            state = await mailbox_state(store, refused.id)
            return state.status.reason if state.status.state == "error" else None

        reason = await eventually(refused_recorded, what="auth failure on the status")
        assert reason.startswith("authentication failed")

        live = build_message(sender=CLIENT, to=[owner.address], subject="Live", body="now")
        deliver(infra, live, [owner.address])
        await eventually(lambda: _count_at_least(spy, 5), what="live message", timeout=30)

    expected = {m["Message-ID"] for m in [*inbox, sent, live]}
    assert sorted(spy.message_ids()) == sorted(expected)
    by_id = {event.data.message_id: event.data for event in spy.events}
    assert by_id[sent["Message-ID"]].direction == "sent"
    assert by_id[sent["Message-ID"]].source is not None
    assert by_id[sent["Message-ID"]].source.folder_role == "sent"  # type: ignore[union-attr]
    assert by_id[live["Message-ID"]].direction == "received"
    assert by_id[live["Message-ID"]].subject == "Live"
    assert by_id[live["Message-ID"]].from_ is not None
    assert all(event.workspaceid == workspace_id for event in spy.events)
    for event in spy.events:
        raw = await store.raw_messages.find_one({"_id": event.data.raw_id})
        assert raw is not None

    state = await mailbox_state(store, mailbox.id)
    inbox_checkpoint = state.folders["INBOX"]
    assert inbox_checkpoint.last_uid == max(snapshot(infra, owner, "INBOX"))
    assert inbox_checkpoint.backfill_floor is None
    assert (inbox_checkpoint.total, inbox_checkpoint.done) == (3, 3)
    assert state.folders["Sent"].last_uid == 1
    assert set(state.folders) == {"INBOX", "Sent"}
    assert state.status.last_synced_at is not None
    assert state.lease is None

    after = {folder: snapshot(infra, owner, folder) for folder in ("INBOX", "Sent")}
    assert after["Sent"] == before["Sent"]
    live_uid = max(after["INBOX"])
    assert {uid: item for uid, item in after["INBOX"].items() if uid != live_uid} == before["INBOX"]
    assert "\\Seen" not in after["INBOX"][live_uid][0]


async def _count_at_least(spy: Any, count: int) -> bool:
    return len(spy.events) >= count
