"""An in-memory stand-in for the MongoDB database, for unit tests of code that takes one.

It answers the part of PyMongo's async API the project's storage layer uses
(`mailsync_shared.storage.scoped`) with MongoDB's semantics for it: unique `_id`s
(`DuplicateKeyError`, `BulkWriteError` with code 11000), filters with the comparison, `$in`,
`$exists`, `$or`/`$and` operators and dotted paths (an array field matches when an element
does), updates with `$set`, `$unset`, `$setOnInsert`, `$inc`, `$push` (`$each`), `$addToSet`
and `$pull`, inclusion and exclusion projections, and times kept to the millisecond as UTC,
as the driver with `tz_aware=True` returns them. Each operation is atomic (nothing awaits
inside it). Anything else raises `NotImplementedError`, so a test never passes on a guess.
"""

import copy
import operator
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from mailsync_shared.storage.client import Document

DUPLICATE_KEY = 11000
_MISSING = object()


def _stored(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        aware = aware.astimezone(UTC)
        return aware.replace(microsecond=aware.microsecond // 1000 * 1000)
    if isinstance(value, Mapping):
        return {key: _stored(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_stored(item) for item in value]
    return copy.deepcopy(value)


def _get(document: Any, path: str) -> Any:
    """The value at a dotted path; a list of values where the path crosses an array."""
    value = document
    for part in path.split("."):
        if isinstance(value, list):
            found = [_get(item, part) for item in value if isinstance(item, Mapping)]
            value = [item for item in found if item is not _MISSING]
            if not value:
                return _MISSING
        elif isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


def _candidates(value: Any) -> list[Any]:
    """A field's value and, for an array, each of its elements (MongoDB matches either)."""
    if value is _MISSING:
        return [None]
    return [value, *value] if isinstance(value, list) else [value]


def _comparable(a: Any, b: Any) -> bool:
    return (
        a is not None
        and b is not None
        and (isinstance(a, type(b)) or isinstance(b, type(a)) or {type(a), type(b)} <= {int, float})
    )


_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "$lt": operator.lt,
    "$lte": operator.le,
    "$gt": operator.gt,
    "$gte": operator.ge,
}


def _matches_condition(value: Any, condition: Any) -> bool:
    if not (isinstance(condition, Mapping) and condition and next(iter(condition)).startswith("$")):
        return any(_stored(condition) == candidate for candidate in _candidates(value))
    for name, operand in condition.items():
        candidates = _candidates(value)
        operand = _stored(operand)
        if name == "$eq":
            ok = any(operand == c for c in candidates)
        elif name == "$ne":
            ok = not any(operand == c for c in candidates)
        elif name == "$in":
            ok = any(c == o for c in candidates for o in operand)
        elif name == "$nin":
            ok = not any(c == o for c in candidates for o in operand)
        elif name == "$exists":
            ok = (value is not _MISSING) == bool(operand)
        elif name in _ORDERINGS:
            ok = any(_comparable(c, operand) and _ORDERINGS[name](c, operand) for c in candidates)
        else:
            raise NotImplementedError(f"filter operator {name}")
        if not ok:
            return False
    return True


def matches(document: Mapping[str, Any], filter_: Mapping[str, Any]) -> bool:
    for key, condition in filter_.items():
        if key == "$or":
            if not any(matches(document, part) for part in condition):
                return False
        elif key == "$and":
            if not all(matches(document, part) for part in condition):
                return False
        elif key.startswith("$"):
            raise NotImplementedError(f"filter operator {key}")
        elif not _matches_condition(_get(document, key), condition):
            return False
    return True


def _parent(document: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    *parents, last = path.split(".")
    for part in parents:
        document = document.setdefault(part, {})
    return document, last


def _apply(document: dict[str, Any], update: Mapping[str, Any], *, inserting: bool) -> None:
    if not update or not next(iter(update)).startswith("$"):
        raise NotImplementedError("replacement documents")
    for update_operator, fields in update.items():
        if update_operator == "$setOnInsert" and not inserting:
            continue
        for path, value in fields.items():
            parent, name = _parent(document, path)
            if update_operator in ("$set", "$setOnInsert"):
                parent[name] = _stored(value)
            elif update_operator == "$unset":
                parent.pop(name, None)
            elif update_operator == "$inc":
                parent[name] = parent.get(name, 0) + value
            elif update_operator == "$push":
                items = value["$each"] if isinstance(value, Mapping) else [value]
                parent.setdefault(name, []).extend(_stored(items))
            elif update_operator == "$addToSet":
                items = value["$each"] if isinstance(value, Mapping) else [value]
                existing = parent.setdefault(name, [])
                existing.extend(i for i in _stored(items) if i not in existing)
            elif update_operator == "$pull":
                parent[name] = [i for i in parent.get(name, []) if i != _stored(value)]
            else:
                raise NotImplementedError(f"update operator {update_operator}")


def _projected(document: Mapping[str, Any], projection: Mapping[str, Any] | None) -> Document:
    if not projection:
        return copy.deepcopy(dict(document))
    include = {k for k, v in projection.items() if v and k != "_id"}
    if include:
        result: dict[str, Any] = {}
        if projection.get("_id", 1) and "_id" in document:
            result["_id"] = document["_id"]
        for path in include:
            value = _get(document, path)
            if value is not _MISSING:
                parent, name = _parent(result, path)
                parent[name] = copy.deepcopy(value)
        return result
    result = copy.deepcopy(dict(document))
    for path in (k for k, v in projection.items() if not v):
        parent, name = _parent(result, path)
        parent.pop(name, None)
    return result


def _sort_key(spec: Sequence[tuple[str, int]]) -> Any:
    def key(document: Mapping[str, Any]) -> Any:
        parts = []
        for path, _ in spec:
            value = _get(document, path)
            parts.append((value is not _MISSING and value is not None, value))
        return parts

    return key


@dataclass(frozen=True)
class InsertOneResult:
    inserted_id: Any


@dataclass(frozen=True)
class InsertManyResult:
    inserted_ids: list[Any]


@dataclass(frozen=True)
class UpdateResult:
    matched_count: int
    modified_count: int
    upserted_id: Any = None


@dataclass(frozen=True)
class DeleteResult:
    deleted_count: int


@dataclass
class MemoryCursor:
    documents: list[Document]
    limit: int = 0

    def sort(self, spec: Sequence[tuple[str, int]]) -> "MemoryCursor":
        for path, direction in reversed(list(spec)):
            self.documents.sort(key=_sort_key([(path, direction)]), reverse=direction < 0)
        return self

    def _selected(self) -> list[Document]:
        return self.documents[: self.limit] if self.limit else list(self.documents)

    async def to_list(self, length: int | None = None) -> list[Document]:
        selected = self._selected()
        return selected[:length] if length else selected

    async def __aiter__(self) -> AsyncIterator[Document]:
        for document in self._selected():
            yield document


@dataclass
class MemoryCollection:
    name: str
    database: str = "memory"
    documents: dict[Any, dict[str, Any]] = field(default_factory=dict)
    operations: int = 0

    @property
    def full_name(self) -> str:
        return f"{self.database}.{self.name}"

    def _matching(self, filter_: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        self.operations += 1
        wanted = filter_ or {}
        if set(wanted) == {"_id"} and not isinstance(wanted["_id"], Mapping):
            found = self.documents.get(wanted["_id"])
            return [] if found is None else [found]
        return [d for d in self.documents.values() if matches(d, wanted)]

    async def find_one(
        self,
        filter_: Mapping[str, Any] | None = None,
        projection: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Document | None:
        found = self._matching(filter_)
        return _projected(found[0], projection) if found else None

    def find(
        self,
        filter_: Mapping[str, Any] | None = None,
        projection: Mapping[str, Any] | None = None,
        *,
        limit: int = 0,
        batch_size: int = 0,
    ) -> MemoryCursor:
        return MemoryCursor([_projected(d, projection) for d in self._matching(filter_)], limit)

    async def count_documents(self, filter_: Mapping[str, Any]) -> int:
        return len(self._matching(filter_))

    def _insert(self, document: Mapping[str, Any]) -> Any:
        stored = _stored(dict(document))
        stored.setdefault("_id", f"oid-{len(self.documents)}-{id(stored)}")
        if stored["_id"] in self.documents:
            raise DuplicateKeyError(f"E11000 duplicate key {stored['_id']!r} in {self.name}")
        self.documents[stored["_id"]] = stored
        return stored["_id"]

    async def insert_one(self, document: Mapping[str, Any]) -> InsertOneResult:
        self.operations += 1
        return InsertOneResult(self._insert(document))

    async def insert_many(
        self, documents: Iterable[Mapping[str, Any]], *, ordered: bool = True
    ) -> InsertManyResult:
        self.operations += 1
        inserted: list[Any] = []
        errors: list[dict[str, Any]] = []
        for index, document in enumerate(documents):
            try:
                inserted.append(self._insert(document))
            except DuplicateKeyError as error:
                errors.append({"index": index, "code": DUPLICATE_KEY, "errmsg": str(error)})
                if ordered:
                    break
        if errors:
            raise BulkWriteError(
                {"writeErrors": errors, "writeConcernErrors": [], "nInserted": len(inserted)}
            )
        return InsertManyResult(inserted)

    def _update(
        self, filter_: Mapping[str, Any], update: Mapping[str, Any], *, upsert: bool, many: bool
    ) -> tuple[UpdateResult, dict[str, Any] | None, dict[str, Any] | None]:
        """The result, the first matched document before and after the update."""
        found = self._matching(filter_)
        if not found:
            if not upsert:
                return UpdateResult(0, 0), None, None
            document = {
                key: _stored(value)
                for key, value in filter_.items()
                if not key.startswith("$") and not isinstance(value, Mapping)
            }
            _apply(document, update, inserting=True)
            upserted = self._insert(document)
            return UpdateResult(0, 0, upserted), None, self.documents[upserted]
        before = copy.deepcopy(found[0])
        modified = 0
        for document in found if many else found[:1]:
            was = copy.deepcopy(document)
            _apply(document, update, inserting=False)
            modified += document != was
        return UpdateResult(len(found) if many else 1, modified), before, found[0]

    async def update_one(
        self, filter_: Mapping[str, Any], update: Mapping[str, Any], *, upsert: bool = False
    ) -> UpdateResult:
        result, _, _ = self._update(filter_, update, upsert=upsert, many=False)
        return result

    async def update_many(
        self, filter_: Mapping[str, Any], update: Mapping[str, Any], *, upsert: bool = False
    ) -> UpdateResult:
        result, _, _ = self._update(filter_, update, upsert=upsert, many=True)
        return result

    async def bulk_write(self, operations: Sequence[Any], *, ordered: bool = True) -> None:
        for operation in operations:
            if not isinstance(operation, UpdateOne):
                raise NotImplementedError(f"bulk operation {type(operation).__name__}")
            update = operation._doc
            if not isinstance(update, Mapping):
                raise NotImplementedError("update pipelines")
            await self.update_one(operation._filter, update, upsert=bool(operation._upsert))

    async def find_one_and_update(
        self,
        filter_: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        projection: Mapping[str, Any] | None = None,
        upsert: bool = False,
        return_document: bool = ReturnDocument.BEFORE,
    ) -> Document | None:
        _, before, after = self._update(filter_, update, upsert=upsert, many=False)
        chosen = after if return_document == ReturnDocument.AFTER else before
        return None if chosen is None else _projected(chosen, projection)

    async def delete_many(self, filter_: Mapping[str, Any]) -> DeleteResult:
        found = self._matching(filter_)
        for document in found:
            del self.documents[document["_id"]]
        return DeleteResult(len(found))

    async def delete_one(self, filter_: Mapping[str, Any]) -> DeleteResult:
        found = self._matching(filter_)[:1]
        for document in found:
            del self.documents[document["_id"]]
        return DeleteResult(len(found))


class MemoryDatabase:
    """Collections by name, created on first use, as `db[name]` gives them."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.collections: dict[str, MemoryCollection] = {}

    def __getitem__(self, name: str) -> MemoryCollection:
        if name not in self.collections:
            self.collections[name] = MemoryCollection(name, self.name)
        return self.collections[name]

    def get_collection(self, name: str) -> MemoryCollection:
        return self[name]

    def as_database(self) -> AsyncDatabase[Document]:
        """This stand-in, typed as the database the code under test takes."""
        return cast(AsyncDatabase[Document], self)
