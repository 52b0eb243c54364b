"""Inserts of concurrent sends written together, each learning its own outcome."""

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, cast

import pytest
from pymongo.errors import BulkWriteError, OperationFailure

from mailsync_shared.insert_batches import InsertBatches
from mailsync_shared.storage.scoped import WorkspaceCollection


class FakeCollection:
    """Keeps documents by `_id`; refuses taken ids and the ids it is told to fail."""

    name = "send_claims"
    workspace_id = "ws1"

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        self.documents: dict[str, Mapping[str, Any]] = {"taken": {"_id": "taken"}}
        self.batches: list[list[str]] = []
        self.failing = failing

    async def insert_many(self, documents: Sequence[Mapping[str, Any]], *, ordered: bool) -> None:
        assert not ordered
        await asyncio.sleep(0)
        self.batches.append([str(d["_id"]) for d in documents])
        errors = []
        for index, document in enumerate(documents):
            if document["_id"] in self.failing:
                errors.append({"index": index, "code": 2, "errmsg": "bad document"})
            elif document["_id"] in self.documents:
                errors.append({"index": index, "code": 11000, "errmsg": "duplicate key"})
            else:
                self.documents[document["_id"]] = document
        if errors:
            raise BulkWriteError({"writeErrors": errors, "writeConcernErrors": []})


async def test_concurrent_inserts_go_out_together_and_each_learns_its_outcome() -> None:
    collection = FakeCollection(failing=frozenset({"bad"}))
    batches = InsertBatches()
    target = cast(WorkspaceCollection, collection)

    outcomes = await asyncio.gather(
        *(batches.insert(target, {"_id": i}) for i in ["a", "taken", "b", "bad", "a"]),
        return_exceptions=True,
    )

    assert outcomes[:3] == [True, False, True]
    assert isinstance(outcomes[3], OperationFailure)
    assert outcomes[4] is False, "the second insert of one id loses to the first"
    assert collection.batches == [["a", "taken", "b", "bad", "a"]]


async def test_inserts_arriving_while_one_is_written_go_in_the_next() -> None:
    collection = FakeCollection()
    batches = InsertBatches()
    target = cast(WorkspaceCollection, collection)

    first = asyncio.create_task(batches.insert(target, {"_id": "one"}))
    await asyncio.sleep(0)
    later = [batches.insert(target, {"_id": i}) for i in ["two", "three"]]

    assert await asyncio.gather(first, *later) == [True, True, True]
    assert collection.batches == [["one"], ["two", "three"]]


@pytest.mark.parametrize("count", [1, 3])
async def test_an_error_of_the_whole_write_reaches_every_insert(count: int) -> None:
    class Broken(FakeCollection):
        async def insert_many(
            self, documents: Sequence[Mapping[str, Any]], *, ordered: bool
        ) -> None:
            raise OperationFailure("no space left")

    batches = InsertBatches()
    target = cast(WorkspaceCollection, Broken())

    outcomes = await asyncio.gather(
        *(batches.insert(target, {"_id": str(i)}) for i in range(count)), return_exceptions=True
    )

    assert all(isinstance(outcome, OperationFailure) for outcome in outcomes)
