"""Cursor pagination, newest first.

A page is sorted by one field descending, then `_id` descending as the tie-breaker. The cursor
is an opaque token holding the sort value and `_id` of the last item returned; the next page
holds what sorts strictly after it. Documents whose sort field is missing or null sort last.
"""

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query, Request
from pydantic import BaseModel, Field
from pymongo import DESCENDING

from mailsync_api.problems import invalid
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import WorkspaceCollection

DEFAULT_PAGE_SIZE = 50

ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; absent on the last."
    )


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None


async def page_params(
    request: Request,
    limit: Annotated[int, Query(ge=1, description="Items per page.")] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
    ] = None,
) -> PageParams:
    """The page asked for (async, so FastAPI runs it on the event loop, not in a thread)."""
    maximum: int = request.app.state.context.settings.max_page_size
    if limit > maximum:
        raise invalid("query.limit", f"must be at most {maximum}")
    return PageParams(limit=limit, cursor=cursor)


def encode_cursor(value: Any, id_: str) -> str:
    if isinstance(value, datetime):
        payload: dict[str, Any] = {"d": value.isoformat(), "i": id_}
    else:
        payload = {"v": value, "i": id_}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, str]:
    """The sort value and `_id` in a cursor; raises a 422 problem when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        id_ = payload["i"]
        value = datetime.fromisoformat(payload["d"]) if "d" in payload else payload["v"]
    except (binascii.Error, ValueError, KeyError, TypeError) as error:
        raise invalid("query.cursor", "is not a cursor this api returned") from error
    if not isinstance(id_, str) or isinstance(value, list | dict):
        raise invalid("query.cursor", "is not a cursor this api returned")
    return value, id_


def after_cursor(field: str, value: Any, id_: str) -> dict[str, Any]:
    """Filter for documents that sort after (`value`, `id_`) in descending order, nulls last."""
    if value is None:
        return {"$or": [{field: None, "_id": {"$lt": id_}}]}
    return {
        "$or": [
            {field: {"$lt": value}},
            {field: value, "_id": {"$lt": id_}},
            {field: None},
        ]
    }


async def paginate(
    collection: WorkspaceCollection,
    filter_: Mapping[str, Any],
    params: PageParams,
    *,
    sort_field: str,
    render: Callable[[Sequence[Document]], Awaitable[Sequence[ItemT]]],
) -> Page[ItemT]:
    """One page of `collection` matching `filter_`, newest first by `sort_field`."""
    query: dict[str, Any] = dict(filter_)
    if params.cursor is not None:
        value, id_ = decode_cursor(params.cursor)
        after = after_cursor(sort_field, value, id_)
        query = {"$and": [query, after]} if query else after
    documents = await collection.find(
        query, sort=[(sort_field, DESCENDING), ("_id", DESCENDING)], limit=params.limit + 1
    )
    has_more = len(documents) > params.limit
    documents = documents[: params.limit]
    next_cursor = None
    if has_more and documents:
        last = documents[-1]
        next_cursor = encode_cursor(last.get(sort_field), last["_id"])
    return Page(items=list(await render(documents)), next_cursor=next_cursor)
