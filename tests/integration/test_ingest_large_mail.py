"""Ingest against real Dovecot, FerretDB and RabbitMQ: mail over MongoDB's 16 MiB document limit."""

import os

import pytest

from mailsync_shared.storage.raw_messages import load_raw
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
