"""Ingest against real Dovecot, FerretDB and RabbitMQ: backfill, live mail, read-only proof."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.conftest_ingest import (  # noqa: F401  (fixtures register by name)
    IngestCase,
    append,
    ingest_fixture,
    snapshot,
)
from tests.support.mail import build_message, create_account, deliver
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
