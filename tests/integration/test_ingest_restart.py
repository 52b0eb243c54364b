"""`python -m mailsync_ingest` stopped and started again carries on from its checkpoints."""

import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.conftest_ingest import (  # noqa: F401  (fixtures register by name)
    IngestCase,
    append,
    ingest_fixture,
    ready,
)
from tests.support.mail import build_message, create_account, deliver
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

CLIENT = "bob@client.test"


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM; uvicorn shuts the app down gracefully, then re-raises the signal."""
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


async def test_restart_publishes_only_mail_that_arrived_meanwhile(
    ingest: IngestCase, tmp_path: Path
) -> None:
    infra, store = ingest.infra, ingest.store
    owner = create_account(infra, "acme.test", "owner")
    earlier = build_message(sender=CLIENT, to=[owner.address], subject="Before", body="old")
    append(infra, owner, "INBOX", earlier, when=datetime.now(UTC) - timedelta(minutes=10))
    mailbox = await ingest.add_mailbox(ingest.mailbox(owner, backfill_days=None))
    log = tmp_path / "ingest.log"

    async def inbox_checkpoint() -> int:
        folders = (await ingest.state(mailbox.id)).folders
        return folders["INBOX"].last_uid if "INBOX" in folders else 0

    async with ingest.spy() as spy:
        first = [
            build_message(sender=CLIENT, to=[owner.address], subject=f"First {n}", body="a")
            for n in range(2)
        ]
        with ingest.process(log) as (process, port):
            await eventually(lambda: ready(port), what="ingest ready", timeout=30)
            for item in first:
                deliver(infra, item, [owner.address])

            async def first_published() -> bool:
                return len(spy.events) >= 2 and await inbox_checkpoint() == 3

            await eventually(first_published, what="first messages and checkpoint", timeout=30)
            assert stop(process) in (0, -signal.SIGTERM)

        document = await store.mailboxes.find_one({"_id": mailbox.id})
        assert document is not None
        assert document["lease"] is None

        second = [
            build_message(sender=CLIENT, to=[owner.address], subject=f"Second {n}", body="b")
            for n in range(2)
        ]
        for item in second:
            deliver(infra, item, [owner.address])
        with ingest.process(log) as (process, port):

            async def second_published() -> bool:
                return len(spy.events) >= 4 and await inbox_checkpoint() == 5

            await eventually(second_published, what="only the new messages", timeout=30)
            assert stop(process) in (0, -signal.SIGTERM)

    assert len(spy.events) == 4
    assert sorted(spy.message_ids()) == sorted(m["Message-ID"] for m in [*first, *second])
    output = log.read_text()
    assert owner.password not in output
    assert '"mailbox_id"' in output
    assert output.count('"message": "ingest worker stopped"') == 2
