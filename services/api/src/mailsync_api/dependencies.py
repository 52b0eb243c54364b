"""Typed dependencies for route handlers.

They are `async def` even where they do not wait: FastAPI runs a plain `def` dependency in a
worker thread, a thread hop per dependency per request."""

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
from mailsync_shared.insert_batches import InsertBatches
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.shared_reads import SharedReads
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.kept_mailboxes import KeptMailboxes
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore
from mailsync_shared.storage.workspaces import ApiKeyDocument
from mailsync_shared.visibility import Viewer
from mailsync_shared.webhooks.bindings import WebhookBindings

_bearer = HTTPBearer(
    auto_error=False, description="An API key or personal token of the workspace (`msk_...`)."
)


def get_context_of(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


async def get_context(request: Request) -> ApiContext:
    return get_context_of(request)


ContextDep = Annotated[ApiContext, Depends(get_context)]


async def get_settings(context: ContextDep) -> Settings:
    return context.settings


async def get_db(context: ContextDep) -> AsyncDatabase[Document]:
    return context.db


async def get_publisher(context: ContextDep) -> EventPublisher:
    return context.publisher


async def get_cipher(context: ContextDep) -> CredentialCipher:
    return context.cipher


async def get_kept_mailboxes(context: ContextDep) -> KeptMailboxes:
    return context.mailboxes


async def get_inserts(request: Request) -> InsertBatches:
    """The app's gathering of single-document inserts (one per app, made on first use)."""
    state = request.app.state
    inserts: InsertBatches | None = getattr(state, "send_inserts", None)
    if inserts is None:
        inserts = state.send_inserts = InsertBatches()
    return inserts


async def get_webhook_bindings(context: ContextDep) -> WebhookBindings:
    return WebhookBindings(context.broker, context.db)


SettingsDep = Annotated[Settings, Depends(get_settings)]
WebhookBindingsDep = Annotated[WebhookBindings, Depends(get_webhook_bindings)]
InsertsDep = Annotated[InsertBatches, Depends(get_inserts)]
DbDep = Annotated[AsyncDatabase[Document], Depends(get_db)]
PublisherDep = Annotated[EventPublisher, Depends(get_publisher)]
CipherDep = Annotated[CredentialCipher, Depends(get_cipher)]
KeptMailboxesDep = Annotated[KeptMailboxes, Depends(get_kept_mailboxes)]


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


_KEY_IDS_KEPT = 10_000
_key_ids: dict[str, str] = {}
"""The `_id` of the key with each digest seen: a digest never changes keys, so it is safe to
remember, while revocation is read afresh on every request."""


async def _valid_key(
    system: SystemCollections, key_hash: str, reads: SharedReads[Document | None]
) -> ApiKeyDocument | None:
    """The unrevoked key with this digest: read by `_id` once its id is known (the store reads
    the whole collection for any other filter), in a read that began after the request came
    (shared by the requests that came meanwhile)."""
    known = _key_ids.get(key_hash)
    if known is not None:
        document = await reads.read(
            f"api_keys:{known}", lambda: system.api_keys.find_one({"_id": known})
        )
        if document is None or document.get("key_hash") != key_hash:
            _key_ids.pop(key_hash, None)
            return None
    else:
        document = await system.api_keys.find_one({"key_hash": key_hash})
        if document is None:
            return None
        if len(_key_ids) >= _KEY_IDS_KEPT:
            _key_ids.clear()
        _key_ids[key_hash] = str(document["_id"])
    key = ApiKeyDocument.from_document(document)
    return None if key.revoked_at is not None else key


async def get_principal(
    request: Request,
    db: DbDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Who is calling, from `Authorization: Bearer <key>`, checked against the route's rule."""
    return await authenticate(request, db, credentials.credentials if credentials else None)


async def authenticate(
    request: Request, db: AsyncDatabase[Document], token: str | None
) -> Principal:
    """The principal a key or personal token stands for, allowed by the route's rule; a 401 or
    403 problem otherwise. The api reads the token from `Authorization`, the console from its
    cookie."""
    rule = route_rule(request)
    if not token:
        raise _unauthorized("send an API key or personal token as `Authorization: Bearer <key>`")
    reads = get_context_of(request).credential_reads
    key = await _valid_key(SystemCollections(db), hash_api_key(token), reads)
    if key is None:
        raise _unauthorized("the API key is not valid")
    principal = await principal_of(db, key, reads)
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


async def get_viewer(principal: PrincipalDep) -> Viewer:
    """The caller as mailbox visibility sees them."""
    return principal.viewer


ViewerDep = Annotated[Viewer, Depends(get_viewer)]


async def get_workspace(db: DbDep, principal: PrincipalDep) -> WorkspaceStore:
    """The caller's workspace; every query through it is scoped to that workspace."""
    return WorkspaceStore(db, principal.workspace_id)


WorkspaceDep = Annotated[WorkspaceStore, Depends(get_workspace)]
PageDep = Annotated[PageParams, Depends(page_params)]


async def require_operator(
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
