"""The FerretDB adapter: everything Mailsync does only because the local store is FerretDB v1.

Domain code is written against MongoDB 7's semantics (docs/storage.md states what it relies
on). FerretDB v1.24 over SQLite, the local and CI store, falls short of MongoDB in ways that
cost correctness or speed; each measure taken for it is listed here, and those that change
what goes over the wire are switched by `MAILSYNC_STORE` (`ferretdb`, the default, or
`mongodb` for MongoDB 7, which needs none of them):

- `max_connections` (32 commands in flight per service, `storage.client.connect`): an update
  takes up to two connections from FerretDB's pool of 100 per database, so a hundred
  concurrent updates would wait for each other forever.
- `retry_when_locked` (`retry_locked`: send outbox, scheduler, rate limits, insert batches,
  ingest's mailbox writes):
  SQLite refuses a write while another holds its lock (`database is locked`); nothing was
  applied, so the write is tried again.
- `bulk_statements` (20 per command, `WorkspaceCollection.update_each`): FerretDB keeps each
  statement's read open until the command ends, so a hundred statements exhaust its pool.
- `one_index_per_command` (`storage.indexes.ensure_indexes`): FerretDB drops the connection
  when one `createIndexes` names several indexes that exist already.
- `secondary_indexes` off (`storage.indexes.ensure_indexes`): FerretDB over SQLite narrows a
  query only by `_id` and reads the rest of the collection, so an index that is not unique is
  written on every insert and update (SQLite reading the whole JSON document once per
  indexed field) and never read. Only the unique indexes, which refuse duplicates, are kept;
  declared ones left from before are dropped. (About a sixth less of the store's CPU
  for the inserts of threads, messages and capture decisions.)

Measures that live outside Python, and designs shaped by FerretDB that are also right on
MongoDB (so they are not switched):

- `deploy/ferretdb/atomic_updates.go`: the local program makes each update of a document
  atomic (FerretDB rewrites whole documents from a stale read); MongoDB does that itself.
- `deploy/ferretdb/idindex.go`: the SQLite index FerretDB's look-ups by `_id` need, and
  `deploy/ferretdb/patches/id-pushdown.patch`: FerretDB narrows a query by its `_id` condition
  when the filter has other conditions too (`{_id, workspace_id}`, guarded writes), not only
  when `_id` is its one condition; `deploy/ferretdb/patches/in-list-pushdown.patch`: and by a
  list of ids (`{_id: {$in: [...]}}`, `WorkspaceCollection.find_by_ids`), which it would
  otherwise answer by reading the whole collection.
- `thread_refs` (associate): one document per reference instead of a multikey index on an
  array of references, which FerretDB v1 cannot use.
- Dotted paths instead of `$elemMatch` (ingest reconciliation), which FerretDB v1 lacks.
- Exactly-once decisions by unique `_id` inserts (send claims) rather than filtered
  `findAndModify`: correct on both, and the cheapest write on either.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from pymongo.errors import OperationFailure

StoreKind = Literal["ferretdb", "mongodb"]
T = TypeVar("T")


@dataclass(frozen=True)
class StoreMeasures:
    """What the code does differently for one kind of store."""

    kind: StoreKind
    max_connections: int | None  # None: the driver's default pool (100)
    bulk_statements: int
    retry_when_locked: bool
    one_index_per_command: bool
    secondary_indexes: bool  # False: only the unique indexes


MEASURES: dict[StoreKind, StoreMeasures] = {
    "ferretdb": StoreMeasures(
        kind="ferretdb",
        max_connections=32,
        bulk_statements=20,
        retry_when_locked=True,
        one_index_per_command=True,
        secondary_indexes=False,
    ),
    "mongodb": StoreMeasures(
        kind="mongodb",
        max_connections=None,
        bulk_statements=1000,
        retry_when_locked=False,
        one_index_per_command=False,
        secondary_indexes=True,
    ),
}

LOCKED_RETRIES = 8

_active: list[StoreMeasures] = [MEASURES["ferretdb"]]


def use(kind: StoreKind) -> StoreMeasures:
    """Take the measures of `kind` for this process (done when a service connects)."""
    _active[0] = MEASURES[kind]
    return _active[0]


def measures() -> StoreMeasures:
    """The measures this process takes."""
    return _active[0]


def is_locked(error: OperationFailure) -> bool:
    """The store refused the write because another held its lock; nothing was applied."""
    text = str(error)
    return "SQLITE_BUSY" in text or "database is locked" in text


async def retry_locked(write: Callable[[], Awaitable[T]]) -> T:
    """Run `write`, trying again while the store answers that it is locked."""
    retries = LOCKED_RETRIES if measures().retry_when_locked else 1
    for attempt in range(retries):
        try:
            return await write()
        except OperationFailure as error:
            if not is_locked(error) or attempt == retries - 1:
                raise
        await asyncio.sleep(0.02 * 2**attempt)
    raise AssertionError("unreachable")
