"""Updates of concurrent sends written together: each lands, a busy store's refusal is retried."""

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, cast

from pymongo.errors import OperationFailure

from mailsync_shared.storage.scoped import WorkspaceCollection
from mailsync_shared.update_batches import UpdateBatches


class FakeCollection:
    """Documents by `_id`; refuses its first `locked` commands as a busy SQLite would."""

    name = "send_requests"
    workspace_id = "ws1"

    def __init__(self, locked: int = 0) -> None:
        self.documents: dict[str, dict[str, Any]] = {
            f"r{i}": {"state": "sending"} for i in range(8)
        }
        self.commands: list[list[str]] = []
        self.locked = locked

    async def update_each(
        self, updates: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]
    ) -> None:
        await asyncio.sleep(0)
        if self.locked:
            self.locked -= 1
            raise OperationFailure("database is locked", 1)
        self.commands.append([str(filter_["_id"]) for filter_, _ in updates])
        for filter_, update in updates:
            assert set(filter_) == {"_id"}
            self.documents[str(filter_["_id"])].update(update["$set"])


async def test_updates_made_together_go_out_in_one_command_and_each_lands() -> None:
    collection = FakeCollection(locked=1)
    batches = UpdateBatches()
    target = cast(WorkspaceCollection, collection)
    await asyncio.gather(
        *(batches.set_fields(target, f"r{i}", {"state": "sent", "n": i}) for i in range(8))
    )
    assert all(collection.documents[f"r{i}"] == {"state": "sent", "n": i} for i in range(8))
    # One command for all eight, written once the store stopped refusing it.
    assert collection.commands == [[f"r{i}" for i in range(8)]]
    assert collection.locked == 0
