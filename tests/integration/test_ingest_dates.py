"""Ingest against real Dovecot: a Date far after INTERNALDATE, or before 1980, is replaced by
INTERNALDATE and recorded as a defect; a plausible Date is kept."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.conftest_ingest import (  # noqa: F401  (fixtures register by name)
    IngestCase,
    append,
    ingest_fixture,
)
from tests.support.mail import build_message, create_account
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


async def test_out_of_range_dates_are_replaced_by_internaldate_and_recorded(
    ingest: IngestCase,
) -> None:
    owner = create_account(ingest.infra, "acme.test", "owner")
    arrived = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
    dates = {
        "Far future": "Mon, 01 Jan 3609 09:00:00 +0000",
        "Before 1980": "Tue, 01 Jan 1979 09:00:00 +0000",
        "Two days ahead": (arrived + timedelta(days=2)).strftime("%a, %d %b %Y %H:%M:%S +0000"),
        "Sent an hour before": (arrived - timedelta(hours=1)).strftime(
            "%a, %d %b %Y %H:%M:%S +0000"
        ),
    }
    for subject, date in dates.items():
        message = build_message(
            sender="ann@client.test", to=[owner.address], subject=subject, body="dated"
        )
        message.replace_header("Date", date)
        append(ingest.infra, owner, "INBOX", message, when=arrived)
    mailbox = await ingest.add_mailbox(ingest.mailbox(owner))

    async with ingest.watched_worker() as spy:
        await eventually(lambda: ingest.caught_up(mailbox.id, spy, 4), what="four messages")

    logged = {event.data.subject: event.data for event in spy.events}
    for subject in ("Far future", "Before 1980", "Two days ahead"):
        assert logged[subject].date == arrived, subject
        assert logged[subject].defects == ["date_out_of_range"], subject
    kept = logged["Sent an hour before"]
    assert kept.date == arrived - timedelta(hours=1)
    assert kept.defects == []
