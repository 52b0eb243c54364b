"""How often the api changed what other processes keep of a workspace's mailboxes.

One small document per workspace counts the changes of each kind, so a process that keeps
copies of mailbox documents learns of a change with one read by `_id` instead of reading
every mailbox document again (the largest documents the store holds; a thousand of them cost
FerretDB 0.3-0.4 s to read):

- `directory`: a mailbox connected, a sync scope changed (capture's and associate's
  `MailboxDirectory`);
- `controls`: a resync, reconciliation, disconnect, erase or approval asked for (ingest's
  lease renewal, which then reads the documents of that workspace's mailboxes it holds).

A change is counted after it was written; readers read the count before the documents.
"""

from collections.abc import Collection
from typing import Literal

from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import WorkspaceStore

COLLECTION = "mailbox_changes"
ChangeKind = Literal["directory", "controls"]


async def count_change(store: WorkspaceStore, kind: ChangeKind) -> None:
    """Count a change of `kind` to the workspace's mailboxes, once it is written."""
    await store.collection(COLLECTION).update_one(
        {"_id": store.workspace_id}, {"$inc": {kind: 1}}, upsert=True
    )


async def change_count(store: WorkspaceStore, kind: ChangeKind) -> int:
    found = await store.collection(COLLECTION).find_one({"_id": store.workspace_id})
    return int((found or {}).get(kind, 0))


async def change_counts(
    db: AsyncDatabase[Document], workspace_ids: Collection[str], kind: ChangeKind
) -> dict[str, int]:
    """The counts of several workspaces at once (for ingest, whose mailboxes span workspaces);
    a workspace never changed counts 0."""
    counts = dict.fromkeys(workspace_ids, 0)
    if counts:
        async for found in db[COLLECTION].find(
            {"_id": {"$in": sorted(counts)}}, projection={kind: 1}
        ):
            counts[str(found["_id"])] = int(found.get(kind, 0))
    return counts
