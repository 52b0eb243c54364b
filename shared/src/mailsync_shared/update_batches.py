"""Single-document updates by `_id` of concurrent sends, written together (group commit).

As with `insert_batches`: the store writes one command at a time, and a command costs about
the same for one statement as for a few. So the `$set` updates of the sends in flight (each
request recorded `sent`) are gathered per collection and workspace (`Batcher`): one bulk write
of single-document updates, each by `_id` alone (`WorkspaceCollection.update_each`), goes out
at a time, and the updates that arrive meanwhile go in the next. A lone update goes out at
once. A write the store refused while busy (`database is locked`) is tried again: each update
sets fields to values, so applying one twice changes nothing.

Only for writes whose writer is the one writer of the document at that moment (a send
request's claim holder) and which need not learn whether a document matched.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from mailsync_shared.batching import Batcher
from mailsync_shared.storage.ferretdb import retry_locked
from mailsync_shared.storage.scoped import WorkspaceCollection

_Update = tuple[WorkspaceCollection, str, Mapping[str, Any]]


class UpdateBatches:
    """Gathers single-document `$set` updates by `_id`, per collection and workspace."""

    def __init__(self, *, max_size: int = 200) -> None:
        self._batcher: Batcher[_Update, None] = Batcher(self._write, max_size=max_size)

    async def set_fields(
        self, collection: WorkspaceCollection, document_id: str, fields: Mapping[str, Any]
    ) -> None:
        """Set `fields` on the document with this `_id` (written with others' updates)."""
        key = f"{collection.name}\x1f{collection.workspace_id}"
        await self._batcher.submit(key, (collection, document_id, fields))

    @staticmethod
    async def _write(_key: str, items: Sequence[_Update]) -> list[None]:
        collection = items[0][0]
        updates = [
            ({"_id": document_id}, {"$set": dict(fields)}) for _, document_id, fields in items
        ]
        await retry_locked(lambda: collection.update_each(updates))
        return [None] * len(items)
