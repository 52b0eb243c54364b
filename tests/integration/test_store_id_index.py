"""Look-ups by `_id` stay indexed on the local store (deploy/ferretdb/idindex.go).

FerretDB v1 over SQLite queries `_ferretdb_sjson->'$._id'` while its own `_id` index is on
another expression; the local FerretDB program adds the index the queries can use. On a real
MongoDB the `_id` index is built in, which this test checks instead.
"""

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.storage.client import Document
from tests.support.infra import REPO

pytestmark = pytest.mark.integration

# Where the local FerretDB keeps its SQLite files (`deploy/infra.sh env` names the running one's).
FERRETDB_DATA = Path(os.environ.get("MAILSYNC_FERRETDB_DATA", REPO / ".infra/ferretdb"))


def _lookup_plan(database_file: Path, collection: str) -> str:
    with sqlite3.connect(f"file:{database_file}?mode=ro", uri=True) as db:
        (table,) = db.execute(
            "SELECT table_name FROM _ferretdb_collections WHERE name = ?", (collection,)
        ).fetchone()
        # The table name comes from FerretDB's own catalog, not from input.
        query = f"SELECT 1 FROM \"{table}\" WHERE _ferretdb_sjson->'$._id' = ?"  # noqa: S608
        plan = db.execute(f"EXPLAIN QUERY PLAN {query}", ('"x"',)).fetchall()
    return " ".join(str(row[-1]) for row in plan)


async def test_a_new_collection_is_looked_up_by_id_through_an_index(
    mongo: AsyncDatabase[Document],
) -> None:
    collection = mongo["id_index_probe"]
    await collection.insert_one({"_id": "probe"})
    info = await mongo.client.admin.command("buildInfo")
    if "ferretdbVersion" not in info:
        assert "_id_" in await collection.index_information()
        return
    database_file = FERRETDB_DATA / f"{mongo.name}.sqlite"
    plan = ""
    for _ in range(50):  # the index is added within a second or two of the table
        plan = await asyncio.to_thread(_lookup_plan, database_file, collection.name)
        if "USING INDEX" in plan:
            break
        await asyncio.sleep(0.1)
    assert "USING INDEX" in plan, plan


async def test_a_guarded_write_finds_its_document_by_id_alone(
    mongo: AsyncDatabase[Document],
) -> None:
    """`{_id: x, owner: w}` is narrowed by `_id` (deploy/ferretdb/patches/id-pushdown.patch)."""
    collection = mongo["guarded_write_probe"]
    await collection.insert_many([{"_id": f"m{i}", "owner": "w"} for i in range(3)])
    guarded = {"_id": "m1", "owner": "w", "stopped": {"$ne": True}}

    plan = await mongo.command("explain", {"find": collection.name, "filter": guarded})

    if "filterPushdown" in plan:
        assert plan["filterPushdown"] is True, plan
    else:
        assert "COLLSCAN" not in str(plan["queryPlanner"]["winningPlan"]), plan
    assert (await collection.update_one(guarded, {"$set": {"seen": True}})).modified_count == 1
    refused = {**guarded, "owner": "someone else"}
    assert (await collection.update_one(refused, {"$set": {"seen": False}})).matched_count == 0
    assert await collection.count_documents({"seen": True}) == 1


async def test_a_list_of_ids_finds_its_documents_by_id(mongo: AsyncDatabase[Document]) -> None:
    """`{_id: {$in: [...]}}` is narrowed by `_id` (patches/in-list-pushdown.patch)."""
    collection = mongo["id_list_probe"]
    await collection.insert_many([{"_id": f"m{i}", "owner": "w"} for i in range(5)])
    listed = {"_id": {"$in": ["m1", "m3", "missing"]}, "owner": "w"}

    plan = await mongo.command("explain", {"find": collection.name, "filter": listed})

    if "filterPushdown" in plan:
        assert plan["filterPushdown"] is True, plan
    else:
        assert "COLLSCAN" not in str(plan["queryPlanner"]["winningPlan"]), plan
    found = await collection.find(listed).to_list()
    assert sorted(document["_id"] for document in found) == ["m1", "m3"]
    mixed = await collection.find({"_id": {"$in": ["m2", 7]}}).to_list()
    assert [document["_id"] for document in mixed] == ["m2"]
