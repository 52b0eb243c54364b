"""Writes to one leased mailbox document: status, progress and folder checkpoints.

Every write is guarded by the lease (`lease.owner` is this worker) and by the mailbox still
being connected, so a worker that lost its lease can never move a checkpoint backwards or
overwrite a disconnect; such a write raises `LeaseLostError` and the sync stops. The same is
checked before each fetched batch is published (`check_still_ours`), so mail that arrives
after a disconnect is not logged.
"""

from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from mailsync_ingest.folders import folder_key
from mailsync_shared.clock import utcnow
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import (
    OUT_OF_SERVICE,
    FolderCheckpoint,
    FolderGap,
    MailboxState,
)
from mailsync_shared.storage.ferretdb import retry_locked

# `last_synced_at` of a quiet mailbox is refreshed this often: a write per mailbox per
# interval is the steady load a worker puts on the store.
SYNCED_AT_EVERY = timedelta(seconds=300)


class LeaseLostError(Exception):
    """Another worker holds the mailbox now, or it was disconnected."""


class MailboxRecord:
    def __init__(
        self,
        mailboxes: AsyncCollection[Document],
        *,
        workspace_id: str,
        mailbox_id: str,
        worker_id: str,
    ) -> None:
        self._mailboxes = mailboxes
        self._guard: Document = {
            "_id": mailbox_id,
            "workspace_id": workspace_id,
            "lease.owner": worker_id,
            "status.state": {"$nin": list(OUT_OF_SERVICE)},
        }
        self._staged: dict[str, Any] = {}
        self._state: MailboxState | None = None
        self._reason: str | None = None
        self._synced_written_at: datetime | None = None

    @property
    def state(self) -> MailboxState:
        """The state last recorded (or staged); `connecting` before the first."""
        return self._state or "connecting"

    async def _update(self, fields: dict[str, Any]) -> None:
        """Write `fields` with whatever was staged, in one guarded update."""
        merged = {**self._staged, **fields}
        result = await retry_locked(
            lambda: self._mailboxes.update_one(self._guard, {"$set": merged})
        )
        if result.matched_count == 0:
            raise LeaseLostError(str(self._guard["_id"]))
        self._staged = {}

    async def flush(self) -> None:
        """Write what was staged, if anything."""
        if self._staged:
            await self._update({})

    def _stage(self, fields: dict[str, Any]) -> None:
        """Keep `fields` for the next write: a mailbox that connects and is live at once costs
        one write, which at a thousand mailboxes per worker decides how soon all are live."""
        self._staged.update(fields)

    async def check_still_ours(self) -> None:
        """Raise `LeaseLostError` unless the mailbox is still leased here and connected."""
        if await self._mailboxes.find_one(self._guard, projection={"_id": 1}) is None:
            raise LeaseLostError(str(self._guard["_id"]))

    async def set_status(
        self, state: MailboxState, reason: str | None = None, *, staged: bool = False
    ) -> None:
        """Record the sync state; repeated identical states are not written again. A staged
        state is written with the next write (or replaced by the next state)."""
        if (state, reason) == (self._state, self._reason):
            return
        now = utcnow()
        fields: dict[str, Any] = {
            "status.state": state,
            "status.reason": reason,
            "status.updated_at": now,
        }
        if state == "live":
            fields["status.last_synced_at"] = now
            self._synced_written_at = now
        if staged:
            self._stage(fields)
        else:
            await self._update(fields)
        self._state, self._reason = state, reason

    async def mark_synced(self, *, changed: bool) -> None:
        """Record a completed sync round (at most every `SYNCED_AT_EVERY` unless mail moved)."""
        now = utcnow()
        recent = self._synced_written_at and now - self._synced_written_at < SYNCED_AT_EVERY
        if recent and not changed and not self._staged:
            return
        await self._update({"status.last_synced_at": now})
        self._synced_written_at = now

    async def set_gaps(self, gaps: list[FolderGap]) -> None:
        """Record the outcome of a reconciliation."""
        await self._update(
            {
                "status.gaps": [gap.model_dump(mode="python") for gap in gaps],
                "status.reconciled_at": utcnow(),
            }
        )

    async def clear_reconcile_request(self, requested: datetime) -> None:
        """Mark the request answered, unless a newer one came in meanwhile."""
        await self._mailboxes.update_one(
            {**self._guard, "reconcile_requested_at": requested},
            {"$set": {"reconcile_requested_at": None}},
        )

    async def save_folder(self, checkpoint: FolderCheckpoint, *, staged: bool = False) -> None:
        """Write the folder's checkpoint (staged: with the next write; a crash before it only
        repeats the folder's planning)."""
        fields = {f"folders.{folder_key(checkpoint.name)}": checkpoint.model_dump(mode="python")}
        if staged:
            self._stage(fields)
        else:
            await self._update(fields)
