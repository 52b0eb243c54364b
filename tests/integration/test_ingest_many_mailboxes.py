"""160 mailboxes on one ingest worker: no checkpoint or sync state ever moves backwards.

Every mailbox holds mail in INBOX and in Sent when the worker starts; it backfills them all at
once while its leases are renewed every second (a three-second lease), then each mailbox gets
one message live. A watcher reads every mailbox document of the workspace over and over
meanwhile and checks, from each read to the next, that nothing went back: the sync state
(connecting, backfilling, live; back to connecting only as a reconnect that records its
failure), each folder's `last_uid`, `done`, `total` and UIDVALIDITY, a
floor that only falls and a finished backfill (floor None) that stays finished, and
`last_synced_at`. At the end every mailbox is live on that one worker with every folder
complete, and every message was published (and its publish confirmed, or the checkpoint
would not cover it) under one stable event id.

That needs a store that keeps every acknowledged write (docs/storage.md): FerretDB over
SQLite as shipped lets a lease renewal by `update_many` write stale copies over such
checkpoints, which leaves mailboxes backfilling for good and finished folders unfinished.
"""

import asyncio
import imaplib
import smtplib
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import AddressProof
from tests.integration.conftest_ingest import (  # noqa: F401  (fixtures register by name)
    IngestCase,
    ingest_fixture,
    ready,
    unique_published,
)
from tests.support.infra import Infra
from tests.support.mail import MailAccount, build_message, create_accounts, imap_login
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

MAILBOXES = 160
CLIENT = "nora@client.test"
LEASE_SECONDS = 3.0  # renewed every second: many renewals while the mailboxes sync
STATES = {"connecting": 0, "backfilling": 1, "live": 2}


@dataclass
class Progress:
    """What one read of a mailbox document says about how far its sync got."""

    state: str
    reason: str | None
    synced_at: datetime | None
    folders: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, document: Document) -> "Progress":
        status = document.get("status") or {}
        return cls(
            status.get("state", ""),
            status.get("reason"),
            status.get("last_synced_at"),
            document.get("folders") or {},
        )

    @property
    def summary(self) -> tuple[str, tuple[tuple[str, int], ...]]:
        return self.state, tuple(sorted((key, f["done"]) for key, f in self.folders.items()))

    def _state_went_back_from(self, earlier: "Progress") -> bool:
        if self.state not in STATES or STATES[self.state] >= STATES.get(earlier.state, -1):
            return False
        # Back to connecting is a reconnect, allowed only with the failure it reports.
        return self.state != "connecting" or self.reason is None

    def went_back_from(self, earlier: "Progress") -> list[str]:
        """Every way this read is behind the earlier one."""
        found = []
        if self._state_went_back_from(earlier):
            found.append(f"state {earlier.state} -> {self.state}")
        if earlier.synced_at is not None and (
            self.synced_at is None or self.synced_at < earlier.synced_at
        ):
            found.append(f"last_synced_at {earlier.synced_at} -> {self.synced_at}")
        for key, before in earlier.folders.items():
            now = self.folders.get(key)
            if now is None:
                found.append(f"folder {key} dropped")
                continue
            if now["uidvalidity"] != before["uidvalidity"]:
                found.append(f"{key}.uidvalidity {before['uidvalidity']} -> {now['uidvalidity']}")
            for counter in ("last_uid", "done", "total"):
                if now[counter] < before[counter]:
                    found.append(f"{key}.{counter} {before[counter]} -> {now[counter]}")
            # The floor falls as older mail is published; None (complete) is the bottom.
            if (now["backfill_floor"] or 0) > (before["backfill_floor"] or 0):
                found.append(
                    f"{key}.backfill_floor {before['backfill_floor']} -> {now['backfill_floor']}"
                )
        return found


@dataclass
class Watch:
    """Reads the workspace's mailboxes and the workers' heartbeats until stopped."""

    db: AsyncDatabase[Document]
    workspace_id: str
    reads: int = 0
    reads_mid_sync: int = 0
    latest: dict[str, Progress] = field(default_factory=dict)
    backwards: list[str] = field(default_factory=list)
    heartbeats: dict[str, set[datetime]] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            async for document in self.db["mailboxes"].find(
                {"workspace_id": self.workspace_id}, {"status": 1, "folders": 1}
            ):
                now = Progress.of(document)
                earlier = self.latest.get(document["_id"])
                if earlier is not None:
                    self.backwards += [
                        f"{document['_id']}: {step}" for step in now.went_back_from(earlier)
                    ]
                self.latest[document["_id"]] = now
            async for worker in self.db["ingest_workers"].find({}, {"leases_until": 1}):
                if worker.get("leases_until") is not None:
                    self.heartbeats.setdefault(worker["_id"], set()).add(worker["leases_until"])
            self.reads += 1
            if len({progress.summary for progress in self.latest.values()}) > 1:
                self.reads_mid_sync += 1  # some mailboxes further on than others
            await asyncio.sleep(0.5)

    def complete(self, inbox: int) -> bool:
        """Every mailbox live, with `inbox` messages done in INBOX and the one in Sent."""
        done = {"INBOX": (inbox, inbox, None), "Sent": (1, 1, None)}
        return len(self.latest) == MAILBOXES and all(
            progress.state == "live"
            and {
                key: (folder["done"], folder["last_uid"], folder["backfill_floor"])
                for key, folder in progress.folders.items()
            }
            == done
            for progress in self.latest.values()
        )


def fill(infra: Infra, owners: list[MailAccount]) -> set[str]:
    """A message into each INBOX and one into each Sent; their Message-IDs."""
    sent: set[str] = set()
    with smtplib.LMTP(infra.imap_host, infra.lmtp_port) as lmtp:
        for owner in owners:
            mail = build_message(sender=CLIENT, to=[owner.address], subject="Order", body="Hi\n")
            lmtp.send_message(mail, to_addrs=[owner.address])
            sent.add(str(mail["Message-ID"]))
    for owner in owners:
        reply = build_message(sender=owner.address, to=[CLIENT], subject="Re: Order", body="Ok\n")
        client = imap_login(infra, owner)
        try:
            moment = imaplib.Time2Internaldate(time.time())
            client.append("Sent", r"(\Seen)", moment, reply.as_bytes())
        finally:
            client.logout()
        sent.add(str(reply["Message-ID"]))
    return sent


def deliver_live(infra: Infra, owners: list[MailAccount]) -> set[str]:
    sent: set[str] = set()
    with smtplib.LMTP(infra.imap_host, infra.lmtp_port) as lmtp:
        for owner in owners:
            mail = build_message(sender=CLIENT, to=[owner.address], subject="Invoice", body="Hi\n")
            lmtp.send_message(mail, to_addrs=[owner.address])
            sent.add(str(mail["Message-ID"]))
    return sent


async def test_checkpoints_and_states_of_160_mailboxes_on_one_worker_never_move_backwards(
    ingest: IngestCase, tmp_path: Path
) -> None:
    owners = await asyncio.to_thread(create_accounts, ingest.infra, "acme.test", MAILBOXES, "many")
    expected = await asyncio.to_thread(fill, ingest.infra, owners)
    mailboxes = [
        ingest.mailbox(owner).model_copy(update={"address_proof": AddressProof(method="login")})
        for owner in owners
    ]
    await ingest.mongo["mailboxes"].insert_many([mailbox.to_document() for mailbox in mailboxes])
    worker_id = f"many-{ingest.workspace_id[-6:]}"
    watch = Watch(ingest.mongo, ingest.workspace_id)
    stop = asyncio.Event()
    watching = asyncio.create_task(watch.run(stop))
    try:
        async with ingest.spy() as spy:
            with ingest.process(
                tmp_path / "ingest.log",
                worker_id=worker_id,
                lease_seconds=str(LEASE_SECONDS),
                max_mailboxes=str(2 * MAILBOXES),
                claim_interval_seconds="0.3",
            ) as (_, port):
                await eventually(lambda: ready(port), what="the worker ready", timeout=30)

                async def backfilled() -> bool:
                    return watch.complete(inbox=1)

                await eventually(backfilled, what="every mailbox backfilled and live", timeout=180)
                expected |= await asyncio.to_thread(deliver_live, ingest.infra, owners)

                async def caught_up() -> bool:
                    return watch.complete(inbox=2)

                await eventually(caught_up, what="the live message in every INBOX", timeout=90)
                holders = await ingest.mongo["mailboxes"].distinct(
                    "lease.owner", {"workspace_id": ingest.workspace_id}
                )
            await eventually(
                lambda: spy.at_least(len(expected)), what="every message published", timeout=30
            )
    finally:
        stop.set()
        await watching

    assert watch.backwards == []
    published = unique_published(spy)
    assert sorted(event.data.message_id for event in published.values()) == sorted(expected)
    assert holders == [worker_id]
    # The watch read while the sync was under way, and the worker's heartbeat was renewed many
    # times meanwhile.
    assert watch.reads_mid_sync >= 5, (watch.reads_mid_sync, watch.reads)
    assert len(watch.heartbeats.get(worker_id, ())) >= 5, watch.heartbeats
