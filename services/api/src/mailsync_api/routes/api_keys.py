"""API keys: how other systems (a CRM, a script) authenticate, each with its scopes."""

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from mailsync_api.dependencies import DbDep, PrincipalDep
from mailsync_api.problems import not_found, problem_responses
from mailsync_api.schemas.common import RecordId
from mailsync_api.schemas.identity import ApiKeyIn, ApiKeyOut, CreatedApiKey
from mailsync_api.users import issue_key
from mailsync_shared.clock import utcnow
from mailsync_shared.storage.scoped import SystemCollections
from mailsync_shared.storage.workspaces import ApiKeyDocument

router = APIRouter(
    prefix="/v1/api-keys", tags=["api keys"], responses=problem_responses(401, 403, 404, 422)
)

logger = logging.getLogger(__name__)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_api_key(body: ApiKeyIn, principal: PrincipalDep, db: DbDep) -> CreatedApiKey:
    """Create a key for a system; the key is shown only in this answer, stored only hashed."""
    key, document = await issue_key(
        db, principal.workspace_id, name=body.name, user_id=None, scopes=list(body.scopes)
    )
    logger.info(
        "api key created",
        extra={"workspace_id": principal.workspace_id, "api_key_id": document["_id"]},
    )
    stored = ApiKeyDocument.from_document(document)
    return CreatedApiKey(**ApiKeyOut.of(stored).model_dump(), key=key)


@router.get("")
async def list_api_keys(principal: PrincipalDep, db: DbDep) -> list[ApiKeyOut]:
    """Every key and personal token of the workspace, revoked ones included; never the keys."""
    cursor = SystemCollections(db).api_keys.find(
        {"workspace_id": principal.workspace_id}, sort=[("created_at", -1)], limit=1000
    )
    return [ApiKeyOut.of(ApiKeyDocument.from_document(document)) async for document in cursor]


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_key(
    key_id: Annotated[RecordId, Path(description="Id of the key.")],
    principal: PrincipalDep,
    db: DbDep,
) -> Response:
    """Revoke a key or personal token: it stops working at once."""
    keys = SystemCollections(db).api_keys
    mine = {"_id": key_id, "workspace_id": principal.workspace_id}
    result = await keys.update_one({**mine, "revoked_at": None}, {"$set": {"revoked_at": utcnow()}})
    if result.matched_count == 0 and await keys.find_one(mine, projection={"_id": 1}) is None:
        raise not_found("api key")
    logger.info(
        "api key revoked", extra={"workspace_id": principal.workspace_id, "api_key_id": key_id}
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
