"""Workspaces: the tenant every record, mailbox and message belongs to."""

import logging

from fastapi import APIRouter, status

from mailsync_api.api_keys import display_prefix, hash_api_key, new_api_key
from mailsync_api.dependencies import DbDep, WorkspaceDep
from mailsync_api.problems import not_found, problem_responses
from mailsync_api.schemas.workspaces import CreatedWorkspace, WorkspaceIn, WorkspaceOut
from mailsync_api.stored import as_stored
from mailsync_shared.storage.scoped import SystemCollections
from mailsync_shared.storage.workspaces import ApiKeyDocument, WorkspaceDocument

router = APIRouter(prefix="/v1", tags=["workspaces"])

logger = logging.getLogger(__name__)


@router.post("/workspaces", status_code=status.HTTP_201_CREATED, responses=problem_responses(422))
async def create_workspace(body: WorkspaceIn, db: DbDep) -> CreatedWorkspace:
    """Create a workspace and its first API key; the key is shown only in this answer."""
    system = SystemCollections(db)
    workspace = as_stored(WorkspaceDocument(name=body.name, domains=body.domains))
    key = new_api_key()
    await system.workspaces.insert_one(workspace.to_document())
    await system.api_keys.insert_one(
        ApiKeyDocument(
            key_hash=hash_api_key(key), workspace_id=workspace.id, prefix=display_prefix(key)
        ).to_document()
    )
    logger.info("workspace created", extra={"workspace_id": workspace.id})
    return CreatedWorkspace(**WorkspaceOut.of(workspace).model_dump(), api_key=key)


@router.get("/workspace", responses=problem_responses(401))
async def get_workspace(store: WorkspaceDep, db: DbDep) -> WorkspaceOut:
    """The workspace of the API key in use."""
    document = await SystemCollections(db).workspaces.find_one({"_id": store.workspace_id})
    if document is None:
        raise not_found("workspace")
    return WorkspaceOut.of(WorkspaceDocument.from_document(document))
