"""The store round trips of capturing a batch, counted on an in-memory store: the batch's
reads happen once, whatever its size; each new contact costs its insert; the decisions are
one write. Each count is taken in a workspace and database of its own, so no cache kept
between batches (mailbox directory, document owners) makes one count cheaper than another."""

import uuid
from typing import Any

from mailsync_capture.batch_capture import BatchCapture, stored_workspaces
from mailsync_shared.capture_policy.rules import free_mail_domains
from mailsync_shared.storage.scoped import WorkspaceStore
from tests.support.memory_store import MemoryDatabase
from tests.unit.capture.memory import MemoryPublisher
from tests.unit.capture.test_batch_capture import MAILBOX, OWNER, fetched


async def seeded(workspace_id: str) -> MemoryDatabase:
    db = MemoryDatabase(f"db-{workspace_id}")
    store = WorkspaceStore(db.as_database(), workspace_id)
    await store.collection("capture_rules").insert_one({"_id": workspace_id, "policy": "sent"})
    await store.mailboxes.insert_one(
        {"_id": MAILBOX, "address": OWNER, "visibility": "workspace", "status": {"state": "live"}}
    )
    await db["workspaces"].insert_one({"_id": workspace_id, "domains": ["acme.test"]})
    return db


async def round_trips(messages: int, recipients: list[dict[str, Any]]) -> int:
    workspace_id = f"ws-{uuid.uuid4().hex}"
    db = await seeded(workspace_id)
    before = sum(c.operations for c in db.collections.values())
    capture = BatchCapture(
        stored_workspaces(db.as_database()), MemoryPublisher(), free_mail_domains()
    )

    events = [
        fetched(to=recipients).model_copy(update={"workspaceid": workspace_id})
        for _ in range(messages)
    ]
    outcomes = await capture.capture(workspace_id, events)

    assert outcomes == [None] * messages
    return sum(c.operations for c in db.collections.values()) - before


async def test_a_batch_reads_once_whatever_its_size() -> None:
    known = [{"address": "ann@client.test"}]
    one = await round_trips(1, known)
    many = await round_trips(50, known)

    assert many == one, "fifty messages to one address cost what one does"


async def test_each_new_contact_costs_one_insert() -> None:
    one = await round_trips(1, [{"address": "ann@client.test"}])
    three = await round_trips(1, [{"address": f"p{n}@client.test"} for n in range(3)])

    assert three == one + 2
