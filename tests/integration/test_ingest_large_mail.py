"""Ingest against real Dovecot, FerretDB and RabbitMQ: mail over MongoDB's 16 MiB document limit,
and mail over `max_message_bytes`."""

import os
from email.message import EmailMessage

import pytest

from mailsync_shared.storage.raw_messages import load_raw
from mailsync_shared.storage.unstored_mail import unstored_mail
from tests.integration.conftest_ingest import (  # noqa: F401  (fixtures register by name)
    IngestCase,
    ingest_fixture,
)
from tests.support.mail import build_message, create_account, deliver
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

CLIENT = "ann@client.test"


async def test_a_20_mib_message_is_stored_and_logged_and_the_folder_moves_on(
    ingest: IngestCase,
) -> None:
    owner = create_account(ingest.infra, "acme.test", "owner")
    large = build_message(sender=CLIENT, to=[owner.address], subject="Scans", body="attached")
    large.add_attachment(os.urandom(15 * 1024 * 1024), maintype="application", subtype="pdf")
    small = build_message(sender=CLIENT, to=[owner.address], subject="After", body="next")
    deliver(ingest.infra, large, [owner.address])
    deliver(ingest.infra, small, [owner.address])
    mailbox = await ingest.add_mailbox(ingest.mailbox(owner))

    async with ingest.watched_worker() as spy:
        await eventually(
            lambda: ingest.caught_up(mailbox.id, spy, 2), what="both messages", timeout=120
        )

    by_subject = {event.data.subject: event.data for event in spy.events}
    assert set(by_subject) == {"Scans", "After"}
    stored = by_subject["Scans"]
    assert stored.size > 20 * 1024 * 1024
    raw = await load_raw(ingest.store, stored.raw_id)
    assert raw is not None
    assert len(raw) == stored.size
    assert b"Subject: Scans" in raw[:4096]
    assert raw.rstrip().endswith(b"--")  # the closing MIME boundary: nothing was cut
    assert stored.defects == []


async def test_a_burst_of_large_messages_waits_for_the_byte_budget_instead_of_piling_up(
    ingest: IngestCase,
) -> None:
    owner = create_account(ingest.infra, "acme.test", "owner")

    def large(subject: str) -> EmailMessage:
        mail = build_message(sender=CLIENT, to=[owner.address], subject=subject, body="see pdf")
        mail.add_attachment(os.urandom(300 * 1024), maintype="application", subtype="pdf")
        return mail

    for index in range(6):
        deliver(ingest.infra, large(f"Old {index}"), [owner.address])
    mailbox = await ingest.add_mailbox(ingest.mailbox(owner))
    limit = 512 * 1024  # one ~400 KiB message fits, the fetch ahead of a second must wait
    settings = ingest.settings(max_bytes_in_flight=limit)

    async with ingest.spy() as spy, ingest.worker(settings) as worker:
        await eventually(lambda: ingest.caught_up(mailbox.id, spy, 6), what="backfill", timeout=60)
        for index in range(6):
            deliver(ingest.infra, large(f"New {index}"), [owner.address])
        await eventually(lambda: ingest.caught_up(mailbox.id, spy, 12), what="burst", timeout=60)
        budget = worker.budget

    assert {event.data.subject for event in spy.events} == {
        *(f"Old {i}" for i in range(6)),
        *(f"New {i}" for i in range(6)),
    }
    assert budget.peak <= limit
    assert budget.peak > 300 * 1024
    assert budget.waits >= 5, "fetching never waited for the budget"
    assert budget.in_flight == 0


async def test_a_60_mib_message_is_recorded_as_not_stored_and_the_folder_moves_on(
    ingest: IngestCase,
) -> None:
    owner = create_account(ingest.infra, "acme.test", "owner")
    before = build_message(sender=CLIENT, to=[owner.address], subject="Before", body="first")
    huge = build_message(sender=CLIENT, to=[owner.address], subject="Archive", body="attached")
    huge.add_attachment(os.urandom(45 * 1024 * 1024), maintype="application", subtype="zip")
    after = build_message(sender=CLIENT, to=[owner.address], subject="After", body="next")
    for message in (before, huge, after):
        deliver(ingest.infra, message, [owner.address])
    mailbox = await ingest.add_mailbox(ingest.mailbox(owner))

    async with ingest.spy() as spy, ingest.worker(ingest.settings()) as worker:
        await eventually(
            lambda: ingest.caught_up(mailbox.id, spy, 2), what="the other two", timeout=180
        )
        budget = worker.budget

    assert {event.data.subject for event in spy.events} == {"Before", "After"}
    assert budget.peak < 1024 * 1024, "the message over the limit was fetched"
    total, entries = await unstored_mail(ingest.store, mailbox.id)
    assert total == 1
    [entry] = entries
    assert entry.reason == "too_large"
    assert entry.size > 60 * 1024 * 1024
    assert "max_message_bytes" in entry.detail
    state = await ingest.state(mailbox.id)
    assert entry.uid in range(1, state.folders["INBOX"].last_uid + 1)
    assert await ingest.store.raw_messages.count({"size": {"$gt": 50 * 1024 * 1024}}) == 0
