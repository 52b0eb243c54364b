"""Ingest against real Dovecot: a message without Message-ID keeps one identity."""

from collections import Counter

import pytest

from tests.integration.conftest_ingest import (  # noqa: F401  (fixtures register by name)
    IngestCase,
    append,
    ingest_fixture,
)
from tests.support.mail import build_message, create_account, deliver
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


async def test_the_same_message_delivered_and_appended_has_one_message_id(
    ingest: IngestCase,
) -> None:
    owner = create_account(ingest.infra, "acme.test", "owner")
    message = build_message(
        sender="ann@client.test", to=[owner.address], subject="No id", body="same body"
    )
    del message["Message-ID"]
    deliver(ingest.infra, message, [owner.address])
    message["Received"] = "from relay.client.test by mx.acme.test; Mon, 1 Jan 2024 10:00:00 +0000"
    append(ingest.infra, owner, "INBOX", message)
    other = build_message(
        sender="ann@client.test", to=[owner.address], subject="No id", body="another body"
    )
    del other["Message-ID"]
    deliver(ingest.infra, other, [owner.address])
    mailbox = await ingest.add_mailbox(ingest.mailbox(owner))

    async with ingest.watched_worker() as spy:
        await eventually(lambda: ingest.caught_up(mailbox.id, spy, 3), what="three copies")

    raw_ids = {event.data.raw_id for event in spy.events}
    ids = spy.message_ids()
    assert len(raw_ids) == 3, "the stored bytes differ"
    assert sorted(Counter(ids).values()) == [1, 2]
