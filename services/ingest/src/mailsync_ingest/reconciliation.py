"""Reconciliation: the server's messages per folder against what was logged, so that nothing
goes missing silently.

For each synced folder, the server's UIDs inside the backfill window and up to the folder's
checkpoint (`last_uid`: everything below it counts as done) are compared with the UIDs on
logged messages (`MessageDocument.sources` of this mailbox, folder and UIDVALIDITY). A UID on
the server and on no logged message is missing. Mail published but not yet logged by associate
shows as missing until associate catches up, so a gap is worth a look when it persists; mail
that a client-only mailbox skipped on purpose is counted by associate per mailbox and taken
off the missing count. Mail recorded as not stored (`mailsync_shared.storage.unstored_mail`:
over the size limit, or refused by the store) is accounted for, listed on the mailbox's status
with its reason, and not missing.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailsync_shared.association.scope import skipped_unmatched
from mailsync_shared.storage.documents import FolderCheckpoint, FolderGap
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.storage.unstored_mail import unstored_uids


@dataclass(frozen=True)
class FolderTally:
    checkpoint: FolderCheckpoint
    server_uids: frozenset[int]
    logged_uids: frozenset[int]

    @property
    def missing(self) -> int:
        return len(self.server_uids - self.logged_uids)


async def logged_uids(
    store: WorkspaceStore, mailbox_id: str, checkpoint: FolderCheckpoint
) -> set[int]:
    """UIDs of this folder copy (mailbox, folder, UIDVALIDITY) found on logged messages, or
    recorded as not stored."""
    wanted = {
        "mailbox_id": mailbox_id,
        "folder": checkpoint.name,
        "uidvalidity": checkpoint.uidvalidity,
    }
    found: set[int] = set()
    # Dotted paths, not $elemMatch (FerretDB v1 lacks it); the element match is checked below.
    query = {f"sources.{key}": value for key, value in wanted.items()}
    async for document in store.messages.iterate(query, projection={"sources": 1}):
        for source in document.get("sources") or []:
            if all(source.get(key) == value for key, value in wanted.items()):
                found.add(int(source["uid"]))
    return found | await unstored_uids(store, mailbox_id, checkpoint.name, checkpoint.uidvalidity)


def gaps(tallies: Iterable[FolderTally], skipped: int = 0) -> list[FolderGap]:
    """Folders with missing mail, after taking mail skipped on purpose off the total."""
    result: list[FolderGap] = []
    for tally in tallies:
        server = len(tally.server_uids)
        logged = len(tally.server_uids & tally.logged_uids)
        missing = server - logged
        excused = min(missing, skipped)
        skipped -= excused
        missing -= excused
        if missing > 0:
            result.append(
                FolderGap(
                    folder=tally.checkpoint.name, server=server, logged=logged, missing=missing
                )
            )
    return result


async def skipped_count(store: WorkspaceStore, mailbox_id: str, scope: str) -> int:
    return await skipped_unmatched(store, mailbox_id) if scope == "client_only" else 0


def up_to_checkpoint(uids: Sequence[int], checkpoint: FolderCheckpoint) -> frozenset[int]:
    """Server UIDs the checkpoint claims as done: up to `last_uid`, and during a backfill
    only those at or above the floor."""
    floor = checkpoint.backfill_floor or 0
    return frozenset(uid for uid in uids if floor <= uid <= checkpoint.last_uid)
