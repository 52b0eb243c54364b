"""Workspaces: the tenant every record, mailbox and message belongs to."""

import logging

from fastapi import APIRouter, status

from mailsync_api.dependencies import DbDep, OperatorDep, WorkspaceDep
from mailsync_api.problems import not_found, problem_responses
from mailsync_api.schemas.workspaces import CreatedWorkspace, WorkspaceIn, WorkspaceOut
from mailsync_api.stored import as_stored
from mailsync_api.users import UserDocument, create_user
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore
from mailsync_shared.storage.workspaces import WorkspaceDocument

router = APIRouter(prefix="/v1", tags=["workspaces"])

logger = logging.getLogger(__name__)


@router.post(
    "/workspaces", status_code=status.HTTP_201_CREATED, responses=problem_responses(401, 422)
)
async def create_workspace(
    body: WorkspaceIn, db: DbDep, _operator: OperatorDep
) -> CreatedWorkspace:
    """Create a workspace and its owner; the owner's key is shown only in this answer.

    Needs the operator token when the api runs with `MAILSYNC_OPERATOR_TOKEN`.
    """
    workspace = as_stored(WorkspaceDocument(name=body.name, domains=body.domains))
    await SystemCollections(db).workspaces.insert_one(workspace.to_document())
    owner = body.owner
    user, key = await create_user(
        db,
        WorkspaceStore(db, workspace.id),
        UserDocument(
            workspace_id=workspace.id,
            email=owner.email if owner else None,
            name=owner.name if owner else "",
            role="owner",
        ),
    )
    logger.info("workspace created", extra={"workspace_id": workspace.id})
    return CreatedWorkspace(
        **WorkspaceOut.of(workspace).model_dump(), api_key=key, owner_user_id=user.id
    )


@router.get("/workspace", responses=problem_responses(401, 403))
async def get_workspace(store: WorkspaceDep, db: DbDep) -> WorkspaceOut:
    """The workspace of the key in use."""
    document = await SystemCollections(db).workspaces.find_one({"_id": store.workspace_id})
    if document is None:
        raise not_found("workspace")
    return WorkspaceOut.of(WorkspaceDocument.from_document(document))
