"""Typed dependencies for route handlers."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_api.api_keys import hash_api_key
from mailsync_api.context import ApiContext
from mailsync_api.pagination import PageParams, page_params
from mailsync_api.problems import ProblemError
from mailsync_api.settings import Settings
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore

_bearer = HTTPBearer(auto_error=False, description="An API key of the workspace (`msk_...`).")


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


ContextDep = Annotated[ApiContext, Depends(get_context)]


def get_settings(context: ContextDep) -> Settings:
    return context.settings


def get_db(context: ContextDep) -> AsyncDatabase[Document]:
    return context.db


def get_publisher(context: ContextDep) -> EventPublisher:
    return context.publisher


def get_cipher(context: ContextDep) -> CredentialCipher:
    return context.cipher


SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[AsyncDatabase[Document], Depends(get_db)]
PublisherDep = Annotated[EventPublisher, Depends(get_publisher)]
CipherDep = Annotated[CredentialCipher, Depends(get_cipher)]


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401, detail, kind="unauthorized", headers={"WWW-Authenticate": 'Bearer realm="mailsync"'}
    )


async def get_workspace(
    request: Request,
    db: DbDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> WorkspaceStore:
    """The caller's workspace, from `Authorization: Bearer <api key>`."""
    if credentials is None or not credentials.credentials:
        raise _unauthorized("send an API key as `Authorization: Bearer <key>`")
    key = await SystemCollections(db).api_keys.find_one(
        {"key_hash": hash_api_key(credentials.credentials), "revoked_at": None}
    )
    if key is None:
        raise _unauthorized("the API key is not valid")
    workspace_id: str = key["workspace_id"]
    request.state.workspace_id = workspace_id
    return WorkspaceStore(db, workspace_id)


WorkspaceDep = Annotated[WorkspaceStore, Depends(get_workspace)]
PageDep = Annotated[PageParams, Depends(page_params)]
