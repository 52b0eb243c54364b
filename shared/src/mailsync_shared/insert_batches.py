"""Single-document inserts of concurrent sends, written together (group commit).

The store writes one command at a time, and a command costs about the same for one document as
for dozens. So the single-document inserts of the sends in flight (a request, its raw bytes,
its claim) are gathered per collection and workspace (`mailsync_shared.batching.Batcher`): one
unordered `insert_many` goes out at a time, and the inserts that arrive meanwhile go in the
next. A lone insert goes out at once; under load the batches grow by themselves.

Each insert still learns its own outcome: written, refused because its `_id` is taken (a unique
`_id` is what exactly-once decisions rest on), or the error that stopped it. An insert the
store refused while busy (`database is locked`) was not written and is tried again.
"""

import asyncio
from collections.abc import Sequence
from typing import Any

from pymongo.errors import BulkWriteError, OperationFailure

from mailsync_shared.batching import Batcher
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.ferretdb import LOCKED_RETRIES, is_locked, measures, retry_locked
from mailsync_shared.storage.scoped import WorkspaceCollection

DUPLICATE_KEY = 11000

_Insert = tuple[WorkspaceCollection, Document]


class InsertBatches:
    """Gathers single-document inserts per collection and workspace."""

    def __init__(self, *, max_size: int = 200) -> None:
        self._batcher: Batcher[_Insert, bool] = Batcher(self._write, max_size=max_size)

    async def insert(self, collection: WorkspaceCollection, document: Document) -> bool:
        """Insert `document`; False if its `_id` is taken."""
        key = f"{collection.name}\x1f{collection.workspace_id}"
        return await self._batcher.submit(key, (collection, document))

    async def _write(self, _key: str, items: Sequence[_Insert]) -> list[bool | BaseException]:
        collection = items[0][0]
        outcomes: list[bool | BaseException | None] = [None] * len(items)
        todo = list(range(len(items)))
        attempts = LOCKED_RETRIES if measures().retry_when_locked else 1
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(0.02 * 2**attempt)
            todo = await _insert(collection, items, todo, outcomes, last=attempt == attempts - 1)
            if not todo:
                break
        return [True if outcome is None else outcome for outcome in outcomes]


async def _insert(
    collection: WorkspaceCollection,
    items: Sequence[_Insert],
    todo: list[int],
    outcomes: list[bool | BaseException | None],
    *,
    last: bool,
) -> list[int]:
    """Insert the items at `todo`, setting their outcomes; those to try again."""
    documents = [items[index][1] for index in todo]
    errors: dict[int, dict[str, Any]] = {}
    try:
        await retry_locked(lambda: collection.insert_many(documents, ordered=False))
    except BulkWriteError as error:
        if error.details.get("writeConcernErrors"):
            raise
        errors = {int(e["index"]): e for e in error.details.get("writeErrors", [])}
    again = []
    for position, index in enumerate(todo):
        failure = errors.get(position)
        if failure is None:
            outcomes[index] = True
        elif failure.get("code") == DUPLICATE_KEY:
            outcomes[index] = False
        else:
            refusal = OperationFailure(
                str(failure.get("errmsg", "insert failed")), failure.get("code")
            )
            if is_locked(refusal) and not last:
                again.append(index)  # not written: the store was busy
            else:
                outcomes[index] = refusal
    return again
