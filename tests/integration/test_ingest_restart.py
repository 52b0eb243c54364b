"""`python -m mailsync_ingest` stopped and started again carries on from its checkpoints."""

import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailsync_shared.storage.documents import MailboxDocument
from mailsync_shared.storage.scoped import WorkspaceStore
from tests.integration.conftest_ingest import (
    append,
    fetched_spy,
    ingest_process,
    mailbox_document,
    ready,
)
from tests.support.infra import Infra
from tests.support.mail import build_message, create_account, deliver
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

CLIENT = "bob@client.test"


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM; uvicorn shuts the app down gracefully, then re-raises the signal."""
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


async def test_restart_publishes_only_mail_that_arrived_meanwhile(
    infra: Infra,
    service_env: dict[str, str],
    secret_key: str,
    store: WorkspaceStore,
    workspace_id: str,
    tmp_path: Path,
) -> None:
    owner = create_account(infra, "acme.test", "owner")
    earlier = build_message(sender=CLIENT, to=[owner.address], subject="Before", body="old")
    append(infra, owner, "INBOX", earlier, when=datetime.now(UTC) - timedelta(minutes=10))
    mailbox = mailbox_document(infra, secret_key, workspace_id, owner, backfill_days=None)
    await store.mailboxes.insert_one(mailbox.to_document())
    log = tmp_path / "ingest.log"

    async def inbox_checkpoint() -> int:
        document = await store.mailboxes.find_one({"_id": mailbox.id})
        assert document is not None
        folders = MailboxDocument.from_document(document).folders
        return folders["INBOX"].last_uid if "INBOX" in folders else 0

    async with fetched_spy(infra, workspace_id) as spy:
        first = [
            build_message(sender=CLIENT, to=[owner.address], subject=f"First {n}", body="a")
            for n in range(2)
        ]
        with ingest_process(service_env, workspace_id, log) as (process, port):
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
        with ingest_process(service_env, workspace_id, log) as (process, port):

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
