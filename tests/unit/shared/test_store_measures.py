"""The FerretDB adapter: its measures apply on FerretDB and are off for MongoDB 7."""

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from pymongo.errors import OperationFailure

from mailsync_shared.settings import ServiceSettings
from mailsync_shared.storage import ferretdb
from mailsync_shared.storage.client import DRIVER_POOL, connect
from mailsync_shared.storage.scoped import WorkspaceCollection


@pytest.fixture(autouse=True)
def restore_measures() -> Iterator[None]:
    before = ferretdb.measures().kind
    yield
    ferretdb.use(before)


class FlakyWrite:
    """A write the store refuses as locked `refusals` times before applying it."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.refusals:
            raise OperationFailure("database is locked (5) (SQLITE_BUSY)")
        return "written"


async def test_a_locked_write_is_tried_again_on_ferretdb() -> None:
    ferretdb.use("ferretdb")
    write = FlakyWrite(refusals=2)
    assert await ferretdb.retry_locked(write) == "written"
    assert write.calls == 3


async def test_a_locked_write_is_not_retried_for_mongodb() -> None:
    ferretdb.use("mongodb")
    write = FlakyWrite(refusals=1)
    with pytest.raises(OperationFailure):
        await ferretdb.retry_locked(write)
    assert write.calls == 1


async def test_other_failures_are_never_retried() -> None:
    ferretdb.use("ferretdb")
    calls = 0

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise OperationFailure("E11000 duplicate key", 11000)

    with pytest.raises(OperationFailure):
        await ferretdb.retry_locked(refused)
    assert calls == 1


@pytest.mark.parametrize(("store", "pool"), [("ferretdb", 32), ("mongodb", DRIVER_POOL)])
async def test_the_connection_pool_is_capped_only_on_ferretdb(store: str, pool: int) -> None:
    client = connect(ServiceSettings(store=store))
    try:
        assert client.options.pool_options.max_pool_size == pool
        assert ferretdb.measures().kind == store
    finally:
        await client.close()


class RecordingCollection:
    """Just enough of a collection to see which filters go to the server."""

    name = "messages"
    full_name = "db.messages"

    def __init__(self) -> None:
        self.filters: list[Mapping[str, Any]] = []

    async def find_one(self, filter_: Mapping[str, Any], **_: Any) -> dict[str, Any]:
        self.filters.append(filter_)
        return {"_id": filter_["_id"], "workspace_id": "ws1", "subject": "hi"}


@pytest.mark.parametrize("store", ["ferretdb", "mongodb"])
async def test_a_read_by_id_names_the_workspace_on_every_store(store: str) -> None:
    ferretdb.use(store)  # type: ignore[arg-type]
    collection = RecordingCollection()
    scoped = WorkspaceCollection(collection, "ws1")  # type: ignore[arg-type]
    found = await scoped.find_one({"_id": "m1"})
    assert found is not None
    assert found["subject"] == "hi"
    assert collection.filters == [{"_id": "m1", "workspace_id": "ws1"}]
