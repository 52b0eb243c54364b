"""Typed dependencies for route handlers."""

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_api.api_keys import hash_api_key
from mailsync_api.context import ApiContext
from mailsync_api.pagination import PageParams, page_params
from mailsync_api.permissions import PERMISSIONS, Rule
from mailsync_api.principal import Principal, principal_of
from mailsync_api.problems import ProblemError
from mailsync_api.settings import Settings
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore
from mailsync_shared.storage.workspaces import ApiKeyDocument
from mailsync_shared.visibility import Viewer

_bearer = HTTPBearer(
    auto_error=False, description="An API key or personal token of the workspace (`msk_...`)."
)


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


def route_rule(request: Request) -> Rule:
    """The permission rule of the matched route; routes missing from the table are refused."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    rule = PERMISSIONS.get((request.method, path)) if isinstance(path, str) else None
    if rule is None:
        raise ProblemError(403, "this route has no permission rule", kind="forbidden")
    return rule


async def get_principal(
    request: Request,
    db: DbDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Who is calling, from `Authorization: Bearer <key>`, checked against the route's rule."""
    rule = route_rule(request)
    if credentials is None or not credentials.credentials:
        raise _unauthorized("send an API key or personal token as `Authorization: Bearer <key>`")
    key = await SystemCollections(db).api_keys.find_one(
        {"key_hash": hash_api_key(credentials.credentials), "revoked_at": None}
    )
    if key is None:
        raise _unauthorized("the API key is not valid")
    principal = await principal_of(db, ApiKeyDocument.from_document(key))
    if principal is None:
        raise _unauthorized("the API key is not valid")
    request.state.workspace_id = principal.workspace_id
    if not principal.allows(rule):
        raise ProblemError(
            403,
            f"needs the role {rule.role} or an API key with the scope {rule.scope}",
            kind="forbidden",
            role=principal.role,
            scopes=sorted(principal.scopes),
        )
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_viewer(principal: PrincipalDep) -> Viewer:
    """The caller as mailbox visibility sees them."""
    return principal.viewer


ViewerDep = Annotated[Viewer, Depends(get_viewer)]


def get_workspace(db: DbDep, principal: PrincipalDep) -> WorkspaceStore:
    """The caller's workspace; every query through it is scoped to that workspace."""
    return WorkspaceStore(db, principal.workspace_id)


WorkspaceDep = Annotated[WorkspaceStore, Depends(get_workspace)]
PageDep = Annotated[PageParams, Depends(page_params)]


def require_operator(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Operator-only routes: open when no `MAILSYNC_OPERATOR_TOKEN` is set (local use)."""
    if route_rule(request).access != "operator":
        raise ProblemError(403, "not an operator route", kind="forbidden")
    expected = settings.operator_token
    if expected is None:
        return
    given = credentials.credentials if credentials is not None else ""
    if not secrets.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise _unauthorized("this route needs the operator token")


OperatorDep = Annotated[None, Depends(require_operator)]
